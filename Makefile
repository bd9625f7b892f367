# Two promises: `make demo` runs the main job, `make test` passes the tests, on a fresh Debian.
SHELL := /bin/bash
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

# Debian packages the tests and the demo run for real (promtool ships with prometheus;
# PostgreSQL's server binaries live off PATH, in /usr/lib/postgresql/<version>/bin).
DEB_PACKAGES := prometheus prometheus-alertmanager chromium postgresql victoria-metrics
DEB_BINARIES := prometheus promtool prometheus-alertmanager amtool chromium victoria-metrics

.PHONY: test demo deps venv lint format bench generate lock clean

$(STAMP): pyproject.toml
	$(PY) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test]'
	touch $(STAMP)

venv: $(STAMP)

# Installs the Debian packages when running as root; otherwise says exactly what to run.
deps:
	@missing=""; for b in $(DEB_BINARIES); do command -v $$b >/dev/null 2>&1 || missing="$$missing $$b"; done; \
	compgen -G '/usr/lib/postgresql/*/bin/initdb' >/dev/null || missing="$$missing initdb"; \
	if [ -n "$$missing" ]; then \
	  if [ "$$(id -u)" = 0 ]; then \
	    echo "installing Debian packages for:$$missing"; \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $(DEB_PACKAGES) >/dev/null; \
	  else \
	    echo "missing:$$missing — run: sudo apt-get install -y $(DEB_PACKAGES)"; \
	  fi; \
	fi

test: deps venv
	$(BIN)/ruff check engine tests bench
	$(BIN)/slo-engine validate slo_specs
	$(BIN)/slo-engine generate --check
	$(BIN)/pytest -q

demo: deps venv
	$(BIN)/python -m engine.demo

lint: venv
	$(BIN)/ruff check engine tests bench
	$(BIN)/ruff format --check engine tests bench

format: venv
	$(BIN)/ruff format engine tests bench
	$(BIN)/ruff check --fix engine tests bench

generate: venv
	$(BIN)/slo-engine generate

# The image installs exactly these pins (with hashes); rerun after changing dependencies.
lock: venv
	CUSTOM_COMPILE_COMMAND="make lock" $(BIN)/pip-compile --quiet --strip-extras --generate-hashes \
	  --no-emit-index-url --no-emit-find-links -o requirements.lock pyproject.toml

bench: deps venv
	@for f in bench/bench_*.py; do echo "== $$f"; $(BIN)/python $$f; done

clean:
	rm -rf $(VENV) .pytest_cache test-artifacts dist
