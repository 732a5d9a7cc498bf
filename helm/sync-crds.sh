#!/usr/bin/env bash
# The top-level crds/ is the one source of the CustomResourceDefinitions; the
# chart's crds/ holds an identical copy (Helm installs only what is inside the
# chart). This copies them over; with --check it changes nothing and exits 1,
# naming the files, if the copy differs.
#
#   helm/sync-crds.sh           copy crds/*.yaml into helm/memcached-operator/crds/
#   helm/sync-crds.sh --check   fail if they differ
set -euo pipefail
repo="$(cd "$(dirname "$(readlink -f "${BASH_SOURCE[0]}")")/.." && pwd)"
src="$repo/crds"
dst="$repo/helm/memcached-operator/crds"

list() { (cd "$1" 2>/dev/null && find . -maxdepth 1 -type f \( -name '*.yaml' -o -name '*.yml' \) | sed 's#^\./##' | sort); }

if [[ "${1:-}" == --check ]]; then
  rc=0
  if ! diff <(list "$src") <(list "$dst") > /dev/null; then
    echo "sync-crds: the chart's crds/ and crds/ hold different files:" >&2
    diff <(list "$src") <(list "$dst") | sed -n 's/^< /  only in crds\/: /p; s/^> /  only in the chart: /p' >&2
    rc=1
  fi
  for f in $(list "$src"); do
    if [[ -f "$dst/$f" ]] && ! cmp -s "$src/$f" "$dst/$f"; then
      echo "sync-crds: $f differs between crds/ and helm/memcached-operator/crds/" >&2
      rc=1
    fi
  done
  if [[ $rc -ne 0 ]]; then
    echo "sync-crds: run helm/sync-crds.sh (or make sync-crds) and commit the result" >&2
  fi
  exit $rc
fi

mkdir -p "$dst"
for f in $(list "$dst"); do
  [[ -f "$src/$f" ]] || { rm -f "$dst/$f"; echo "sync-crds: removed $f from the chart"; }
done
for f in $(list "$src"); do
  if ! cmp -s "$src/$f" "$dst/$f"; then
    cp "$src/$f" "$dst/$f"
    echo "sync-crds: copied $f"
  fi
done
