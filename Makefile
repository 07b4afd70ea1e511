# evmpp: `make run` runs the main job on an embedded local Ray; `make test` runs the suite.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: install helm-tools run compare replay test bench lint clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e ".[test]"
	touch $(STAMP)

install: $(STAMP)

run: $(STAMP)
	RAY_USAGE_STATS_ENABLED=0 $(BIN)/python -m bench.story $(ARGS)

compare: $(STAMP)
	RAY_USAGE_STATS_ENABLED=0 $(BIN)/python -m bench.compare $(ARGS)

replay: $(STAMP)
	RAY_USAGE_STATS_ENABLED=0 $(BIN)/evmpp replay ../shared/mainnet-blocks $(ARGS)

# The chart tests build helm/tools/render from Debian's Go packages; install them if missing.
GO_PACKAGES := golang-go golang-github-masterminds-sprig-dev golang-gopkg-yaml.v3-dev
helm-tools:
	@command -v go >/dev/null && [ -d /usr/share/gocode/src/github.com/Masterminds/sprig ] \
	  && [ -d /usr/share/gocode/src/gopkg.in/yaml.v3 ] \
	  || DEBIAN_FRONTEND=noninteractive apt-get install -y -q $(GO_PACKAGES) >/dev/null 2>&1 \
	  || (apt-get update -q >/dev/null 2>&1 && DEBIAN_FRONTEND=noninteractive \
	      apt-get install -y -q $(GO_PACKAGES) >/dev/null 2>&1) \
	  || echo "helm-tools: cannot install $(GO_PACKAGES); the chart tests will be skipped"

# -X faulthandler: a crash, even at interpreter exit after the summary, prints Python's stacks.
test: $(STAMP) helm-tools
	$(BIN)/lint-imports
	RAY_USAGE_STATS_ENABLED=0 $(BIN)/python -X faulthandler -m pytest -q $(PYTEST_ARGS)

bench: $(STAMP)
	$(BIN)/python -m bench.parallel_speedup
	$(BIN)/python -m bench.predictive
	$(BIN)/python -m bench.mainnet
	$(BIN)/python -m bench.storage_bench
	$(BIN)/python -m bench.elastic
	$(BIN)/python -m bench.node

lint: $(STAMP)
	$(BIN)/ruff check . && $(BIN)/ruff format --check .

clean:
	rm -rf $(VENV) .cache
