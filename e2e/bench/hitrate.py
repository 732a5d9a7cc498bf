#!/usr/bin/python3
"""The hit-rate benchmark's orchestrator (run by e2e/bench/hitrate, `make bench-hitrate`).

On a running local cluster (KUBECONFIG, kubectl on PATH, MCOP_E2E_STATE set by
`eval "$(e2e/cluster env)"`, CRDs applied): runs the operator binary, creates a 2-replica
MemcachedCluster with a short drain, projects its endpoints ConfigMap into a directory the
way the kubelet does, starts the cache-aside client processes (workload.py) in every mode and
key distribution side by side, then drives scale 2->3, scale 3->2 and a rolling update
(spec.memcached.memoryMB) through the operator, one after another with steady periods
between, and finally writes windows.csv, summary.json, summary.md and hitrate.png
(analyze.py) into --results.
"""
import argparse
import json
import multiprocessing
import os
import random
import signal
import string
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import analyze  # noqa: E402
import workload  # noqa: E402

GROUP = "memcached.operator.io/v1alpha1"


def log(msg):
    print("bench: %s %s" % (time.strftime("%H:%M:%S"), msg), flush=True)


class Api:
    """Read-only Kubernetes API access through `kubectl proxy` (no Python client is packaged)."""

    def __init__(self, results):
        self.proc = subprocess.Popen(["kubectl", "proxy", "--port=0", "--address=127.0.0.1"],
                                     stdout=subprocess.PIPE, stderr=open(os.path.join(results, "kubectl-proxy.log"), "w"),
                                     text=True, start_new_session=True)
        line = self.proc.stdout.readline()  # "Starting to serve on 127.0.0.1:PORT"
        if "127.0.0.1:" not in line:
            raise RuntimeError("kubectl proxy did not start: %r" % line)
        self.base = "http://" + line.strip().rsplit(" ", 1)[-1]

    def get(self, path):
        try:
            with urllib.request.urlopen(self.base + path, timeout=5) as r:
                return json.load(r)
        except urllib.error.HTTPError as e:
            if e.code == 404:
                return None
            raise

    def close(self):
        stop(self.proc)


def stop(proc, timeout=10):
    if proc is None or proc.poll() is not None:
        return
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def kubectl(*args, stdin=None):
    r = subprocess.run(["kubectl"] + list(args), input=stdin, capture_output=True, text=True)
    if r.returncode != 0:
        raise RuntimeError("kubectl %s: %s%s" % (" ".join(args), r.stdout, r.stderr))
    return r.stdout.strip()


def read_projected_version(config_dir):
    try:
        with open(os.path.join(config_dir, "endpoints.json")) as f:
            return json.load(f).get("version")
    except (OSError, ValueError):
        return None


