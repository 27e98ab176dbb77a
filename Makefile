# sdksign: `make run` starts the service, `make test` runs every test.
# Everything the project needs is installed from here (PyPI into .venv, npm into tests/js).

PYTHON  ?= python3
VENV    ?= .venv
PY      := $(VENV)/bin/python
LISTEN  ?= 127.0.0.1:50051
PROTO   := protos/sdksign/v1/signature_service.proto protos/sdksign/v1/zoom_sample.proto
# google/api and google/rpc .proto files come with googleapis-common-protos (in .venv).
PROTO_INCLUDE = -I protos -I $$($(PY) -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
DESCRIPTORS := gateway/sdksign.pb
GEN_DIR := client
PYTEST_ARGS ?=
NODE_DEPS := tests/js/node_modules/.package-lock.json

.PHONY: install protos check-protos run gateway web node-client test test-unit lint typecheck bench clean fleet soak try-host-start
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

protos: $(VENV)/.installed ## regenerate client/sdksign/v1 and the gateway's descriptor set from protos/
	$(PY) -m grpc_tools.protoc $(PROTO_INCLUDE) \
	  --python_out=$(GEN_DIR) --pyi_out=$(GEN_DIR) --grpc_python_out=$(GEN_DIR) \
	  $(PROTO)
	$(MAKE) --no-print-directory $(DESCRIPTORS)

# The descriptor set Envoy's JSON transcoder reads (git-ignored, built from the protos).
# google/rpc types are in it so that Envoy can turn error details into JSON.
$(DESCRIPTORS): $(PROTO) $(VENV)/.installed
	$(PY) -m grpc_tools.protoc $(PROTO_INCLUDE) --include_imports --descriptor_set_out=$@ \
	  $(PROTO) google/rpc/status.proto google/rpc/error_details.proto

check-protos: $(VENV)/.installed ## fail when the committed generated code is stale
	@tmp=$$(mktemp -d) && \
	$(PY) -m grpc_tools.protoc $(PROTO_INCLUDE) --python_out=$$tmp --pyi_out=$$tmp --grpc_python_out=$$tmp $(PROTO) && \
	for f in $$(cd $$tmp && find . -type f); do \
	  cmp -s $$tmp/$$f $(GEN_DIR)/$$f || { echo "stale generated code: $(GEN_DIR)/$$f (run make protos)"; rm -rf $$tmp; exit 1; }; \
	done; rm -rf $$tmp; echo "generated code is up to date"

run: $(VENV)/.installed protos ## start the service on $(LISTEN)
	$(VENV)/bin/sdksign serve --listen $(LISTEN) $(if $(CONFIG),--config $(CONFIG))

# The web page: a client generated from the protos (protoc-gen-es, for connect-web), with
# google.rpc's error details (the refused fields), bundled with esbuild. Generated code and
# the bundle are git-ignored. The rule writes both files; the second is its target.
WEB_DEPS := web/node_modules/.package-lock.json
WEB_GEN := web/src/gen/google/rpc/error_details_pb.ts
WEB := web/dist/index.html web/dist/app.js

$(WEB_DEPS): web/package.json web/package-lock.json
	npm ci --prefix web --no-audit --no-fund --loglevel=error

$(WEB_GEN): protos/sdksign/v1/signature_service.proto $(WEB_DEPS) $(VENV)/.installed
	@mkdir -p web/src/gen
	$(PY) -m grpc_tools.protoc $(PROTO_INCLUDE) --plugin=protoc-gen-es=web/node_modules/.bin/protoc-gen-es \
	  --es_out=web/src/gen --es_opt=target=ts protos/sdksign/v1/signature_service.proto google/rpc/error_details.proto

web/dist/app.js: web/src/app.ts $(WEB_GEN)
	web/node_modules/.bin/esbuild web/src/app.ts --bundle --format=esm --minify --target=es2020 \
	  --log-level=warning --outfile=$@

web/dist/index.html: web/index.html
	@mkdir -p web/dist
	cp $< $@

web: $(WEB) ## build the gateway's web page into web/dist

# The Node.js client (client/node): protoc-gen-es output, as for the page, with google.rpc's
# error details, for @connectrpc/connect-node; tsc compiles it into client/node/dist.
# Generated code and dist are git-ignored. examples/node-backend links to it by path.
NODE_CLIENT_DEPS := client/node/node_modules/.package-lock.json
NODE_CLIENT_GEN := client/node/src/gen/sdksign/v1/signature_service_pb.ts
NODE_CLIENT := client/node/dist/index.js
NODE_EXAMPLE_DEPS := examples/node-backend/node_modules/.package-lock.json

$(NODE_CLIENT_DEPS): client/node/package.json client/node/package-lock.json
	npm ci --prefix client/node --no-audit --no-fund --loglevel=error

$(NODE_CLIENT_GEN): protos/sdksign/v1/signature_service.proto $(NODE_CLIENT_DEPS) $(VENV)/.installed
	@mkdir -p client/node/src/gen
	$(PY) -m grpc_tools.protoc $(PROTO_INCLUDE) --plugin=protoc-gen-es=client/node/node_modules/.bin/protoc-gen-es \
	  --es_out=client/node/src/gen --es_opt=target=ts \
	  protos/sdksign/v1/signature_service.proto google/rpc/error_details.proto

$(NODE_CLIENT): client/node/src/index.ts client/node/tsconfig.json $(NODE_CLIENT_GEN)
	client/node/node_modules/.bin/tsc -p client/node

$(NODE_EXAMPLE_DEPS): examples/node-backend/package.json examples/node-backend/package-lock.json $(NODE_CLIENT_DEPS)
	npm ci --prefix examples/node-backend --no-audit --no-fund --loglevel=error

node-client: $(NODE_CLIENT) $(NODE_EXAMPLE_DEPS) ## build the Node.js client into client/node/dist

# Debian's Chromium, for the browser test (Playwright drives it; it never downloads one).
CHROMIUM := /usr/bin/chromium
$(CHROMIUM):
	$(call APT_INSTALL,chromium)

# CORS_ORIGIN (one origin, e.g. https://dev.example.com:8443) may call it besides localhost's.
GATEWAY_CONFIG := $(if $(CORS_ORIGIN),.build/envoy-gateway.yaml,gateway/envoy.yaml)
gateway: $(VENV)/.installed $(DESCRIPTORS) $(WEB) ## Envoy on 127.0.0.1:8080: gRPC-web and Zoom's sample JSON in front of `make run`
	$(if $(CORS_ORIGIN),@mkdir -p .build && $(PY) gateway/origin.py '$(CORS_ORIGIN)' > $(GATEWAY_CONFIG))
	$(VENV)/bin/envoy -c $(GATEWAY_CONFIG) --disable-hot-restart -l warning

# REPLICAS (default 2) and WORKERS (per replica, default 1); FLEET_ARGS for the rest
# (--port, --base-port, --admin-port, --config): see bench/fleet.py --help.
fleet: $(VENV)/.installed $(DESCRIPTORS) $(WEB) ## REPLICAS servers on 127.0.0.1:50051.. behind one Envoy on :8080 (admin :9901); Ctrl-C stops all
	$(PY) bench/fleet.py $(if $(REPLICAS),--replicas $(REPLICAS)) $(if $(WORKERS),--workers $(WORKERS)) $(FLEET_ARGS)

$(NODE_DEPS): tests/js/package.json tests/js/package-lock.json
	npm ci --prefix tests/js --no-audit --no-fund --loglevel=error

# Debian's Redis, for the shared rate-limit tests (each test starts its own on a loopback port).
REDIS := /usr/bin/redis-server
$(REDIS):
	$(call APT_INSTALL,redis-server)

# Debian's Prometheus (prometheus, promtool), for tests/deploy: promtool checks and unit-tests
# deploy/prometheus's alerting rules, and a real Prometheus scrapes a test's server on loopback.
# Without its recommended node exporter, which the tests do not use.
PROMETHEUS := /usr/bin/prometheus
$(PROMETHEUS):
	$(call APT_INSTALL,--no-install-recommends prometheus)

test: $(VENV)/.installed $(NODE_DEPS) $(DESCRIPTORS) $(WEB) $(NODE_CLIENT) $(NODE_EXAMPLE_DEPS) $(CHROMIUM) $(REDIS) $(PROMETHEUS) ## run the whole test suite
	$(PY) -m pytest $(PYTEST_ARGS)

# tests/unit only: no server process, Envoy, Node or Chromium, so none of them is installed or built.
test-unit: $(VENV)/.installed ## pure logic and in-process servers, seconds
	$(PY) -m pytest tests/unit $(PYTEST_ARGS)

lint: $(VENV)/.installed $(NODE_DEPS) ## ruff (lint, format check), commit subjects, buf lint on the protos
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(PY) .ci/commit_subjects.py
	@mkdir -p .build/protodeps/google/api && \
	  site=$$($(PY) -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])') && \
	  cp $$site/google/api/annotations.proto $$site/google/api/http.proto \
	    $$site/google/api/httpbody.proto .build/protodeps/google/api/
	tests/js/node_modules/.bin/buf lint

