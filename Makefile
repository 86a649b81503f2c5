# Lockgate developer commands. Everything installs into ./.venv and ./.tools.
PY ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
BUF := .tools/node_modules/.bin/buf

.PHONY: up test venv tools proto proto-check lint bench bench-peers clean

## up: set up if needed, then start the whole gateway on its embedded defaults
up: $(STAMP)
	$(BIN)/lockgate up

## test: set up if needed, then run every check and the whole test suite
test: $(STAMP) $(BUF)
	$(BIN)/python scripts/genproto.py --check
	$(BUF) lint
	$(BIN)/ruff check --no-cache .
	$(BIN)/pytest -q -p no:cacheprovider

$(STAMP): requirements.lock pyproject.toml
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/pip install -q --disable-pip-version-check -r requirements.lock
	$(BIN)/pip install -q --disable-pip-version-check --no-deps -e .
	touch $(STAMP)

venv: $(STAMP)

$(BUF): .tools/package.json
	cd .tools && npm install --no-audit --no-fund --silent
	touch $(BUF)

tools: $(BUF)

## proto: regenerate Python stubs and Envoy's descriptor set from protos/
proto: $(STAMP)
	$(BIN)/python scripts/genproto.py

proto-check: $(STAMP)
	$(BIN)/python scripts/genproto.py --check

lint: $(STAMP) $(BUF)
	$(BUF) lint
	$(BIN)/ruff check --no-cache .

## bench: governed path vs the simulator called directly; writes bench/results/latest.json
bench: $(STAMP)
	command -v wrk >/dev/null || (apt-get update -q && apt-get install -y -q wrk)
	$(BIN)/python -m bench.run

## bench-peers: S1 through Lockgate, LiteLLM proxy and Portkey (installed into bench/.peers) in one run; writes bench/results/peers-latest.json
bench-peers: $(STAMP)
	command -v wrk >/dev/null || (apt-get update -q && apt-get install -y -q wrk)
	$(BIN)/python -m bench.peers

clean:
	rm -rf $(VENV) .tools/node_modules .lockgate