class Cluster:
    """The MemcachedCluster under test and the checks that say a change is done."""

    def __init__(self, api, ns, name, config_dir):
        self.api, self.ns, self.name, self.config_dir = api, ns, name, config_dir
        self.published = []  # (unix time, version, [(name, state)]) as seen in the ConfigMap
        self.projected = []  # (unix time, version) as seen in the projected directory
        self._stop = threading.Event()
        self._thread = None

    def mcc(self):
        return self.api.get("/apis/%s/namespaces/%s/memcachedclusters/%s" % (GROUP, self.ns, self.name))

    def endpoints(self):
        cm = self.api.get("/api/v1/namespaces/%s/configmaps/%s-endpoints" % (self.ns, self.name))
        if not cm or "endpoints.json" not in cm.get("data", {}):
            return None
        return json.loads(cm["data"]["endpoints.json"])

    def sts(self):
        return self.api.get("/apis/apps/v1/namespaces/%s/statefulsets/%s" % (self.ns, self.name))

    def settled(self, n, not_revision=None):
        """True when n members are published active, the operator and the StatefulSet are at rest,
        and the projected directory shows the published version. With not_revision (the
        StatefulSet's updateRevision before a template change), the StatefulSet must have moved on
        from it: the operator may record the new generation before it applies the template."""
        mcc, ep, sts = self.mcc(), self.endpoints(), self.sts()
        if not mcc or not ep or not sts:
            return False
        if not_revision and sts.get("status", {}).get("updateRevision") == not_revision:
            return False
        st, ss = mcc.get("status", {}), sts.get("status", {})
        return (len(ep["servers"]) == n and all(s.get("state") == "active" for s in ep["servers"])
                and st.get("observedGeneration") == mcc["metadata"]["generation"]
                and st.get("phase") == "Available" and not st.get("drain") and not st.get("transition")
                and not ep.get("phase")
                and ss.get("observedGeneration") == sts["metadata"]["generation"]
                and ss.get("replicas") == n and ss.get("readyReplicas") == n and ss.get("updatedReplicas") == n
                # an OnDelete StatefulSet (Warm rolling updates) never moves currentRevision on:
                # every pod at the update revision is the end of a rollout
                and (ss.get("currentRevision") == ss.get("updateRevision") or ss.get("updatedReplicas") == n)
                and read_projected_version(self.config_dir) == ep["version"])

    def wait_settled(self, n, timeout, not_revision=None):
        deadline = time.time() + timeout
        while time.time() < deadline:
            try:
                if self.settled(n, not_revision):
                    return time.time()
            except (OSError, ValueError, KeyError):
                pass
            time.sleep(0.25)
        raise RuntimeError("cluster did not settle at %d members within %ds" % (n, timeout))

    def start_recording(self):
        def loop():
            last, last_proj = None, None
            while not self._stop.wait(0.25):
                try:
                    ep = self.endpoints()
                except (OSError, ValueError):
                    continue
                if ep and ep["version"] != last:
                    last = ep["version"]
                    self.published.append((time.time(), last, [(s["name"], s.get("state")) for s in ep["servers"]]))
                v = read_projected_version(self.config_dir)
                if v is not None and v != last_proj:
                    last_proj = v
                    self.projected.append((time.time(), v))
        self._thread = threading.Thread(target=loop, daemon=True)
        self._thread.start()

    def stop_recording(self):
        self._stop.set()
        if self._thread:
            self._thread.join()


def cluster_manifest(args):
    spec = {
        "replicas": 2,
        "memcached": {"memoryMB": args.memory_mb},
        # Shortened for the local cluster: the projector lands a change after --projection-delay
        # (1 s) and every client reloads within 1 s of that, so 5 s covers propagation; on a real
        # kubelet (60-90 s) keep the default of 60.
        "drain": {"minSeconds": args.drain_min_seconds, "timeoutSeconds": 60},
    }
    if args.transition_mode:
        # propagationSeconds is left to default to drain.minSeconds (the same bound).
        spec["transition"] = {"mode": args.transition_mode, "windowSeconds": args.window_seconds}
    return json.dumps({"apiVersion": GROUP, "kind": "MemcachedCluster",
                       "metadata": {"name": args.name}, "spec": spec})


class Live:
    """The clients' running hit and read totals, sampled every half second, per mode and distribution:
    lets the run wait until every client's hit ratio is back before the next event starts."""

    def __init__(self, shared, combos_by_index):
        self.live = shared["live"]
        self.combos = sorted(set(combos_by_index))
        self.index = combos_by_index
        self.samples = []  # (unix time, {combo: (hits, reads)})
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)
        self._thread.start()

    def _loop(self):
        while not self._stop.wait(0.5):
            totals = {c: [0, 0] for c in self.combos}
            for i, c in enumerate(self.index):
                totals[c][0] += self.live[2 * i]
                totals[c][1] += self.live[2 * i + 1]
            self.samples.append((time.time(), {c: tuple(v) for c, v in totals.items()}))

    def ratios(self, t0, t1):
        """{combo: hits/reads between the samples nearest t0 and t1} (None without reads)."""
        if not self.samples:
            return {}
        a = min(self.samples, key=lambda s: abs(s[0] - t0))[1]
        b = min(self.samples, key=lambda s: abs(s[0] - t1))[1]
        out = {}
        for c in self.combos:
            reads = b[c][1] - a[c][1]
            out[c] = (b[c][0] - a[c][0]) / reads if reads > 0 else None
        return out

    def wait_recovered(self, baseline, since, deadline, hold=4.0):
        """Waits until every combo's hit ratio over `hold` seconds, all after `since` (when the change
        was settled and visible to the clients), is >= 99% of its baseline, or until deadline;
        returns (recovered, {combo: last ratio})."""
        time.sleep(max(0.0, since + hold - time.time()))
        while True:
            now = time.time()
            r = self.ratios(now - hold, now)
            if all(baseline.get(c) is None or (r.get(c) is not None and r[c] >= 0.99 * baseline[c])
                   for c in self.combos):
                return True, r
            if now >= deadline:
                return False, r
            time.sleep(1.0)

    def close(self):
        self._stop.set()
        self._thread.join()


