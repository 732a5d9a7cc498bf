#!/usr/bin/env python3
"""Tests for the clientconfig Python module and the pymemcache example, against
real memcached processes and a kubelet-style ConfigMap directory.
Usage: python_test.py BUILD_PYTHON_DIR CLI EXAMPLES_DIR MAKE_TEST_PKI"""
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, sys.argv[1])
CLI = sys.argv[2]
sys.path.insert(0, sys.argv[3])
MAKE_PKI = sys.argv[4]
import clientconfig  # noqa: E402

failures = []


def check(cond, what):
    if not cond:
        failures.append(what)
        print("FAIL:", what)


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def start_memcached(extra=()):
    for _ in range(10):
        port = free_port()
        args = ["memcached", "-l", "127.0.0.1", "-p", str(port), "-U", "0", "-m", "16"] + list(extra)
        if os.geteuid() == 0:
            args += ["-u", "nobody"]
        p = subprocess.Popen(args)
        for _ in range(200):
            try:
                socket.create_connection(("127.0.0.1", port), 0.1).close()
                # free_port's port can be taken by another test's server before ours binds it:
                # then that one answers and ours exits at once (bind failed). Ours must be alive.
                time.sleep(0.1)
                if p.poll() is None:
                    return p, port
                break
            except OSError:
                if p.poll() is not None:
                    break
                time.sleep(0.01)
        p.kill()
    raise RuntimeError("memcached did not start")


class Projection:
    """The kubelet's atomic ConfigMap layout: ..TIMESTAMP dir, ..data symlink, key symlinks."""

    def __init__(self, path):
        self.path, self.seq, self.old = path, 0, None
        os.makedirs(path, exist_ok=True)

    def project(self, data):
        self.seq += 1
        ts = "..2026_11_26_05_00_00.%09d" % self.seq
        os.mkdir(os.path.join(self.path, ts))
        for k, v in data.items():
            with open(os.path.join(self.path, ts, k), "w") as f:
                f.write(v)
        tmp = os.path.join(self.path, "..data_tmp")
        os.symlink(ts, tmp)
        os.rename(tmp, os.path.join(self.path, "..data"))
        for k in data:
            link = os.path.join(self.path, k)
            if not os.path.islink(link):
                os.symlink(os.path.join("..data", k), link)
        if self.old:
            shutil.rmtree(os.path.join(self.path, self.old))
        self.old = ts


def endpoints(ports, version):
    return json.dumps({
        "schema": "memcached.operator.io/endpoints/v1", "cluster": "test/py", "version": version,
        "hashing": "ketama-libmemcached",
        "servers": [{"name": "py-%d" % i, "host": "py-%d.py.test.svc" % i, "address": "127.0.0.1", "port": p,
                     "weight": 1, "state": "active"} for i, p in enumerate(ports)],
        "previous": None})


def wait_until(predicate):
    for _ in range(1000):  # 10 s: generous for a loaded machine; returns as soon as it holds
        if predicate():
            return True
        time.sleep(0.01)
    return False


def wait_version(watcher, v):
    for _ in range(1000):
        s = watcher.current()
        if s is not None and s.version == v:
            return True
        time.sleep(0.01)
    return False


def check_held_versions_and_files(tmp):
    """What the watcher does not apply (a lower version, a FIFO) and what it applies
    with a warning (an empty list), as the C++ Watcher does."""
    proj = Projection(os.path.join(tmp, "held"))
    proj.project({"endpoints.json": endpoints([11211, 11212], 3)})
    w = clientconfig.Watcher(proj.path, poll_interval_ms=3600 * 1000)
    check(w.current().source == "endpoints.json", "snapshot source")
    proj.project({"endpoints.json": endpoints([11211], 2)})
    try:
        w.reload_now()  # raises what the watcher (or its thread, first) refused
        check(False, "a lower version raises from reload_now")
    except RuntimeError as e:
        check("version 2 is lower than the current version 3" in str(e), "lower version reported: %s" % e)
    check(w.current().version == 3 and w.error_count == 1, "a lower version keeps the current snapshot")
    check("lower than the current version 3" in w.last_error, "last_error: %s" % w.last_error)
    proj.project({"endpoints.json": endpoints([], 4)})
    w.reload_now()  # or the watcher thread, woken by the swap, got there first
    check(w.current().version == 4 and not w.current().servers, "an empty list is applied")
    check(w.warning_count == 1 and "lists no servers" in w.last_warning, "empty list warned: %s" % w.last_warning)

    # A FIFO named endpoints.json: refused at once (in a child, so a hang fails the test
    # instead of blocking it).
    d = os.path.join(tmp, "fifo")
    os.mkdir(d)
    os.mkfifo(os.path.join(d, "endpoints.json"))
    code = ("import sys, clientconfig\n"
            "try:\n"
            "    clientconfig.Watcher(sys.argv[1])\n"
            "except ValueError as e:\n"
            "    print(e)\n")
    try:
        out = subprocess.run([sys.executable, "-c", code, d], env=dict(os.environ, PYTHONPATH=sys.argv[1]),
                             capture_output=True, text=True, timeout=20)
        check("endpoints.json: not a regular file (a FIFO)" in out.stdout,
              "FIFO refused with ValueError: %r %r" % (out.stdout, out.stderr))
    except subprocess.TimeoutExpired:
        check(False, "Watcher() blocked on a FIFO named endpoints.json")


