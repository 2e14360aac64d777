# Two commands on a fresh machine: `make demo` and `make test`.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
TORCH_VERSION := 2.13.0
DEMO_SHOP ?= demo-shop
DEMO_HOME ?= .vitrine-demo

.PHONY: install demo test bench chromium clean lint

$(BIN)/python:
	$(PY) -m venv $(VENV)

# torch goes in first and alone: with it present, the `torch>=` range in
# pyproject.toml is satisfied and pip never pulls a CUDA build.
$(STAMP): $(BIN)/python pyproject.toml
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q torch==$(TORCH_VERSION)
	$(BIN)/pip install -q -e ".[test]"
	touch $(STAMP)

install: $(STAMP)

# Browser tests need Debian's chromium; install it when we are root and it is
# missing. Without it the browser test skips and says why.
chromium:
	@if [ ! -x /usr/bin/chromium ] && [ "$$(id -u)" = "0" ]; then \
	  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null) \
	  || echo "chromium could not be installed; the browser test will skip"; \
	fi

test: install chromium
	$(BIN)/python -m pytest -q --timeout=900 tests

demo: install
	$(BIN)/vitrine synth $(DEMO_SHOP) --products 20000 --users 5000 --seed 7
	rm -rf $(DEMO_HOME)  # a fresh demo home: ingest appends events, so a rerun must not double them
	$(BIN)/vitrine ingest $(DEMO_SHOP) --home $(DEMO_HOME)
	$(BIN)/vitrine fit --home $(DEMO_HOME)
	@echo "== a short evaluation: every model and its baselines on a held-out 3k-product shop"
	$(BIN)/vitrine synth $(DEMO_SHOP)-eval --products 3000 --users 800 --seed 8
	$(BIN)/vitrine evaluate search $(DEMO_SHOP)-eval --protocol rerank --k 10
	$(BIN)/vitrine serve --home $(DEMO_HOME) --host 127.0.0.1 --port 8000

bench: install
	$(BIN)/python benchmarks/run.py

lint: install
	$(BIN)/python -m ruff check src tests || true

clean:
	rm -rf $(DEMO_SHOP) $(DEMO_SHOP)-eval $(DEMO_HOME) .bench .vitrine-eval
