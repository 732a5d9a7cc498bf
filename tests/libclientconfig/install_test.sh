#!/usr/bin/env bash
# Installs the clientconfig component into a scratch prefix and builds a consumer
# against it three ways: find_package (shared and static) and pkg-config.
set -euo pipefail
build_dir="$1"
src_dir="$(cd "$(dirname "$0")" && pwd)/install_consumer"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cmake --install "$build_dir" --component clientconfig --prefix "$work/prefix" > /dev/null
cmake -S "$src_dir" -B "$work/build" -G Ninja -DCMAKE_PREFIX_PATH="$work/prefix" > /dev/null
cmake --build "$work/build" > /dev/null
a=$(LD_LIBRARY_PATH="$work/prefix/lib" "$work/build/consumer_shared")
b=$("$work/build/consumer_static")
export PKG_CONFIG_PATH="$work/prefix/lib/pkgconfig"
c++ "$src_dir/consumer.cc" -o "$work/consumer_pc" $(pkg-config --cflags --libs clientconfig)
c=$(LD_LIBRARY_PATH="$work/prefix/lib" "$work/consumer_pc")
[ "$a" = "$b" ] && [ "$b" = "$c" ] && [ -n "$a" ]
{ "$work/prefix/bin/clientconfig" --help 2>&1 || true; } | grep -q usage
echo "OK ($a)"
