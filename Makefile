# evmpp: `make run` runs the main job on an embedded local Ray; `make test` runs the suite.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: install run compare replay blocktest test bench lint clean

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

blocktest: $(STAMP)
	RAY_USAGE_STATS_ENABLED=0 $(BIN)/evmpp blocktest ../shared/ethereum-tests/BlockchainTests $(ARGS)

# -X faulthandler: a crash, even at interpreter exit after the summary, prints Python's stacks.
test: $(STAMP)
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
