# proxymx — every target installs what it needs. See README.md.
SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help

PYTHON ?= $(shell for p in python3.13 python3.12 python3.11 python3; do \
	command -v $$p >/dev/null 2>&1 && $$p -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null && { echo $$p; break; }; done)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
export AWS_DEFAULT_REGION ?= us-east-1
export SAM_CLI_TELEMETRY := 0
# Debian packages for the data plane (real Postfix, HAProxy, swaks) and shellcheck.
DEB_PACKAGES := postfix haproxy swaks

.PHONY: help venv system-deps lint test test-unit test-integration test-dataplane build demo bench mutation clean constraints

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-18s %s\n", $$1, $$2}'

$(STAMP): pyproject.toml constraints.txt
	@test -n "$(PYTHON)" || { echo "proxymx needs Python >= 3.11 on PATH" >&2; exit 1; }
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --disable-pip-version-check -c constraints.txt -e '.[dev]'
	touch $@

venv: $(STAMP) ## create .venv with the pinned packages

system-deps: ## install Postfix, HAProxy and swaks from Debian (only when root and missing)
	@missing=""; for p in $(DEB_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -z "$$missing" ]; then echo "system-deps: $(DEB_PACKAGES) present"; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	  echo "system-deps: installing$$missing"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $$missing >/dev/null; \
	else echo "system-deps: missing$$missing (run 'sudo apt-get install$$missing'); data-plane tests will skip"; fi

lint: venv ## ruff, mypy, sam validate --lint (cfn-lint), shellcheck
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(BIN)/sam validate --lint --template template.yaml --region $(AWS_DEFAULT_REGION)
	$(BIN)/python -m proxymx_tools.template document-script > $(VENV)/document-script.sh
	$(BIN)/shellcheck --shell=bash $(VENV)/document-script.sh .ci/run $$(git ls-files '*.sh')

build: venv ## sam build (python3.13, arm64), layer pruned to what the handlers import, bytecode, proof, layer <= 8 MB
	bash scripts/sam-build.sh $(BIN)

test: venv system-deps lint build ## every test: lint, sam build, unit, integration (moto), data plane (Postfix+HAProxy)
	$(BIN)/pytest -q -n 2 --dist loadfile tests

test-unit: venv
	$(BIN)/pytest -q tests/unit
test-integration: venv
	$(BIN)/pytest -q tests/integration
test-dataplane: venv system-deps
	$(BIN)/pytest -q tests/dataplane

demo: venv system-deps ## the whole chain on the embedded AWS and, as root on Debian, local Postfix + HAProxy (installed like make test)
	$(BIN)/proxymx demo

bench: venv system-deps build ## benchmarks, printed as tables: Reconcile sweep calls and time; PROXY header on vs off; cold start
	$(BIN)/python -m proxymx_tools.bench
	$(BIN)/python -m proxymx_tools.bench_coldstart

mutation: venv ## mutation testing of the decision code against the unit tests, kill rate per file (~7 min; not in CI)
	$(BIN)/python -m proxymx_tools.mutation

constraints: ## re-pin every package from the current venv
	{ echo '# Every Python package the venv may install, pinned. Regenerate with `make constraints`.'; \
	  $(BIN)/pip freeze --exclude-editable; } > constraints.txt

clean:
	rm -rf $(VENV) .aws-sam .mypy_cache .ruff_cache .pytest_cache
