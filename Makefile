# Stratus: `make dev` serves a homeserver on 127.0.0.1:$(PORT); `make test` runs every test.
# Override PORT, SERVER_NAME and STATE_DIR to run instances side by side:
#   make dev PORT=8788 STATE_DIR=.state/b
# PROTOCOL=https serves TLS (as federation needs) with TLS_CERT/TLS_KEY, by default a
# self-signed certificate for localhost and 127.0.0.1 made in .state/tls; the Worker trusts
# TLS_CA as NODE_EXTRA_CA_CERTS (that certificate by default: peers started the same way
# share it).
#   make dev PROTOCOL=https PORT=8448

PORT ?= 8787
SERVER_NAME ?= localhost:$(PORT)
PROTOCOL ?= http
PUBLIC_BASEURL ?= $(PROTOCOL)://127.0.0.1:$(PORT)
STATE_DIR ?= .wrangler/state
TLS_DIR ?= .state/tls
TLS_CERT ?= $(TLS_DIR)/cert.pem
TLS_KEY ?= $(TLS_DIR)/key.pem
TLS_CA ?= $(TLS_CERT)

ifeq ($(PROTOCOL),https)
DEV_TLS_DEPS := $(TLS_CERT)
DEV_TLS_ARGS := --local-protocol https --https-key-path $(TLS_KEY) --https-cert-path $(TLS_CERT)
DEV_ENV := NODE_EXTRA_CA_CERTS=$(TLS_CA)
endif

export PATH := $(CURDIR)/node_modules/.bin:$(HOME)/.cargo/bin:$(PATH)
export WRANGLER_SEND_METRICS := false
WRANGLER := node_modules/.bin/wrangler

.PHONY: dev test install build migrate lint unit integration deploy-check clean dev-vars deploy repro reproducible

install:
	sh scripts/install.sh

build: install
	sh scripts/build.sh
	@gzip -9 -c build/index_bg.wasm | wc -c | awk '{ printf "wasm bundle: %.2f MB gzipped (budget 3 MB)\n", $$1 / 1000000 }'
	@cat build/provenance.json

dev-vars:
	sh scripts/dev-vars.sh

migrate: install dev-vars
	$(WRANGLER) d1 migrations apply stratus --local --persist-to $(STATE_DIR)

dev: build migrate $(DEV_TLS_DEPS)
	$(DEV_ENV) STRATUS_SKIP_BUILD=1 $(WRANGLER) dev --ip 127.0.0.1 --port $(PORT) --persist-to $(STATE_DIR) \
		--var SERVER_NAME:$(SERVER_NAME) --var PUBLIC_BASEURL:$(PUBLIC_BASEURL) $(DEV_TLS_ARGS)

# A self-signed certificate for `make dev PROTOCOL=https` (never overwritten once made).
$(TLS_DIR)/cert.pem:
	mkdir -p $(TLS_DIR)
	openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 365 -subj /CN=localhost \
		-addext "subjectAltName=DNS:localhost,IP:127.0.0.1" -keyout $(TLS_DIR)/key.pem -out $(TLS_DIR)/cert.pem

# Formatting and lints for both targets; any warning fails (the wasm-only modules are
# compiled only for wasm32, so both runs are needed).
lint: install
	cargo fmt --check
	cargo clippy --locked --all-targets -- -D warnings
	cargo clippy --locked --target wasm32-unknown-unknown -- -D warnings

unit:
	cargo test --locked
	cargo test --locked -p regex  # shims/regex: the stand-in ruma's push rules compile with

integration: build dev-vars
	sh scripts/install.sh test
	STRATUS_SKIP_BUILD=1 .venv/bin/python -m pytest tests/integration -q -p no:cacheprovider

# wrangler validates wrangler.toml and the bundle exactly as `wrangler deploy` would.
deploy-check: build
	STRATUS_SKIP_BUILD=1 $(WRANGLER) deploy --dry-run --outdir build/dry-run

# `reproducible` comes before the integration tests: it needs the tree as checked out.
test: lint unit reproducible deploy-check integration

clean:
	rm -rf build target/wasm32-unknown-unknown .wrangler .state

# Deploy (README "Deploy"): remote D1 migrations first, then the Worker, with
# build/provenance.json as the STRATUS_PROVENANCE var (GET /_stratus/admin/v1/provenance).
# DRY_RUN=1 only validates and bundles (no Cloudflare account needed); DEPLOY_CONFIG picks
# another configuration file.
DEPLOY_CONFIG ?= wrangler.toml
deploy: build
ifeq ($(DRY_RUN),1)
	STRATUS_SKIP_BUILD=1 $(WRANGLER) deploy --config $(DEPLOY_CONFIG) --dry-run --outdir build/dry-run \
		--var "STRATUS_PROVENANCE:$$(tr -d '\n' < build/provenance.json)"
else
	$(WRANGLER) d1 migrations apply DB --remote --config $(DEPLOY_CONFIG)
	STRATUS_SKIP_BUILD=1 $(WRANGLER) deploy --config $(DEPLOY_CONFIG) \
		--var "STRATUS_PROVENANCE:$$(tr -d '\n' < build/provenance.json)"
endif

# Reproducible build (README "Verifying a deploy"): rebuilds the commit of build/ from a
# clean clone in another directory with a fresh Cargo target directory (a second release
# build from scratch, dependencies included) and compares the wasm and JS hashes.
# REPRO_TARGET=$(CURDIR)/target reuses this checkout's dependency artifacts instead (only our
# crate, wasm-bindgen, wasm-opt and esbuild run again: minutes less, but it trusts them).
REPRO_TARGET ?=
repro: build
	STRATUS_REPRO_TARGET=$(REPRO_TARGET) sh scripts/verify-deploy.sh --local

# The reproducibility test of `make test` (issue 18: two clean builds of one commit give the
# same wasm SHA-256): `make repro`. It needs build/ to be of a committed tree, as in CI (a
# fresh clone); with uncommitted changes it says it was skipped, and `make repro` after the
# commit runs it. REPRO_REQUIRED=1 makes a dirty tree an error instead.
reproducible: build
	@if grep -q '"dirty": false' build/provenance.json; then \
		STRATUS_REPRO_TARGET=$(REPRO_TARGET) sh scripts/verify-deploy.sh --local; \
	elif [ "$(REPRO_REQUIRED)" = 1 ]; then \
		echo "reproducible: FAILED: build/ is of a dirty tree (commit first)" >&2; exit 1; \
	else \
		echo "reproducible: SKIPPED: build/ is of a tree with uncommitted changes; commit, then make repro"; \
	fi
