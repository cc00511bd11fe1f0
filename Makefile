# llamapipe — the README's two commands:
#   make demo   run the main job on examples/ with the offline provider (no keys)
#   make test   start private Redis + MinIO and run the whole test suite
GO        ?= go
DEMO_OUT  ?= $(or $(TMPDIR),/tmp)/llamapipe-demo
TEST_FLAGS ?= -race -count=1 -timeout 20m
PKGS      ?= ./...

.PHONY: demo test deps build vet fmt bench-images bench-pdf bench-serve fuzz faults

# System packages the project needs: redis-server for the queue (tests and
# the single-machine `run`), redis-sentinel for the tests' Sentinel group,
# libjpeg-turbo's headers for the fast scaled JPEG decoder (cgo;
# `-tags imageprep_purego` or CGO_ENABLED=0 builds without it),
# poppler-utils for the PDF comparison tests, chromium for the dashboard's
# browser test, kubectl (kubernetes-client) for the kustomize test of deploy/.
deps:
	@missing=""; \
	command -v redis-server >/dev/null 2>&1 || missing="$$missing redis-server"; \
	command -v redis-sentinel >/dev/null 2>&1 || missing="$$missing redis-sentinel"; \
	[ -f /usr/include/jpeglib.h ] || missing="$$missing libjpeg62-turbo-dev"; \
	command -v pdftotext >/dev/null 2>&1 || missing="$$missing poppler-utils"; \
	command -v chromium >/dev/null 2>&1 || missing="$$missing chromium"; \
	command -v kubectl >/dev/null 2>&1 || missing="$$missing kubernetes-client"; \
	if [ -n "$$missing" ]; then \
		echo "installing$$missing from Debian's packages"; \
		export DEBIAN_FRONTEND=noninteractive; \
		apt-get update -qq && apt-get install -y -qq $$missing; \
	fi

build:
	$(GO) build ./...

# The demo needs only Redis and libjpeg-turbo's headers, not the test tools.
demo:
	@missing=""; \
	command -v redis-server >/dev/null 2>&1 || missing="$$missing redis-server"; \
	[ -f /usr/include/jpeglib.h ] || missing="$$missing libjpeg62-turbo-dev"; \
	if [ -n "$$missing" ]; then \
		echo "installing$$missing from Debian's packages"; \
		export DEBIAN_FRONTEND=noninteractive; \
		apt-get update -qq && apt-get install -y -qq $$missing; \
	fi
	$(GO) run ./cmd/llamapipe run examples --out $(DEMO_OUT)
	@echo "results, manifest.jsonl and report.md are in $(DEMO_OUT)"

test: deps
	gofmt_out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$gofmt_out" ]; then echo "gofmt needed:"; echo "$$gofmt_out"; exit 1; fi
	$(GO) vet ./...
	bash .ci/with-services $(GO) test $(TEST_FLAGS) $(PKGS)

vet:
	$(GO) vet ./...

fmt:
	gofmt -w $$(git ls-files '*.go')

# Every fuzz target in the repository, FUZZTIME each, one at a time
# (.ci/fuzz lists them; failing inputs land in the package's testdata/fuzz/).
FUZZTIME ?= 10s
fuzz:
	FUZZTIME=$(FUZZTIME) GO=$(GO) bash .ci/fuzz

# The longer fault suite: the restart, kill and faulty-model tests several
# times over, then a larger batch against a model server that answers 30% of
# requests with 429, 500 or garbage and lets 2% hang.
FAULT_COUNT ?= 3
faults: deps
	bash .ci/with-services $(GO) test -count=$(FAULT_COUNT) -timeout 60m -run 'Restart|Killed|Faults|BadKey|RateLimits' ./worker/ ./cmd/llamapipe/
	$(GO) run ./cmd/llamapipe bench --photos 40 --docs 400 --pages 2 -c 32 --latency 100ms --fault-rate 0.3 --hang-rate 0.02 --model-timeout 5s --measure pipeline

# Image preparation beside vipsthumbnail on ../shared/corpus/images/photos.
bench-images: deps
	bash worker/imageprep/bench.sh

# PDF text extraction beside pdftotext on the long and contract PDFs.
bench-pdf: deps
	$(GO) test -run '^$$' -bench 'Extract|Pdftotext' -benchtime 2x -count 3 ./worker/pdftext/

# Peak RSS of `serve` with a 100 MB source and with a 100,000-item batch's
# item pages (a measurement, not a test: it prints the numbers).
bench-serve: deps
	$(GO) build -o $(or $(TMPDIR),/tmp)/llamapipe-rss ./cmd/llamapipe
	LLAMAPIPE_RSS_BIN=$(or $(TMPDIR),/tmp)/llamapipe-rss bash .ci/with-services $(GO) test -count=1 -run TestServeRSS -v ./ingest/api/