def start_clients(args, config_dir, results):
    ctx = multiprocessing.get_context("fork")
    combos = [(m, d) for m in args.modes for d in args.dists]
    shared = {"ready": ctx.Value("i", 0), "start": ctx.Event(), "stop": ctx.Event(),
              "live": ctx.RawArray("q", 2 * len(combos) * args.procs)}
    per_proc = args.rate / (len(combos) * args.procs)
    procs = []
    os.makedirs(os.path.join(results, "clients"), exist_ok=True)
    # Per mode and distribution: the "database" (latest version of each key) and the last version
    # a client wrote and memcached acknowledged. All allocated before any fork, and kept referenced
    # here: Process.start() drops its arguments, and a freed block would be handed to the next
    # array, so two key spaces would share one memory block.
    shared["arrays"] = {c: (ctx.RawArray("q", args.keys), ctx.RawArray("q", args.keys)) for c in combos}
    for mode, dist in combos:
        db, acked = shared["arrays"][(mode, dist)]
        for i in range(args.procs):
            p = dict(shared, mode=mode, dist=dist, index=i, global_index=len(procs), writers=args.procs, db=db, acked=acked,
                     keys=args.keys, zipf_s=args.zipf_s, write_fraction=args.write_fraction,
                     rate=per_proc, timeout=args.timeout_ms / 1000.0, plain_reload_s=args.plain_reload_ms / 1000.0,
                     config_dir=config_dir, pythonpath=args.pythonpath, seed=random.getrandbits(64),
                     out=os.path.join(results, "clients", "%s-%s-%d.csv" % (mode, dist, i)))
            proc = ctx.Process(target=workload.run_client, args=(p,), name="%s-%s-%d" % (mode, dist, i))
            proc.start()
            procs.append(proc)
    return shared, procs


def wait_ready(shared, procs, timeout):
    deadline = time.time() + timeout
    while shared["ready"].value < len(procs):
        dead = [p.name for p in procs if not p.is_alive()]
        if dead:
            raise RuntimeError("client processes exited during prefill: %s" % ", ".join(dead))
        if time.time() > deadline:
            raise RuntimeError("clients not ready after %ds" % timeout)
        time.sleep(0.1)


EVENTS = {
    # name: (replicas after, kubectl arguments)
    "scale-up": ("scale 2->3", 3, lambda a: ["scale", "memcachedcluster/" + a.name, "--replicas=3"]),
    "scale-down": ("scale 3->2", 2, lambda a: ["scale", "memcachedcluster/" + a.name, "--replicas=2"]),
    "rolling-update": ("rolling update (memoryMB %d->%d)", 2, lambda a: [
        "patch", "memcachedcluster/" + a.name, "--type=merge",
        "-p", json.dumps({"spec": {"memcached": {"memoryMB": a.rolled_memory_mb}}})]),
}


