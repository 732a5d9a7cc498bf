"""The cache-aside workload of the hit-rate benchmark: client modes and one client process.

A client process plays one application instance: it reads keys (cache-aside: get, and on a
miss read the "database" and fill the cache with add) and writes some (update the database,
then set the new value in the cache), at a fixed rate, routed by one client mode. It counts
what it saw per 250 ms window and writes those counts to a CSV file when it stops.

Values are versioned: "VERSION|padding". The database is a shared-memory array of the latest
version of each key; a second array holds, per key, the last version a client wrote and
memcached acknowledged (STORED). Each key has one writer process (key % writers), so writes
of one key never race each other and the acknowledged version only grows. A read that returns
a version below the acknowledged version read just before the get is a stale read: the cache
served a value older than a write some client had already completed. Fills use add, never set,
so a fill racing a write cannot overwrite the newer value (the write's set lands after the add,
or the add finds the key present); the workload therefore produces no stale read of its own.

Modes (MODES below; the orchestrator runs them side by side, each on its own key prefix so one
mode's fills never warm another's keys):

- plain: a ketama client that knows only the ConfigMap's `servers` key, as pylibmc,
  php-memcached or libmemcached configured from that list would: it re-reads the file every
  --plain-reload-ms (it has no inotify) and builds libmemcached's weighted ketama ring with
  clientconfig.parse_servers. pymemcache's HashClient cannot be used for this: it hashes
  with rendezvous hashing, not ketama (pymemcache 3.5 has no ketama hasher), so it would
  disagree with every other client on who owns a key.
- cold: libclientconfig's Watcher on the directory (inotify on the kubelet's ..data swap),
  route(key) -> (owner, previous): read the owner and, when the published list carries a
  previous ring, fall back to the previous owner on a miss. The operator publishes
  previous = null today, so every moved key starts cold on its new owner.
- warm: issue 10's phase-aware client, clientconfig.Client(mount_dir) with pymemcache's
  names (get, set, add, ...). Not in libclientconfig yet: the mode is offered only when the
  module has Client, and is never emulated here.
"""
import csv
import math
import os
import random
import sys
import time

WINDOW = 0.25  # seconds per accounting window
VALUE_PAD = 100  # bytes of padding after the version, so an item is about 100 bytes

# Latency histogram buckets: bucket b holds latencies in [2^(b/4), 2^((b+1)/4)) microseconds.
LAT_BUCKETS = 96
DEBUG = os.environ.get('BENCH_DEBUG')


def lat_bucket(seconds):
    us = seconds * 1e6
    if us < 1.0:
        return 0
    b = int(4.0 * math.log2(us))
    return b if b < LAT_BUCKETS else LAT_BUCKETS - 1


def bucket_upper_ms(b):
    return 2.0 ** ((b + 1) / 4.0) / 1000.0


# ---------------------------------------------------------------------------------------------
# Connections: one pymemcache client per server address, closed when the server leaves the
# list (the operator's drain waits for client connections to go).

class Connections:
    def __init__(self, timeout):
        from pymemcache.client.base import Client
        self._Client = Client
        self.timeout = timeout
        self.clients = {}

    def get(self, address, port):
        c = self.clients.get((address, port))
        if c is None:
            c = self._Client((address, port), connect_timeout=self.timeout, timeout=self.timeout,
                             no_delay=True)
            self.clients[(address, port)] = c
        return c

    def keep_only(self, endpoints):
        for ep in list(self.clients):
            if ep not in endpoints:
                self.clients.pop(ep).close()

    def close(self):
        self.keep_only(set())


