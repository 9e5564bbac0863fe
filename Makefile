# podnet: `make install` sets up a machine (Debian packages, the reference CNI plugins and
# cni-client, a virtualenv with podnet); `make demo` runs the main job; `make test` the tests.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
PY     := $(BIN)/python

.PHONY: install install-node system venv demo test test-fast lint bench clean

install: system venv

system:
	bash .ci/install-system

venv: $(BIN)/podnet

$(BIN)/podnet: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[dev]'
	touch $@

# A node install: podnet in an environment of its own (a normal install, not editable), so the
# CNI launchers name only PREFIX's interpreter and site-packages, never this checkout.
PREFIX ?= /opt/podnet
install-node:
	$(PYTHON) -m venv $(PREFIX)
	$(PREFIX)/bin/pip install -q --upgrade pip
	$(PREFIX)/bin/pip install -q .
	@echo "now: $(PREFIX)/bin/podnet install-cni --subnet NODE_SUBNET [--chain portmap]"

demo: install
	$(PY) -m podnet.demo

test: install
	$(BIN)/pytest -q -ra

test-fast: venv
	$(BIN)/pytest -q -ra -m "not slow"

lint: venv
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

bench: install
	$(PY) bench/run.py

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache .ruff_cache
	find . -name __pycache__ -type d -prune -exec rm -rf {} +
