# syntax=docker/dockerfile:1
# The memcached-operator image: built from source on Debian bookworm with the
# same Debian packages `make deps` installs, run on bookworm-slim with only the
# shared libraries the binary links, as a non-root user.
#
#   docker build -t ghcr.io/memcached-operator/memcached-operator:0.1.0 .
#
# No container engine runs on the project's development machines, so this file
# is not built by `make test`; the local cluster runs the same binary
# (build/bin/memcached-operator) as a process instead.

ARG DEBIAN_RELEASE=bookworm

FROM debian:${DEBIAN_RELEASE} AS build
ENV DEBIAN_FRONTEND=noninteractive
# Everything CMake's configure step looks for (the unit-test and client-library
# packages too: the project configures as a whole even when one target is built).
RUN apt-get update \
 && apt-get install -y --no-install-recommends \
      build-essential cmake ninja-build pkg-config ca-certificates \
      libcpprest-dev libboost-system-dev libssl-dev libyaml-cpp-dev libspdlog-dev libfmt-dev \
      libgtest-dev libgmock-dev libbenchmark-dev libabsl-dev libcxxopts-dev \
      libmemcached-dev python3-dev pybind11-dev nlohmann-json3-dev prometheus-cpp-dev \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY . .
RUN cmake -S . -B /build -G Ninja -DCMAKE_BUILD_TYPE=Release \
 && cmake --build /build --target memcached-operator -j "$(nproc)" \
 && strip /build/bin/memcached-operator \
 && /build/bin/memcached-operator --help > /dev/null

FROM debian:${DEBIAN_RELEASE}-slim
ENV DEBIAN_FRONTEND=noninteractive
# The runtime halves of the -dev packages above that the binary links.
RUN apt-get update \
 && apt-get install -y --no-install-recommends \
      ca-certificates libcpprest2.10 libboost-system1.74.0 libssl3 libyaml-cpp0.7 \
      libspdlog1.10 libfmt9 libabsl20220623 libmemcached11 libhashkit2 \
      libprometheus-cpp-core1.0 \
 && rm -rf /var/lib/apt/lists/* \
 && groupadd --system --gid 65532 nonroot \
 && useradd --system --uid 65532 --gid 65532 --no-create-home --home-dir /nonexistent \
      --shell /usr/sbin/nologin nonroot
COPY --from=build /build/bin/memcached-operator /usr/local/bin/memcached-operator
# Fail the image build, not the first pod, if a shared library is missing.
RUN ! ldd /usr/local/bin/memcached-operator | grep 'not found' \
 && /usr/local/bin/memcached-operator --help > /dev/null
USER 65532:65532
# /metrics and /healthz, /readyz (the chart's defaults).
EXPOSE 8080 8081
ENTRYPOINT ["/usr/local/bin/memcached-operator"]