def transition_doc(ports, version, phase, servers, next_=None, previous=None):
    def ring(v, members):
        return {"version": v, "hashing": "ketama-libmemcached",
                "servers": [{"name": "py-%d" % i, "host": "py-%d.py.test.svc" % i, "address": "127.0.0.1",
                             "port": ports[i], "weight": 1, "state": "active"} for i in members]}
    doc = {"schema": "memcached.operator.io/endpoints/v1", "cluster": "test/py", "phase": phase}
    doc.update(ring(version, servers))
    if next_ is not None:
        doc["next"] = ring(version + 1, next_)
    doc["previous"] = ring(version - 1, previous) if previous is not None else None
    return json.dumps(doc)


def check_client(tmp, ports):
    """clientconfig.Client: pymemcache's methods and return values, and the transition rules
    while it follows the directory through prepare -> switch -> stable."""
    from pymemcache.client.base import Client as Pymemcache
    direct = {p: Pymemcache(("127.0.0.1", p)) for p in ports}
    for d in direct.values():
        d.flush_all()
    proj = Projection(os.path.join(tmp, "client"))
    proj.project({"endpoints.json": transition_doc(ports, 1, "stable", [0, 1])})
    c = clientconfig.Client(proj.path, poll_interval_ms=50)
    # pymemcache's signatures and return values.
    check(c.set("a", "x") is True and c.get("a") == b"x", "set str, get bytes")
    check(c.set(b"b", b"\x00y", expire=100, noreply=False, flags=0) is True, "set bytes with pymemcache kwargs")
    check(c.get("missing") is None and c.get("missing", default=b"d") == b"d", "get default")
    check(c.add("a", "z", noreply=False) is False and c.add("a", "z") is True, "add: False when present (noreply=False)")
    check(c.get_many(["a", b"b", "missing"]) == {"a": b"x", b"b": b"\x00y"}, "get_many keys as given")
    check(c.set("n", 5, noreply=False) and c.incr("n", 2) == 7 and c.decr("n", 1) == 6, "incr/decr")
    check(c.incr("missing", 1) is None and c.incr("n", 1, noreply=True) is None, "incr miss / noreply -> None")
    check(c.touch("a", expire=100, noreply=False) is True and c.touch("missing", noreply=False) is False, "touch")
    check(c.delete("a", noreply=False) is True and c.delete("a", noreply=False) is False, "delete")
    check(c.get("\u00e9t\u00e9") is None and c.set("\u00e9t\u00e9", "\u00e9") and c.get("\u00e9t\u00e9") == "\u00e9".encode(), "UTF-8 key and value")
    try:
        c.set("bad key", "v")
        check(False, "a key with a space raises ValueError")
    except ValueError:
        pass
    # A key that moves to server 2 when the ring grows.
    before = clientconfig.parse(transition_doc(ports, 1, "stable", [0, 1]))
    after = clientconfig.parse(transition_doc(ports, 1, "stable", [0, 1, 2]))
    key = next(k for k in ("m:%d" % i for i in range(10000)) if before.owner(k).port != after.owner(k).port)
    old, new = direct[before.owner(key).port], direct[after.owner(key).port]
    # prepare: the write lands on the owner and deletes the operator's copy on the next owner.
    proj.project({"endpoints.json": transition_doc(ports, 2, "prepare", [0, 1], next_=[0, 1, 2])})
    check(wait_until(lambda: c.snapshot().phase == "prepare"), "client follows the directory to prepare")
    r = c.route(key)
    check(r.owner.port == before.owner(key).port and r.next_owner.port == after.owner(key).port
          and r.previous_owner is None, "route names the next owner in prepare: %r" % r)
    owner, previous = r
    check(owner == r.owner and previous is None, "Route unpacks as (owner, previous_owner)")
    new.set(key, b"copied-v0")
    check(c.set(key, "v1", noreply=False) is True, "set in prepare")
    check(old.get(key) == b"v1" and new.get(key) is None, "prepare: the next owner's copy is gone after a write")
    # switch: a miss on the new owner reads the previous one and backfills.
    proj.project({"endpoints.json": transition_doc(ports, 3, "switch", [0, 1, 2], previous=[0, 1])})
    check(wait_until(lambda: c.snapshot().phase == "switch"), "client follows to switch")
    check(c.route(key).previous_owner.port == before.owner(key).port, "route names the previous owner in switch")
    check(c.get(key) == b"v1" and new.get(key) == b"v1", "switch: read from the previous owner, backfilled")
    check(c.stats["backfills"] == 1, "one backfill: %r" % c.stats)
    check(c.set(key, "v2", noreply=False) and old.get(key) is None and new.get(key) == b"v2",
          "switch: a write deletes the key on the previous owner")
    check(c.delete(key, noreply=False) is True and new.get(key) is None, "switch: delete")
    proj.project({"endpoints.json": transition_doc(ports, 4, "stable", [0, 1, 2])})
    check(wait_until(lambda: c.snapshot().phase == "stable"), "client follows to stable")
    c.close()
    check(c.set("after-close", "v", noreply=False) and c.get("after-close") == b"v", "close, then reconnect")
    for d in direct.values():
        d.close()


