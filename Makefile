# mirror: two commands on a fresh machine: `make demo` and `make test`.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: demo test lint typecheck unit system-deps venv bench clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[test]'
	touch $(STAMP)

venv: $(STAMP)

# Runs the main job on an embedded default: a small multi-platform image is written to an
# OCI layout on local disk, copied to another layout by `mirror copy`, and listed.
demo: $(STAMP)
	$(PY) -m mirror demo --dir demo-out

# Debian's docker-registry and skopeo, when missing (tests start their own registries); the outside
# tools the interop suite builds with and pulls back with (tests/test_interop_*.py); chromium, in
# which the status page test reads the page; python3-venv, without which Debian's python3 makes no
# venv (so `test` runs this before creating .venv).
system-deps:
	@missing=""; \
	$(PYTHON) -c 'import ensurepip' >/dev/null 2>&1 || missing="$$missing python3-venv"; \
	command -v docker-registry >/dev/null 2>&1 || missing="$$missing docker-registry"; \
	command -v skopeo >/dev/null 2>&1 || missing="$$missing skopeo"; \
	command -v htpasswd >/dev/null 2>&1 || missing="$$missing apache2-utils"; \
	for tool in buildah podman containerd umoci zstd chromium; do \
	  command -v $$tool >/dev/null 2>&1 || missing="$$missing $$tool"; \
	done; \
	if [ -n "$$missing" ]; then \
	  echo "installing:$$missing"; \
	  if [ "$$(id -u)" = 0 ]; then SUDO=""; else SUDO="sudo"; fi; \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq $$missing >/dev/null; \
	fi

lint: $(STAMP)
	$(VENV)/bin/ruff check mirror tests benchmarks
	$(VENV)/bin/ruff format --check mirror

typecheck: $(STAMP)
	$(VENV)/bin/mypy mirror

unit: $(STAMP)
	$(PY) -m pytest -q -x

test: system-deps $(STAMP) lint typecheck
	$(PY) -m pytest -q

bench: $(STAMP) system-deps
	$(PY) -m benchmarks.run

clean:
	rm -rf $(VENV) demo-out .mypy_cache .ruff_cache .pytest_cache
