# sdksign: `make run` starts the service, `make test` runs every test.
# Everything the project needs is installed from here (PyPI into .venv, npm into tests/js).

PYTHON  ?= python3
VENV    ?= .venv
PY      := $(VENV)/bin/python
LISTEN  ?= 127.0.0.1:50051
PROTO   := protos/sdksign/v1/signature_service.proto
GEN_DIR := client
PYTEST_ARGS ?=
NODE_DEPS := tests/js/node_modules/.package-lock.json

.PHONY: install protos check-protos run test lint typecheck bench clean
BENCH_ARGS ?=
# Debian packages (h2load for make bench) are installed with apt-get, through sudo unless root.
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
APT_INSTALL = $(SUDO) apt-get install -y -q $(1) >/dev/null || { $(SUDO) apt-get update -q >/dev/null && $(SUDO) apt-get install -y -q $(1) >/dev/null; }

install: $(VENV)/.installed ## create .venv with the server, client and dev tools

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	touch $@

protos: $(VENV)/.installed ## regenerate client/sdksign/v1 from protos/
	$(PY) -m grpc_tools.protoc -I protos \
	  --python_out=$(GEN_DIR) --pyi_out=$(GEN_DIR) --grpc_python_out=$(GEN_DIR) \
	  $(PROTO)

check-protos: $(VENV)/.installed ## fail when the committed generated code is stale
	@tmp=$$(mktemp -d) && \
	$(PY) -m grpc_tools.protoc -I protos --python_out=$$tmp --pyi_out=$$tmp --grpc_python_out=$$tmp $(PROTO) && \
	for f in $$(cd $$tmp && find . -type f); do \
	  cmp -s $$tmp/$$f $(GEN_DIR)/$$f || { echo "stale generated code: $(GEN_DIR)/$$f (run make protos)"; rm -rf $$tmp; exit 1; }; \
	done; rm -rf $$tmp; echo "generated code is up to date"

run: $(VENV)/.installed protos ## start the service on $(LISTEN)
	$(VENV)/bin/sdksign serve --listen $(LISTEN) $(if $(CONFIG),--config $(CONFIG))

$(NODE_DEPS): tests/js/package.json tests/js/package-lock.json
	npm install --prefix tests/js --no-audit --no-fund --loglevel=error

test: $(VENV)/.installed $(NODE_DEPS) ## run the whole test suite
	$(PY) -m pytest $(PYTEST_ARGS)

lint: $(VENV)/.installed $(NODE_DEPS) ## ruff (lint, format check) and buf lint on the protos
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	tests/js/node_modules/.bin/buf lint

typecheck: $(VENV)/.installed ## mypy on our own code (not the generated code)
	$(VENV)/bin/mypy

bench: $(VENV)/.installed ## h2load on a real server: Health/Check, Sign, Verify (and Zoom's sample with ZOOM_SAMPLE_DIR)
	@command -v h2load >/dev/null || $(call APT_INSTALL,nghttp2-client)
	$(PY) bench/bench.py $(BENCH_ARGS)

clean:
	rm -rf $(VENV) tests/js/node_modules .pytest_cache .mypy_cache .ruff_cache