def check_secure_client(tmp):
    """Client over TLS with a client certificate and ASCII authentication, as the document says;
    the keyword arguments missing or wrong give the library's clear errors."""
    pki = os.path.join(tmp, "pki")
    os.mkdir(pki)
    os.chmod(tmp, 0o755)
    os.chmod(pki, 0o755)
    subprocess.run([MAKE_PKI, pki, "m-0.m.ns.svc"], check=True)
    auth = os.path.join(pki, "auth")
    with open(auth, "w") as f:
        f.write("alice:s3cret\n")
    wrong = os.path.join(pki, "auth-wrong")
    with open(wrong, "w") as f:
        f.write("alice:nope\n")
    for path in (auth, wrong):
        os.chmod(path, 0o644)
    p = lambda name: os.path.join(pki, name)  # noqa: E731
    proc, port = start_memcached(["-Y", auth, "-Z", "-o",
                                  "ssl_chain_cert=%s,ssl_key=%s,ssl_ca_cert=%s,ssl_verify_mode=2"
                                  % (p("server.crt"), p("server.key"), p("ca.crt"))])
    try:
        doc = {"schema": "memcached.operator.io/endpoints/v1", "cluster": "test/secure", "version": 1,
               "hashing": "ketama-libmemcached", "tls": {"clientAuth": "require"}, "auth": "ascii",
               "servers": [{"name": "m-0", "host": "m-0.m.ns.svc", "address": "127.0.0.1", "port": port,
                            "weight": 1, "state": "active"}], "previous": None}
        proj = Projection(os.path.join(tmp, "secure"))
        proj.project({"endpoints.json": json.dumps(doc)})
        snap = clientconfig.load(proj.path)
        check(snap.tls == "require" and snap.auth == "ascii", "snapshot security: %r %r" % (snap.tls, snap.auth))
        check(clientconfig.parse(endpoints([11211], 1)).tls is None, "plaintext snapshot: tls None")
        tls = dict(tls_ca=p("ca.crt"), tls_cert=p("client.crt"), tls_key=p("client.key"))
        c = clientconfig.Client(proj.path, timeout=2, connect_timeout=2, auth_file=auth, **tls)
        check(c.set("k", "v", noreply=False) is True and c.get("k") == b"v", "set/get over TLS with auth")
        check(c.get_many(["k", "x"]) == {"k": b"v"}, "get_many over TLS")
        check(c.set("n", 1, noreply=False) and c.incr("n", 2) == 3 and c.delete("n", noreply=False), "incr/delete over TLS")
        check(c.credentials_error is None, "no credentials error")
        c.close()

        def error_of(**kwargs):
            try:
                clientconfig.Client(proj.path, timeout=2, connect_timeout=2, **kwargs).get("k")
            except RuntimeError as e:
                return str(e)
            except ValueError as e:
                return "ValueError: " + str(e)
            return ""
        e = error_of()
        check("FailedPrecondition" in e and "ClientOptions::tls" in e, "no TLS kwargs: %s" % e)
        e = error_of(tls_ca=p("ca.crt"), auth_file=auth)
        check("FailedPrecondition" in e and "client certificate" in e, "no client certificate: %s" % e)
        e = error_of(auth_file=wrong, **tls)
        check("PermissionDenied" in e and "nope" not in e, "wrong password: %s" % e)
        e = error_of(tls_ca=p("ca.crt"), tls_cert=p("client.crt"), tls_key=p("server.key"), auth_file=auth)
        check("tls.key does not match tls.crt" in e, "mismatched key: %s" % e)
    finally:
        proc.kill()
        proc.wait()


