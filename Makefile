# `make demo`, `make test` and `make test-fast` set everything up idempotently, then run. `make setup` alone installs.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
# gcc and python3-dev: pip builds cmsisdsp (a test dependency, CMSIS-DSP's Python wrapper) from its sdist
APT_PACKAGES := gcc-arm-none-eabi libnewlib-arm-none-eabi qemu-system-arm rustc-web cargo-web rust-web-src rust-web-clippy \
                bindgen clang python3-venv chromium openssh-server gcc python3-dev

.PHONY: setup apt venv demo test test-fast bench docs clean

setup: apt venv

apt:
	@missing=$$(for p in $(APT_PACKAGES); do dpkg-query -W -f='$${Status}\n' $$p 2>/dev/null | grep -q 'install ok installed' || echo $$p; done); \
	if [ -n "$$missing" ]; then \
	  echo "installing apt packages: $$missing"; \
	  if [ "$$(id -u)" = 0 ]; then SUDO=; else SUDO=sudo; fi; \
	  $$SUDO apt-get update -q && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -q $$missing; \
	fi

venv: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	@test -x $(VENV)/bin/python || $(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install -q --upgrade pip
	$(VENV)/bin/pip install -q -e '.[test]'
	@# the motion example reads only the BasicMotions files aeon bundles: without its dependencies, which would
	@# pin numpy below what TensorFlow here was tested with (`pip install -e '.[examples]'` gets the full package)
	$(VENV)/bin/pip install -q --no-deps 'aeon>=1.0'
	@touch $@

demo: setup
	$(VENV)/bin/tinypipe run pipelines/gesture

# the suite on every core: pytest-xdist, one test module per worker at a time (`--dist loadfile`), the workers
# sharing one user-level cache (sysroots, compiled crates, TFLM objects; tests/conftest.py). TEST_WORKERS=0: one process
TEST_WORKERS ?= auto
test: setup
	$(VENV)/bin/pytest -q -n $(TEST_WORKERS) --dist loadfile

# the tests not marked `slow` (no sysroot, firmware, TFLM library or training): a couple of minutes at most
test-fast: setup
	$(VENV)/bin/pytest -q -m "not slow" -n $(TEST_WORKERS)

bench: setup
	$(VENV)/bin/python benchmarks/noop.py

docs: venv
	$(VENV)/bin/python -m tinypipe.config.reference --write

clean:
	rm -rf pipelines/*/.tinypipe pipelines/*/tinypipe.lock pipelines/*/dist
