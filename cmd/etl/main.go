// Command etl enriches Huawei CC-CMS call IDs with querybasiccallinfo and
// writes one row per call to Parquet and/or PostgreSQL. See README.md.
package main

import (
	"os"

	"github.com/cmsetl/cms-etl/cmd/etl/internal/cli"
)

func main() { os.Exit(cli.Run()) }
