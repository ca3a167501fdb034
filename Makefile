# Run `make help` for the list of targets.
GO       ?= go
PKGS     ?= ./...
BENCHTIME ?= 1x
# The version etl reports (`etl version`, the run log, cms.etl_run.version).
VERSION  ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo devel)
LDFLAGS  := -X github.com/cmsetl/cms-etl/cmd/etl/internal/cli.version=$(VERSION)

.PHONY: help build install demo demo-follow test fmt-check vet fuzz bench bench-client bench-job bench-discover bench-pg bench-follow clean

help: ## list targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-14s %s\n", $$1, $$2}'

build: ## build bin/etl (version from git describe) and bin/cmssim
	$(GO) build -ldflags "$(LDFLAGS)" -o bin/etl ./cmd/etl
	$(GO) build -o bin/cmssim ./cmd/cmssim

install: ## go install etl (version from git describe) into $GOBIN, default ~/go/bin
	$(GO) install -ldflags "$(LDFLAGS)" ./cmd/etl

demo: ## run the job against the built-in simulator: testdata/calls.csv -> demo-out/ (exit 0 when it worked)
	$(GO) run ./cmd/etl demo

# Built, then run directly: `go run` exits 1 when Ctrl-C reaches it, even
# though the follower's own exit on SIGINT is 0, so make would report an error.
demo-follow: ## the live demo: throwaway PostgreSQL (needs initdb/pg_ctl), simulator generating calls into the queue, a tracking follower (Ctrl-C stops)
	$(GO) build -ldflags "$(LDFLAGS)" -o bin/etl ./cmd/etl
	./bin/etl demo --follow

test: fmt-check vet ## everything CI runs: gofmt check, go vet, go test -race (starts its own PostgreSQL)
	$(GO) test -race -count=1 -timeout 30m $(PKGS)

fmt-check: ## fail if any file is not gofmt-formatted
	@out="$$(gofmt -l .)"; \
	if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi

vet: ## go vet
	$(GO) vet $(PKGS)

fuzz: ## run each fuzz target for 20s
	$(GO) test -run=^$$ -fuzz=FuzzDecodeResponse -fuzztime=20s ./extract/cms/
	$(GO) test -run=^$$ -fuzz=FuzzDecodeRecord -fuzztime=20s ./extract/cms/
	$(GO) test -run=^$$ -fuzz=FuzzDecodeFinishedCall -fuzztime=20s ./extract/cms/
	$(GO) test -run=^$$ -fuzz=FuzzDecodeListing -fuzztime=20s ./extract/cms/
	$(GO) test -run=^$$ -fuzz=FuzzNormalize -fuzztime=20s ./extract/cms/authv2/

bench: bench-client bench-job bench-pg ## all benchmarks (figures go in README.md)

bench-client: ## client-side cost of one request
	$(GO) test -run=^$$ -bench=. -benchmem ./extract/cms/ ./extract/cms/authv2/

bench-job: ## rate accuracy, throughput vs a bare HTTP loop, memory, and bench-discover's
	$(GO) test -run=^$$ -bench=. -benchtime=$(BENCHTIME) -timeout 60m ./cmd/etl/...

bench-discover: ## discovery requests vs the minimum, CDR enrichment at --rate 300 (also part of bench-job)
	$(GO) test -run=^$$ -bench='DiscoveryPages|CDREnrichment' -benchtime=$(BENCHTIME) -timeout 30m ./cmd/etl/internal/cli/

bench-pg: ## warehouse load vs plain COPY, queue claim-and-complete
	$(GO) test -run=^$$ -bench=. -benchtime=$(BENCHTIME) -timeout 60m ./load/postgres/ ./extract/queue/

bench-follow: ## a follower against 20 new calls/s for 2 minutes, without and with tracking (about 13 minutes)
	$(GO) test -run=^$$ -bench=BenchmarkFollow -benchtime=1x -timeout 60m ./cmd/etl/internal/cli/

clean: ## remove build and demo output
	rm -rf bin demo-out
