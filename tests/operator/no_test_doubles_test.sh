#!/usr/bin/env bash
# Fails when a test double is compiled into an operator artifact (libmcop_core.a, the
# memcached-operator binary): test doubles live in operator/testing/ (mcop_testing), linked only
# by tests. Reads the artifact's defined symbols with `nm -C`, so it sees what was really
# compiled or linked in, whatever CMake or an #include says.
#
# A test double is, by this project's naming convention, anything in namespace mcop::testing or a
# type/function in namespace mcop (at any depth, anonymous namespaces included) whose name starts
# with Fake, Recording, Stub or Mock followed by an upper-case letter (FakeApiClient, FakeClock,
# RecordingEventRecorder); GoogleTest/GoogleMock internals (testing::internal::) count too.
#
# Usage: no_test_doubles_test.sh ARTIFACT...
# Exit: 0 clean; 1 a test double found (the symbols are printed); 2 the check could not run
# (no nm, unreadable or stripped artifact, no mcop symbol at all: never a silent pass).
set -uo pipefail

if [ $# -eq 0 ]; then
  echo "usage: $0 ARTIFACT..." >&2
  exit 2
fi
if ! command -v nm >/dev/null; then
  echo "error: nm not found (binutils)" >&2
  exit 2
fi

double_re='mcop::((\(anonymous namespace\)|[A-Za-z_][A-Za-z0-9_]*)::)*(testing::[A-Za-z0-9_]*|(Fake|Recording|Stub|Mock)[A-Z][A-Za-z0-9_]*)|testing::internal::[A-Za-z0-9_]*'
status=0
for artifact in "$@"; do
  if [ ! -r "$artifact" ]; then
    echo "error: cannot read $artifact" >&2
    exit 2
  fi
  # --defined-only: a symbol the artifact only refers to (U) is not compiled into it.
  if ! symbols=$(nm -C --defined-only "$artifact" 2>&1); then
    echo "error: nm failed on $artifact: $symbols" >&2
    exit 2
  fi
  # Guard against a vacuous pass (stripped binary, wrong file): the operator's own code must show.
  mcop_count=$(grep -c 'mcop::' <<<"$symbols")
  if [ "$mcop_count" -eq 0 ]; then
    echo "error: no mcop:: symbol in $artifact (stripped or not an operator artifact?)" >&2
    exit 2
  fi
  found=$(grep -E "$double_re" <<<"$symbols" | sort -u)
  if [ -n "$found" ]; then
    names=$(grep -oE "$double_re" <<<"$found" | sort -u | tr '\n' ' ')
    echo "test double compiled into $artifact: $names"
    echo "$(wc -l <<<"$found") symbols, e.g.:"
    head -n 20 <<<"$found" | sed 's/^/  /'
    status=1
  else
    echo "ok: $artifact ($mcop_count mcop:: symbols, no test double)"
  fi
done
exit $status