class PlainMode:
    """Routes on the `servers` key alone, re-read every reload_s (no file watch)."""

    name = "plain"

    def __init__(self, config_dir, timeout, reload_s):
        import clientconfig
        self.cc = clientconfig
        self.dir = config_dir
        self.reload_s = reload_s
        self.conns = Connections(timeout)
        self.snap = None
        self.text = None
        self.ep_text = None
        self.resolve = {}
        self.next_reload = 0.0
        self._reload(time.monotonic())
        if self.snap is None:
            raise RuntimeError("no servers file in " + config_dir)

    def _reload(self, now):
        self.next_reload = now + self.reload_s
        try:
            data = os.path.realpath(os.path.join(self.dir, "..data"))
            with open(os.path.join(data, "servers")) as f:
                text = f.read()
            # There is no cluster DNS on the local cluster (e2e/README.md, Limits), and `servers`
            # names the pods' stable DNS names. Resolve them as cluster DNS would, from the same
            # projected payload's endpoints.json: only the host -> address map is taken from it
            # (a restarted pod comes back on a new address), never the ring.
            with open(os.path.join(data, "endpoints.json")) as f:
                ep_text = f.read()
        except OSError:
            return  # the ..data swap raced the reads: the next poll reads the new payload
        if text == self.text and ep_text == self.ep_text:
            return
        if text != self.text:
            self.snap = self.cc.parse_servers(text, "ketama-libmemcached")
            self.text = text
        self.resolve = {s.host: s.address for s in self.cc.parse(ep_text).servers}
        self.ep_text = ep_text
        self.conns.keep_only({(self.resolve.get(s.host, s.host), s.port) for s in self.snap.servers})

    def _client(self, key):
        now = time.monotonic()
        if now >= self.next_reload:
            self._reload(now)
        s = self.snap.owner(key)
        return self.conns.get(self.resolve.get(s.host, s.host), s.port)

    def get(self, key):
        return self._client(key).get(key)

    def add(self, key, value):
        return self._client(key).add(key, value, noreply=False)

    def set(self, key, value):
        return self._client(key).set(key, value, noreply=False)

    def close(self):
        self.conns.close()


class ColdMode:
    """libclientconfig's Watcher: owner, and the previous owner on a miss when one is published."""

    name = "cold"

    def __init__(self, config_dir, timeout, reload_s):
        import clientconfig
        self.watcher = clientconfig.Watcher(config_dir)
        self.conns = Connections(timeout)
        self.version = None

    def _sync(self):
        snap = self.watcher.current()
        if snap.version != self.version:
            wanted = {(s.address, s.port) for s in snap.servers}
            wanted |= {(s.address, s.port) for s in snap.previous_servers}
            self.conns.keep_only(wanted)
            self.version = snap.version
        return snap

    def get(self, key):
        owner, previous = self._sync().route(key)
        value = self.conns.get(owner.address, owner.port).get(key)
        if value is None and previous is not None and previous != owner:
            value = self.conns.get(previous.address, previous.port).get(key)
        return value

    def add(self, key, value):
        owner, _ = self._sync().route(key)
        return self.conns.get(owner.address, owner.port).add(key, value, noreply=False)

    def set(self, key, value):
        owner, _ = self._sync().route(key)
        return self.conns.get(owner.address, owner.port).set(key, value, noreply=False)

    def close(self):
        self.conns.close()


class WarmMode:
    """libclientconfig's phase-aware clientconfig.Client(mount_dir) (pymemcache's method names):
    in prepare/copy a write also deletes the key on its next owner; in switch/finalize a miss
    reads the previous owner and backfills the new one with a CAS re-check."""

    name = "warm"

    def __init__(self, config_dir, timeout, reload_s):
        import clientconfig
        self.client = clientconfig.Client(config_dir, connect_timeout=timeout, timeout=timeout)

    def get(self, key):
        return self.client.get(key)

    def add(self, key, value):
        return self.client.add(key, value, noreply=False)

    def set(self, key, value):
        return self.client.set(key, value, noreply=False)

    def close(self):
        self.client.close()


def warm_available():
    try:
        import clientconfig
    except ImportError:
        return False
    return hasattr(clientconfig, "Client")


MODES = {"plain": PlainMode, "cold": ColdMode, "warm": WarmMode}


# ---------------------------------------------------------------------------------------------
# Key choice.

def zipf_cum_weights(n, s):
    cw, total = [], 0.0
    for r in range(1, n + 1):
        total += 1.0 / (r ** s)
        cw.append(total)
    return cw


class KeyChooser:
    def __init__(self, dist, n, zipf_s, rng):
        self.n = n
        self.rng = rng
        self.dist = dist
        self.buf = []
        if dist == "zipf":
            self.cw = zipf_cum_weights(n, zipf_s)
            self.population = range(n)  # rank 0 is the hottest key
        elif dist != "uniform":
            raise ValueError("unknown distribution " + dist)

    def next(self):
        if not self.buf:
            if self.dist == "zipf":
                self.buf = self.rng.choices(self.population, cum_weights=self.cw, k=4096)
            else:
                self.buf = [self.rng.randrange(self.n) for _ in range(4096)]
        return self.buf.pop()


def encode(version):
    return b"%d|" % version + b"x" * VALUE_PAD


def decode(value):
    return int(value.split(b"|", 1)[0])


