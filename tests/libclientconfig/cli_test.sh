#!/usr/bin/env bash
# Smoke test for the clientconfig CLI: show, route, diff on endpoints.json and servers files;
# ping, get and set against a memcached with TLS, client certificates and authentication;
# a FIFO named endpoints.json neither blocks `show` nor keeps `watch` from exiting on a signal.
set -euo pipefail
cli="$1"
make_pki="$2"
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
# A prepare document (3 -> 4): `route` names the next owner of the keys that move, `show` the phase.
mkdir "$dir/prepare"
echo "{\"schema\": \"memcached.operator.io/endpoints/v1\", \"cluster\": \"ns/c\", \"phase\": \"prepare\", \"version\": 9, \"hashing\": \"ketama-libmemcached\", \"servers\": $(servers 3), \"next\": {\"version\": 10, \"hashing\": \"ketama-libmemcached\", \"servers\": $(servers 4)}, \"previous\": null}" > "$dir/prepare/endpoints.json"
"$cli" show "$dir/prepare" | grep -q '^phase: prepare$'
"$cli" show "$dir/prepare" | grep -q '^next: version=10 hashing=ketama-libmemcached servers=4$'
keys=$(seq -f 'k%g' 1 200)
# shellcheck disable=SC2086
"$cli" route "$dir/prepare" $keys > "$dir/route"
# Every key with a next= moves to c-3 (the only new member); about a quarter move.
grep -q $'\tnext=c-3 ' "$dir/route"
if grep $'\tnext=' "$dir/route" | grep -qv $'\tnext=c-3 '; then echo "FAIL: a next owner other than c-3" >&2; exit 1; fi
moved=$(grep -c $'\tnext=' "$dir/route")
[ "$moved" -gt 20 ] && [ "$moved" -lt 100 ] || { echo "FAIL: $moved of 200 keys move" >&2; exit 1; }
# A next ring outside prepare/copy is refused with the rule.
sed 's/"prepare"/"switch"/' "$dir/prepare/endpoints.json" > "$dir/bad-phase.json"
if "$cli" show "$dir/bad-phase.json" 2> "$dir/err"; then exit 1; fi
grep -q 'next: only allowed in phase prepare or copy, got phase "switch"' "$dir/err"
echo '{"schema": 1}' > "$dir/bad.json"
if "$cli" show "$dir/bad.json" 2> "$dir/err"; then exit 1; fi
grep -q 'schema: expected string' "$dir/err"

# TLS, client certificates and authentication: a memcached with -Z (ssl_verify_mode=2) and -Y,
# certificates from make_test_pki, a document saying so.
tls="$dir/tls"
mkdir "$tls"
chmod 755 "$dir" "$tls"
"$make_pki" "$tls" m-0.m.ns.svc
printf 'alice:s3cret\n' > "$tls/auth"
printf 'alice:wrong\n' > "$tls/auth-wrong"
chmod 644 "$tls"/*
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
user=(); [ "$(id -u)" = 0 ] && user=(-u nobody)
memcached "${user[@]}" -l 127.0.0.1 -p "$port" -U 0 -Y "$tls/auth" -Z \
  -o "ssl_chain_cert=$tls/server.crt,ssl_key=$tls/server.key,ssl_ca_cert=$tls/ca.crt,ssl_verify_mode=2" 2>/dev/null &
mc_pid=$!
trap 'kill $mc_pid 2>/dev/null; cleanup' EXIT
for _ in $(seq 100); do (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && break; sleep 0.05; done
mkdir "$dir/secure"
echo "{\"schema\": \"memcached.operator.io/endpoints/v1\", \"cluster\": \"ns/m\", \"version\": 1, \"hashing\": \"ketama-libmemcached\", \"tls\": {\"clientAuth\": \"require\"}, \"auth\": \"ascii\", \"servers\": [{\"name\": \"m-0\", \"host\": \"m-0.m.ns.svc\", \"address\": \"127.0.0.1\", \"port\": $port, \"weight\": 1, \"state\": \"active\"}], \"previous\": null}" > "$dir/secure/endpoints.json"
"$cli" show "$dir/secure" | grep -q '^security: tls=on clientAuth=require auth=ascii$'
flags=(--tls-ca="$tls/ca.crt" --tls-cert="$tls/client.crt" --tls-key="$tls/client.key" --auth-file="$tls/auth")
# Without the flags: refused before anything is sent, naming what to give.
if "$cli" set "$dir/secure" k v 2> "$dir/err"; then echo "FAIL: set without TLS flags" >&2; exit 1; fi
grep -q 'FailedPrecondition: .*speak TLS' "$dir/err" || { cat "$dir/err" >&2; exit 1; }
grep -q -- '--tls-ca' "$dir/err"
if "$cli" ping "$dir/secure" 2> "$dir/err"; then exit 1; fi
grep -q 'give --tls-ca, --tls-cert and --tls-key' "$dir/err"
# With them: every server answers over TLS, presenting the certificate it was given.
want_sha=$(cat "$tls/server.sha256")
"$cli" "${flags[@]}" ping "$dir/secure" > "$dir/out" || { cat "$dir/out" >&2; exit 1; }
grep -q "^m-0	127.0.0.1:$port	version=1.6.18 tls=on cert-sha256=$want_sha auth=ok$" "$dir/out" || { cat "$dir/out" >&2; exit 1; }
"$cli" "${flags[@]}" set "$dir/secure" greeting hello
[ "$("$cli" "${flags[@]}" get "$dir/secure" greeting absent)" = $'greeting\thello\nabsent\t(miss)' ]
# Wrong password, and no client certificate: refused.
if "$cli" "${flags[@]}" --auth-file="$tls/auth-wrong" get "$dir/secure" greeting 2> "$dir/err"; then exit 1; fi
grep -q 'PermissionDenied: .*authentication as "alice" refused' "$dir/err" || { cat "$dir/err" >&2; exit 1; }
if grep -q wrong "$dir/err"; then echo "FAIL: the password was printed" >&2; exit 1; fi
if "$cli" --tls-ca="$tls/ca.crt" --auth-file="$tls/auth" ping "$dir/secure" > "$dir/out"; then exit 1; fi
grep -q 'PermissionDenied: .*refused this client.s certificate' "$dir/out" || { cat "$dir/out" >&2; exit 1; }
if "$cli" "${flags[@]}" --tls-cert="$tls/server.crt" get "$dir/secure" greeting 2> "$dir/err"; then exit 1; fi
grep -q 'tls.key does not match tls.crt' "$dir/err" || { cat "$dir/err" >&2; exit 1; }

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
  # The whole line, not a word of it: stderr may be read while the line is half written.
  fifo_error='error: .*endpoints.json: not a regular file (a FIFO)'
  for _ in $(seq 100); do grep -q "$fifo_error" "$dir/err" && break; sleep 0.1; done
  grep -q "$fifo_error" "$dir/err" || {
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