def parse_args():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--results", required=True)
    ap.add_argument("--operator", required=True, help="the memcached-operator binary")
    ap.add_argument("--pythonpath", required=True, help="directory holding clientconfig*.so")
    ap.add_argument("--cluster-cmd", required=True, help="e2e/cluster (for project-configmap)")
    ap.add_argument("--name", default="bench")
    ap.add_argument("--rate", type=float, default=float(os.environ.get("MCOP_BENCH_RATE", 8000)),
                    help="total client operations per second over all processes")
    ap.add_argument("--procs", type=int, default=2, help="client processes per mode and distribution")
    ap.add_argument("--keys", type=int, default=20000)
    ap.add_argument("--zipf-s", type=float, default=0.99)
    ap.add_argument("--write-fraction", type=float, default=0.05)
    ap.add_argument("--modes", default="plain,cold,warm",
                    help="client modes; warm runs only once libclientconfig's Python module has Client (issue 10)")
    ap.add_argument("--dists", default="zipf,uniform")
    ap.add_argument("--events", default="scale-up,scale-down,rolling-update")
    ap.add_argument("--warmup", type=float, default=30, help="seconds of steady load before the first event")
    ap.add_argument("--steady", type=float, default=analyze.STEADY_S,
                    help="seconds of steady load before the next event (after the hit ratios came back)")
    ap.add_argument("--recovery-max", type=float, default=90,
                    help="at most this long from an event's start waiting for the hit ratios to come back")
    ap.add_argument("--drain-min-seconds", type=int, default=5)
    ap.add_argument("--projection-delay", default="1s", help="ConfigMap change -> projected directory")
    ap.add_argument("--plain-reload-ms", type=int, default=1000, help="how often the plain client re-reads servers")
    ap.add_argument("--timeout-ms", type=int, default=1000, help="client connect and socket timeout")
    ap.add_argument("--memory-mb", type=int, default=64)
    ap.add_argument("--rolled-memory-mb", type=int, default=96)
    ap.add_argument("--transition-mode", default="", help="spec.transition.mode: Warm or Cold (unset: the CRD's default, Cold)")
    ap.add_argument("--window-seconds", type=int, default=10,
                    help="spec.transition.windowSeconds for --transition-mode Warm (shortened for the local cluster; default 60)")
    args = ap.parse_args()
    args.modes = [m for m in args.modes.split(",") if m]
    args.dists = [d for d in args.dists.split(",") if d]
    args.events = [e for e in args.events.split(",") if e]
    for m in args.modes:
        if m not in workload.MODES:
            ap.error("unknown mode %s (have %s)" % (m, ", ".join(workload.MODES)))
    for e in args.events:
        if e not in EVENTS:
            ap.error("unknown event %s (have %s)" % (e, ", ".join(EVENTS)))
    return args


