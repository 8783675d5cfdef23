# Two commands for a new user: `make demo` and `make test`. Each sets up what it needs on a fresh machine:
# Debian packages (when root), a virtualenv in .venv, and the project installed into it.

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
DEMO := .demo
# Debian packages the targets need; installed only when running as root and missing.
# iproute2/ethtool/openvswitch-switch: the host adapter's integration tests (and oracles in tests); iputils-ping and
# containernetworking-plugins (static, host-local, host-device in /usr/lib/cni): the CNI's tests and bench;
# qemu-system-x86 … bc: the real-kernel tier (tests/kernel), which builds netdevsim/vdpa_sim modules; iperf3: `make demo`
# (the seed's pod image is iperf3; Debian's stands in).
DEB_PACKAGES := python3-venv iproute2 ethtool kmod udev openvswitch-switch iputils-ping containernetworking-plugins \
  qemu-system-x86 busybox-static cpio gcc-12 make libc6-dev bc xz-utils iperf3

# The real-kernel tier (tests/kernel) must run, not skip, wherever QEMU can: as root on x86_64 (CI). Elsewhere it
# skips with a printed reason. Override with VDPA_REQUIRE_KERNEL_TIER=0|1.
VDPA_REQUIRE_KERNEL_TIER ?= $(shell [ "$$(id -u)" = 0 ] && [ "$$(uname -m)" = x86_64 ] && echo 1 || echo 0)
export VDPA_REQUIRE_KERNEL_TIER

.PHONY: demo test lint typecheck unit bench crds protos setup clean

setup: $(STAMP)

$(STAMP): pyproject.toml Makefile
	@if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	  missing=$$(for p in $(DEB_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || echo $$p; done); \
	  if [ -n "$$missing" ]; then \
	    echo "installing Debian packages: $$missing"; \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $$missing >/dev/null; \
	  fi; \
	fi
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[dev]'
	touch $(STAMP)

# The seed page end to end on a simulated two-node cluster (scripts/demo-seed): validate and render offline, then
# `vdpactl sim up`, the seed's manifests with kubectl, its verify commands verbatim, `vdpactl verify`, iperf3, and
# `vdpactl sim down` whatever happens. Needs root (network namespaces, OVS).
demo: $(STAMP)
	@mkdir -p $(DEMO)
	$(BIN)/python scripts/demo-seed --state $(DEMO)/cluster

test: $(STAMP)
	$(BIN)/ruff check src tests bench scripts
	$(BIN)/lint-imports
	$(BIN)/mypy
	$(BIN)/python scripts/gen-crds --check
	$(BIN)/pytest

bench: $(STAMP)
	$(BIN)/python bench/render.py
	$(BIN)/python bench/daemon_apply.py
	$(BIN)/python bench/operator_sync.py
	$(BIN)/python bench/device_plugin.py
	$(BIN)/python bench/cni.py
	$(BIN)/python bench/apiserver_durable.py
	$(BIN)/python bench/hostile_input.py
	$(BIN)/python bench/apiserver_watch.py
	$(BIN)/python bench/demo.py

crds: $(STAMP)
	$(BIN)/python scripts/gen-crds

protos: $(STAMP)
	$(BIN)/python scripts/gen-protos

clean:
	@# a demo's cluster killed mid-run leaves processes and namespaces: take them down before its state goes
	@if [ -x $(BIN)/vdpactl ] && [ -d $(DEMO)/cluster ]; then $(BIN)/vdpactl sim down --state $(DEMO)/cluster; fi
	rm -rf $(VENV) $(DEMO) .pytest_cache .mypy_cache .ruff_cache .hypothesis
