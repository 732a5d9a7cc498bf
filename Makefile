# The two commands a new user runs are `make demo` and `make test`; both install what they need.
SHELL := /bin/bash
BUILD_DIR ?= build
JOBS ?= $(shell nproc)

# Debian packages the project builds, tests and demos with (Go comes with the machine).
DEB_PACKAGES := build-essential cmake ninja-build ccache pkg-config git curl ca-certificates \
  libcpprest-dev libboost-system-dev libssl-dev libyaml-cpp-dev libspdlog-dev libfmt-dev \
  libgtest-dev libgmock-dev libbenchmark-dev libabsl-dev libcxxopts-dev nlohmann-json3-dev \
  prometheus-cpp-dev \
  libmemcached-dev libmemcached-tools memcached \
  python3-dev python3-pymemcache python3-matplotlib pybind11-dev clang libclang-rt-14-dev

# Paths under the checkout are hashed relative to it, so every clone shares the cache.
export CCACHE_BASEDIR := $(CURDIR)
export CCACHE_NOHASHDIR := 1

SUDO := $(if $(filter 0,$(shell id -u)),,sudo)

.PHONY: all deps build unit e2e test demo clean chart-test sync-crds bench-hitrate bench-operator reliability

all: build

# Idempotent: installs only the packages that are missing.
deps:
	@missing=$$(for p in $(DEB_PACKAGES); do dpkg-query -W -f='$${Status}\n' $$p 2>/dev/null | grep -q '^install ok installed' || echo $$p; done); \
	if [ -n "$$missing" ]; then \
	  echo "installing: $$missing"; \
	  $(SUDO) apt-get update -qq && DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq $$missing; \
	else echo "deps: all Debian packages present"; fi

# ccache keeps compiled objects under ~/.cache/ccache, so a fresh clone (CI) rebuilds in seconds.
build: deps
	cmake -S . -B $(BUILD_DIR) -G Ninja \
	  $$(command -v ccache >/dev/null && echo -DCMAKE_CXX_COMPILER_LAUNCHER=ccache -DCMAKE_C_COMPILER_LAUNCHER=ccache)
	cmake --build $(BUILD_DIR) -j $(JOBS)

unit: build
	cd $(BUILD_DIR) && ctest --output-on-failure -j $(JOBS)

e2e: build
	e2e/run-tests

test: deps build unit e2e

# The fault-injection suite (docs/reliability.md): failpoints at every step, API server outages,
# watch expiry, conflict storms, steady-state silence from the audit log, memcached and node
# faults, load through resizes. Longer than `make test`'s budget, so it is its own target; CI
# runs both. The tests carry the `reliability` build tag and are named TestReliability*.
reliability: build
	e2e/run-tests -tags reliability -timeout 60m -parallel 2 -run '^TestReliability' ./operator/

demo: build
	e2e/demo

# The hit-rate benchmark (e2e/bench/README.md): a private local cluster, the operator driving
# scale 2->3, 3->2 and a rolling update under a cache-aside load; CSV, JSON and a PNG plot.
# About 5 minutes; not part of `make test`. Options: make bench-hitrate BENCH_ARGS='--rate 6000'.
bench-hitrate: build
	e2e/bench/hitrate $(BENCH_ARGS)

# The operator benchmark (issue 13, e2e/bench/README.md): ours beside a controller-runtime
# reference at N = 1, 10, 100, 1000 clusters on a private local cluster; JSON, a Markdown table
# and a PNG plot. About two hours with the defaults (3 runs, 10 min steady state); e.g.
# make bench-operator BENCH_ARGS='--n 1,10,100 --runs 1 --steady 60s'.
bench-operator: build
	e2e/bench/operator $(BENCH_ARGS)

# Helm chart static checks (lint, template, RBAC, schema, CRD copy); no cluster needed.
# `make test` runs the same checks inside the e2e suite.
chart-test:
	helm/test-chart.sh

# Copy crds/ (the one source) into the chart; commit the result.
sync-crds:
	helm/sync-crds.sh

clean:
	rm -rf $(BUILD_DIR)
