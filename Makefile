# One set of targets for people and CI. `make demo` and `make test` install everything they need into .venv.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: install demo tour readme-check test unit integration test-opensearch opensearch-start opensearch-stop lint typecheck bench engine-start engine-stop clean help

help:  ## list targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-14s %s\n", $$1, $$2}'

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check --upgrade pip
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -e '.[dev]'
	@touch $@

install: $(STAMP)  ## create .venv and install fuserec-os with its dev tools

demo: $(STAMP)  ## run the main job end to end on the embedded engine
	$(BIN)/fuserec demo

tour: $(STAMP)  ## run the README's tour exactly as written; prints its total time
	scripts/tour.sh

readme-check: $(STAMP)  ## run the demo and the tour; hold the README's times and demo numbers to what they print
	$(BIN)/python scripts/check_readme.py

lint: $(STAMP)  ## ruff
	$(BIN)/ruff check fuserec_os tests benchmarks
	$(BIN)/ruff format --check fuserec_os tests benchmarks

typecheck: $(STAMP)  ## mypy
	$(BIN)/mypy

unit: $(STAMP)  ## unit tests only (no engine)
	$(BIN)/pytest tests/unit

integration: $(STAMP)  ## integration tests (osmem, or FUSEREC_TEST_OPENSEARCH_URL)
	$(BIN)/pytest tests/integration

OPENSEARCH_HOME ?= .fuserec/opensearch-node

test-opensearch: $(STAMP)  ## integration tests against a real single-node OpenSearch (needs JDK 21+ and Maven)
	$(BIN)/python scripts/opensearch_node.py run --fresh --refresh-interval -1 --home $(OPENSEARCH_HOME) -- \
	  $(BIN)/pytest tests/integration

opensearch-start: $(STAMP)  ## start a real single-node OpenSearch in the background (prints its URL as JSON)
	$(BIN)/python scripts/opensearch_node.py start --home $(OPENSEARCH_HOME)

opensearch-stop: $(STAMP)  ## stop it (its data stays under OPENSEARCH_HOME, default .fuserec/opensearch-node)
	$(BIN)/python scripts/opensearch_node.py stop --home $(OPENSEARCH_HOME)

test: lint typecheck  ## lint, type-check and the whole test suite
	$(BIN)/pytest

bench: $(STAMP)  ## all benchmarks (CLI start-up, ingest, search, profiles, simulate, train, score, rerank stage, proxy); JSON in benchmarks/results/
	$(BIN)/python benchmarks/cli_startup.py
	$(BIN)/python benchmarks/ingest.py
	$(BIN)/python benchmarks/search.py
	$(BIN)/python benchmarks/profiles.py
	$(BIN)/python benchmarks/simulate.py
	$(BIN)/python benchmarks/train.py
	$(BIN)/python benchmarks/score.py
	$(BIN)/python benchmarks/stage.py
	$(BIN)/python benchmarks/proxy.py

engine-start: $(STAMP)  ## start the embedded dev engine in the background
	$(BIN)/fuserec engine start

engine-stop: $(STAMP)  ## save its indices and stop it
	$(BIN)/fuserec engine stop

clean:  ## remove the venv, state and caches
	rm -rf $(VENV) .fuserec .pytest_cache .mypy_cache .ruff_cache