# ---------------------------------------------------------------------------------------------
# One client process.

class Counters:
    """Per-window counts: ops, reads, hits, misses, errors, stale, writes, and latency buckets."""

    FIELDS = ("ops", "reads", "hits", "misses", "errors", "stale_reads", "writes")

    def __init__(self):
        self.windows = {}

    def row(self, w):
        r = self.windows.get(w)
        if r is None:
            r = self.windows[w] = [0] * (len(self.FIELDS) + LAT_BUCKETS)
        return r


def run_client(p):
    """Entry point of one client process. p: dict of settings and shared arrays (see hitrate.py)."""
    sys.path.insert(0, p["pythonpath"])
    rng = random.Random(p["seed"])
    mode = MODES[p["mode"]](p["config_dir"], p["timeout"], p["plain_reload_s"])
    chooser = KeyChooser(p["dist"], p["keys"], p["zipf_s"], rng)
    db, acked = p["db"], p["acked"]
    prefix = "%s:%s:" % (p["mode"], p["dist"])
    writers, me = p["writers"], p["index"]
    n = p["keys"]
    errors_seen = {}

    def note_error(e):
        k = type(e).__name__
        errors_seen[k] = errors_seen.get(k, 0) + 1

    # Prefill this process's share of the keys (the keys it writes), so the run starts warm
    # and the steady hit ratio is reached within seconds.
    for k in range(me, n, writers):
        v = db[k] + 1
        db[k] = v
        try:
            mode.set(prefix + str(k), encode(v))
            acked[k] = v
        except Exception as e:  # noqa: BLE001 - any client failure counts as an error
            note_error(e)
    with p["ready"].get_lock():
        p["ready"].value += 1
    p["start"].wait()

    counters = Counters()
    interval = 1.0 / p["rate"]
    write_fraction = p["write_fraction"]
    stop = p["stop"]
    next_t = time.monotonic()
    random_ = rng.random
    ops_since_check = 0
    # Running totals published for the orchestrator, which waits for the hit ratio to come back
    # before it starts the next event (each process owns two slots: hits, reads).
    live, slot = p["live"], 2 * p["global_index"]
    total_hits = total_reads = 0
    while True:
        ops_since_check += 1
        if ops_since_check >= 64:
            ops_since_check = 0
            live[slot], live[slot + 1] = total_hits, total_reads
            if stop.is_set():
                break
        now = time.monotonic()
        next_t += interval
        if next_t > now:
            time.sleep(next_t - now)
        elif now - next_t > 0.1:
            next_t = now  # fell behind (errors, timeouts, CPU): do not burst to catch up
        k = chooser.next()
        write = random_() < write_fraction
        if write:
            # This process writes only its own keys: move to the nearest one.
            k = k - (k % writers) + me
            if k >= n:
                k -= writers
        key = prefix + str(k)
        t0 = time.time()
        row = counters.row(int(t0 / WINDOW))
        row[0] += 1
        try:
            if write:
                row[6] += 1
                v = db[k] + 1
                db[k] = v  # the database write, then the cache
                mode.set(key, encode(v))
                acked[k] = v
            else:
                row[1] += 1
                total_reads += 1
                floor = acked[k]
                value = mode.get(key)
                if value is None:
                    row[3] += 1
                    mode.add(key, encode(db[k]))
                else:
                    row[2] += 1
                    total_hits += 1
                    if decode(value) < floor:
                        row[5] += 1
                        if DEBUG and row[5] < 3:
                            print(p["mode"], me, "stale", key, floor, value[:8], acked[k], db[k], flush=True)
        except Exception as e:  # noqa: BLE001 - timeouts, refused connections, server errors
            row[4] += 1
            note_error(e)
        row[len(Counters.FIELDS) + lat_bucket(time.time() - t0)] += 1

    mode.close()
    with open(p["out"], "w", newline="") as f:
        out = csv.writer(f)
        out.writerow(("window", "mode", "dist") + Counters.FIELDS + ("latency_buckets",))
        for w in sorted(counters.windows):
            r = counters.windows[w]
            lat = " ".join("%d:%d" % (b, c) for b, c in enumerate(r[len(Counters.FIELDS):]) if c)
            out.writerow([w, p["mode"], p["dist"]] + r[:len(Counters.FIELDS)] + [lat])
    with open(p["out"] + ".errors", "w") as f:
        for k, c in sorted(errors_seen.items()):
            f.write("%s %d\n" % (k, c))