def main():
    args = parse_args()
    sys.path.insert(0, args.pythonpath)
    if "warm" in args.modes and not workload.warm_available():
        log("mode warm skipped: this clientconfig Python module has no Client (rebuild libclientconfig)")
        args.modes.remove("warm")
    os.makedirs(args.results, exist_ok=True)
    ns = "bench-" + "".join(random.choice(string.ascii_lowercase + string.digits) for _ in range(5))
    config_dir = os.path.join(args.results, "endpoints")
    operator = projector = api = None
    procs, shared = [], None
    run = {"settings": {
        "namespace": ns, "replicas": 2, "modes": args.modes, "dists": args.dists, "keys": args.keys,
        "zipf_s": args.zipf_s, "write_fraction": args.write_fraction, "target_ops_per_s": args.rate,
        "client_processes": len(args.modes) * len(args.dists) * args.procs, "value_bytes": workload.VALUE_PAD + 2,
        "drain": {"minSeconds": args.drain_min_seconds, "timeoutSeconds": 60},
        "projection_delay": args.projection_delay, "plain_reload_ms": args.plain_reload_ms,
        "client_timeout_ms": args.timeout_ms, "warmup_s": args.warmup, "steady_s": args.steady,
        "memoryMB": [args.memory_mb, args.rolled_memory_mb], "transition_mode": args.transition_mode or None,
        "recovery_max_s": args.recovery_max, "loadavg_at_start": os.getloadavg(), "cpus": os.cpu_count(),
    }, "events": [], "title": "%d keys, %.0f ops/s target, %d%% writes, drain.minSeconds %d, projection delay %s" % (
        args.keys, args.rate, round(100 * args.write_fraction), args.drain_min_seconds, args.projection_delay)}
    try:
        api = Api(args.results)
        kubectl("create", "namespace", ns)
        log("operator: %s --namespace %s (log %s/operator.log)" % (args.operator, ns, args.results))
        operator = subprocess.Popen(
            [args.operator, "--kubeconfig", os.environ["KUBECONFIG"], "--namespace", ns,
             "--metrics-bind-address=0", "--health-probe-bind-address=0"],
            stdout=open(os.path.join(args.results, "operator.log"), "w"), stderr=subprocess.STDOUT,
            start_new_session=True)
        log("MemcachedCluster %s/%s: 2 replicas, memoryMB %d, drain.minSeconds %d (shortened for the local "
            "cluster; default 60), projection delay %s" % (ns, args.name, args.memory_mb, args.drain_min_seconds,
                                                           args.projection_delay))
        kubectl("apply", "-n", ns, "-f", "-", stdin=cluster_manifest(args))
        cluster = Cluster(api, ns, args.name, config_dir)
        projector = subprocess.Popen(
            [args.cluster_cmd, "project-configmap", "%s/%s-endpoints" % (ns, args.name), config_dir,
             "--delay", args.projection_delay],
            stdout=open(os.path.join(args.results, "projector.log"), "w"), stderr=subprocess.STDOUT,
            start_new_session=True)
        cluster.wait_settled(2, 180)
        cluster.start_recording()
        log("cluster Available, endpoints projected into %s" % config_dir)

        shared, procs = start_clients(args, config_dir, args.results)
        log("%d client processes (%s x %s x %d), %.0f ops/s in all, prefilling %d keys per mode and distribution"
            % (len(procs), "/".join(args.modes), "/".join(args.dists), args.procs, args.rate, args.keys))
        wait_ready(shared, procs, 180)
        live = Live(shared, [tuple(p.name.split("-")[:2]) for p in procs])
        run["started"] = time.time()
        shared["start"].set()
        log("workload running; steady for %gs" % args.warmup)
        time.sleep(args.warmup)
        for e in args.events:
            title, n, cmd = EVENTS[e]
            if "%d" in title:
                title = title % (args.memory_mb, args.rolled_memory_mb)
            argv = cmd(args)
            ev = {"name": title, "command": "kubectl " + " ".join(argv), "start": time.time()}
            baseline = live.ratios(ev["start"] - 15, ev["start"])
            log("%s: %s" % (title, ev["command"]))
            before = (cluster.sts() or {}).get("status", {}).get("updateRevision") if e == "rolling-update" else None
            kubectl(*(argv + ["-n", ns]))
            ev["done"] = cluster.wait_settled(n, 300, before)
            ev["versions"] = [{"t": t - run["started"], "version": v, "servers": s}
                              for t, v, s in cluster.published if t >= ev["start"] - 0.5]
            log("%s settled after %.1fs; waiting for every client's hit ratio to come back (at most %gs)"
                % (title, ev["done"] - ev["start"], args.recovery_max))
            ok, last = live.wait_recovered(baseline, ev["done"], ev["start"] + args.recovery_max)
            ev["recovered"] = time.time() if ok else None
            if not ok:
                log("not every hit ratio came back within %gs: %s" % (args.recovery_max, ", ".join(
                    "%s/%s %.4f of %.4f" % (c[0], c[1], last.get(c) or 0, baseline.get(c) or 0) for c in sorted(last))))
            log("steady for %gs" % args.steady)
            run["events"].append(ev)
            time.sleep(args.steady)
        run["stopped"] = time.time()
        shared["stop"].set()
        live.close()
        for p in procs:
            p.join(60)
        failed = [p.name for p in procs if p.exitcode != 0]
        if failed:
            raise RuntimeError("client processes failed: %s" % ", ".join(failed))
        cluster.stop_recording()
        run["published"] = [{"t": t - run["started"], "version": v, "servers": s} for t, v, s in cluster.published]
        run["projected"] = [{"t": t - run["started"], "version": v} for t, v in cluster.projected]
        run["settings"]["loadavg_at_end"] = os.getloadavg()
        with open(os.path.join(args.results, "run.json"), "w") as f:
            json.dump(run, f, indent=2)
    except BaseException:
        if operator is not None and operator.poll() is not None:
            log("the operator exited with status %s" % operator.returncode)
        log("failed; logs in %s (operator.log, projector.log, clients/)" % args.results)
        raise
    finally:
        if shared is not None:
            shared["stop"].set()
            shared["start"].set()
        for p in procs:
            p.join(5)
            if p.is_alive():
                p.terminate()
        stop(projector)
        stop(operator)
        try:
            kubectl("delete", "namespace", ns, "--wait=false")
        except RuntimeError:
            pass
        if api:
            api.close()

    csv_path, summary_path, png, md = analyze.analyze(args.results)
    print()
    print(md)
    print()
    for label, path in (("windows (CSV)", csv_path), ("summary (JSON)", summary_path), ("plot (PNG)", png),
                        ("operator log", os.path.join(args.results, "operator.log"))):
        print("%-15s %s" % (label + ":", path))


if __name__ == "__main__":
    main()
