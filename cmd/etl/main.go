// Command etl enriches Huawei CC-CMS call data: calls in progress with
// querybasiccallinfo (a batch, or a follower of the queue), and finished
// calls listed with querycalls (etl discover) and their CDRs
// (querycalldetailbyid, etl run --query cdr). It writes one row per call to
// Parquet and/or PostgreSQL. See README.md.
package main

import (
	"os"

	"github.com/cmsetl/cms-etl/cmd/etl/internal/cli"
)

func main() { os.Exit(cli.Run()) }