typecheck: $(VENV)/.installed $(WEB_GEN) $(NODE_CLIENT_GEN) ## mypy on our own code (not the generated code), tsc on the page and the Node client
	$(VENV)/bin/mypy
	web/node_modules/.bin/tsc -p web
	client/node/node_modules/.bin/tsc -p client/node --noEmit

# Debian's h2load (nghttp2-client), the load generator of make bench and make soak.
H2LOAD := /usr/bin/h2load
$(H2LOAD):
	$(call APT_INSTALL,nghttp2-client)

bench: $(VENV)/.installed $(H2LOAD) ## h2load on a real server: Health/Check, Sign, Verify (and Zoom's sample with ZOOM_SAMPLE_DIR)
	$(PY) bench/run.py $(BENCH_ARGS)

# Reliability scenarios, not part of `make test`: a steady soak, drain, worker and parent kills,
# replica kill and drain behind Envoy, SIGHUP, fuzzing, malformed HTTP/2 frames, half-open
# streams, hostile input through Envoy, then a scan of every log line; one table, exit
# status 1 on a miss.
# SOAK_ARGS: --quick (short runs), --only drain,fuzz,..., --fuzz-count N; see bench/soak.py --help.
SOAK_ARGS ?=
soak: $(VENV)/.installed $(H2LOAD) $(DESCRIPTORS) $(WEB) ## reliability scenarios on real servers, Envoy and the client
	$(PY) bench/soak.py $(SOAK_ARGS)

try-host-start: $(VENV)/.installed ## a host start (token and ZAK) against a local stand-in of Zoom's API, in one command
	$(PY) -m harness.try_host_start

clean:
	rm -rf $(VENV) tests/js/node_modules web/node_modules web/dist web/src/gen gateway/sdksign.pb \
	  client/node/node_modules client/node/dist client/node/src/gen examples/node-backend/node_modules .build .pytest_cache .mypy_cache .ruff_cache
