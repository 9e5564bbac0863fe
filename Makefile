# podnet. Everything comes from this repository, Debian's packages and PyPI.
#   make demo         install what podnet needs to run (Debian packages, a venv), run the main job
#   make test         also install the test tooling, then: lint, types, unit tier (as an
#                     ordinary user), integration tier (as root) -- what CI runs (.ci/run)
#   make test-fast    the unit tier in your own shell, without the slow tests
#   make bench        the benchmarks (as root)
#   make install-node podnet for a real node, in an environment of its own (PREFIX=/opt/podnet)
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
PY     := $(BIN)/python
DRIVER := build/cni-driver
PACKAGES := cluster cni ipam netns podnet policy proxy safeload

.PHONY: install install-node system venv bytecode test-tools demo test lint types unit integration test-fast fuzz bench clean
# The stages of `test` run one after another, in the order listed, even under -j.
.NOTPARALLEL:

# --- to run podnet: Debian runtime packages and PyPI, no Go, no test tooling
install: system venv

system:
	bash .ci/install-system

venv: $(BIN)/podnet

$(BIN)/podnet: pyproject.toml setup.py
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

demo: install bytecode
	$(PY) -m podnet.demo

# Bytecode for the editable checkout, as a normal install has it (pip compiles at install):
# every agent, proxy and CNI plugin is a fresh interpreter, and without .pyc files (a read-only
# checkout, PYTHONDONTWRITEBYTECODE) each would compile every module it imports again.
# Quick when nothing changed; a stale .pyc is never used (its source's mtime is checked).
bytecode: venv
	$(PY) -m compileall -q $(PACKAGES)

# --- to test it: Go and libcni from Debian build podnet's CNI driver; reference plugins
# Idempotent and quick when all is there; rebuilds the driver when its source changed.
test-tools:
	OUT=$(abspath $(DRIVER)) bash .ci/install-test-tools

test: install test-tools lint types unit integration

# The fuzz tier (tests/fuzz) with hypothesis's long profile: thousands of generated inputs per
# property instead of the few dozen the normal run uses. The namespace half needs root.
fuzz: venv
	HYPOTHESIS_PROFILE=fuzz $(BIN)/pytest -q -ra tests/fuzz

lint: venv
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

# The packages mypy checks are listed in pyproject.toml ([tool.mypy] files); it must be clean.
types: venv
	$(BIN)/mypy

# No root, no namespace, no kernel state: run as an ordinary user (see .ci/unit-tier).
unit: venv
	VENV=$(VENV) bash .ci/unit-tier

integration: install test-tools bytecode
	$(BIN)/pytest -q -ra -m integration

test-fast: venv
	$(BIN)/pytest -q -ra -p no:cacheprovider -m "not integration and not slow"

bench: install test-tools bytecode
	$(PY) -m bench.run

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache .ruff_cache .mypy_cache
	find . -name __pycache__ -type d -prune -exec rm -rf {} +
