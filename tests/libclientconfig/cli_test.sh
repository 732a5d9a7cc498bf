#!/usr/bin/env bash
# Smoke test for the clientconfig CLI: show, route, diff on endpoints.json and servers files;
# a FIFO named endpoints.json neither blocks `show` nor keeps `watch` from exiting on a signal.
set -euo pipefail
cli="$1"
dir=$(mktemp -d)
watch_pid=
cleanup() {
  [ -n "$watch_pid" ] && kill -KILL "$watch_pid" 2>/dev/null
  rm -rf "$dir"
}
trap cleanup EXIT
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

# A FIFO named endpoints.json: refused at once, with a message naming it.
mkdir "$dir/fifo"
mkfifo "$dir/fifo/endpoints.json"
rc=0
timeout 10 "$cli" show "$dir/fifo" 2> "$dir/err" || rc=$?
if [ "$rc" = 124 ]; then echo "FAIL: show blocked on a FIFO named endpoints.json" >&2; exit 1; fi
[ "$rc" = 1 ] || { echo "FAIL: show on a FIFO exited $rc, want 1" >&2; exit 1; }
grep -q 'endpoints.json: not a regular file (a FIFO)' "$dir/err" || { cat "$dir/err" >&2; exit 1; }

# `watch` reports it, keeps running, and exits promptly (status 0) on SIGTERM and on SIGINT.
for sig in TERM INT; do
  "$cli" --poll-interval-ms=50 watch "$dir/fifo" > "$dir/out" 2> "$dir/err" &
  watch_pid=$!
  for _ in $(seq 100); do grep -q 'FIFO' "$dir/err" && break; sleep 0.1; done
  grep -q 'error: .*endpoints.json: not a regular file (a FIFO)' "$dir/err" || {
    echo "FAIL: watch did not report the FIFO within 10 s:" >&2; cat "$dir/err" >&2; exit 1; }
  kill -s "$sig" "$watch_pid"
  for _ in $(seq 100); do kill -0 "$watch_pid" 2>/dev/null || break; sleep 0.1; done
  if kill -0 "$watch_pid" 2>/dev/null; then echo "FAIL: watch still running 10 s after SIG$sig" >&2; exit 1; fi
  rc=0
  wait "$watch_pid" || rc=$?
  watch_pid=
  [ "$rc" = 0 ] || { echo "FAIL: watch exited $rc on SIG$sig, want 0" >&2; exit 1; }
done
echo OK
