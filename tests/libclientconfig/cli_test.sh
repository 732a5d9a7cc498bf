#!/usr/bin/env bash
# Smoke test for the clientconfig CLI: show, route, diff on endpoints.json and servers files.
set -euo pipefail
cli="$1"
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
mkdir -p "$dir/a" "$dir/b"
servers() {
  local n=$1 out="" i
  for ((i = 0; i < n; i++)); do
    out+="${out:+, }{\"name\": \"c-$i\", \"host\": \"c-$i.c.ns.svc\", \"address\": \"10.0.0.$i\", \"port\": 11211, \"weight\": 1, \"state\": \"active\"}"
  done
  echo "[$out]"
}
doc() { echo "{\"schema\": \"memcached.operator.io/endpoints/v1\", \"cluster\": \"ns/c\", \"version\": $2, \"hashing\": \"ketama-libmemcached\", \"servers\": $(servers "$1"), \"previous\": null}"; }
doc 3 7 > "$dir/a/endpoints.json"
doc 4 8 > "$dir/b/endpoints.json"
printf 'c-0.c.ns.svc:11211\nc-1.c.ns.svc:11211\nc-2.c.ns.svc:11211\n' > "$dir/servers"

"$cli" show "$dir/a" | grep -q 'version=7 hashing=ketama-libmemcached servers=3'
a=$("$cli" route "$dir/a" user:100 product:50)
b=$("$cli" route "$dir/servers" user:100 product:50)
# The servers file and endpoints.json give the same ring (same hosts, same order).
[ "$(echo "$a" | awk '{print $2}')" = "$(echo "$b" | awk '{print $2}' | sed 's/\..*//')" ]
"$cli" diff "$dir/a" "$dir/b" | grep -q '^+ c-3 '
"$cli" diff "$dir/a" "$dir/b" | grep -Eq '^moved: 2[0-9]\.[0-9]+% '
echo '{"schema": 1}' > "$dir/bad.json"
if "$cli" show "$dir/bad.json" 2> "$dir/err"; then exit 1; fi
grep -q 'schema: expected string' "$dir/err"
echo OK