def main():
    tmp = tempfile.mkdtemp(prefix="cc-py-")
    procs = []
    try:
        # Routing agrees with the C++ CLI key for key.
        d = os.path.join(tmp, "static")
        os.mkdir(d)
        with open(os.path.join(d, "endpoints.json"), "w") as f:
            f.write(endpoints([11211, 11212, 11213, 11300], 3))
        snap = clientconfig.load(d)
        keys = ["user:%d" % i for i in range(300)] + ["product:50", "user:100"]
        out = subprocess.run([CLI, "route", d] + keys, check=True, capture_output=True, text=True).stdout
        cli_owner = {line.split("\t")[0]: line.split("\t")[1].split(" ")[0] for line in out.splitlines()}
        check(all(snap.owner(k).name == cli_owner[k] for k in keys), "python route == CLI route")
        try:
            clientconfig.parse('{"schema": 1}')
            check(False, "bad schema raises")
        except ValueError as e:
            check("schema: expected string" in str(e), "error names the field: %s" % e)

        check_held_versions_and_files(tmp)

        # The watcher follows a kubelet-style swap.
        proj = Projection(os.path.join(tmp, "volume"))
        for _ in range(3):
            procs.append(start_memcached())
        ports = [p for _, p in procs]
        proj.project({"endpoints.json": endpoints(ports[:2], 1)})
        w = clientconfig.Watcher(proj.path)
        check(w.current().version == 1, "initial version")
        proj.project({"endpoints.json": endpoints(ports, 2)})
        check(wait_version(w, 2), "watcher picks up the swap")
        check(len(w.current().servers) == 3, "three servers after the swap")
        proj.project({"endpoints.json": "{ broken"})
        check(wait_until(lambda: w.error_count >= 1), "broken file reported")
        check(w.current().version == 2 and w.error_count == 1, "broken file keeps the last good snapshot")
        proj.project({"endpoints.json": endpoints(ports[:2], 3)})
        check(wait_version(w, 3), "back to two servers")

        # The pymemcache example: the example app's keys land on the ring owner.
        try:
            import pymemcache_app
            from pymemcache.client.base import Client
        except ImportError as e:
            print("FAIL pymemcache example: %s (make deps installs python3-pymemcache)" % e)
            return 1
        app = pymemcache_app.Router(proj.path)
        app.set("user:100", '{"name": "Alice"}')
        app.set("product:50", '{"name": "Gadget"}')
        check(app.get("user:100") == b'{"name": "Alice"}', "get user:100")
        for key in ("user:100", "product:50"):
            owner = app.owner(key)
            for port in ports:
                direct = Client(("127.0.0.1", port)).get(key)
                check((direct is not None) == (port == owner.port), "%s only on its owner" % key)
        # Grow to three servers: the app follows and closes nothing it still needs.
        proj.project({"endpoints.json": endpoints(ports, 4)})
        check(wait_version(w, 4), "grown to three")
        time.sleep(0.05)
        for i in range(200):
            app.set("k%d" % i, "v")
        check(len(app.clients) == 3, "app talks to all three servers")
        # Shrink: the connection to the removed server is closed at the next call.
        proj.project({"endpoints.json": endpoints(ports[:2], 5)})
        for _ in range(300):
            if app.watcher.current().version == 5:
                break
            time.sleep(0.01)
        app.get("user:100")
        check(("127.0.0.1", ports[2]) not in app.clients, "connection to the removed server closed")
        app.close()
        check_client(tmp, ports)
        check_secure_client(tmp)
        print("python run: %d failures" % len(failures))
        return 1 if failures else 0
    finally:
        for p, _ in procs:
            p.kill()
            p.wait()
        shutil.rmtree(tmp, ignore_errors=True)


sys.exit(main())
