#!/usr/bin/python3
"""Turns a hit-rate benchmark run into windows.csv, summary.json and hitrate.png.

    /usr/bin/python3 e2e/bench/analyze.py RESULTS_DIR

RESULTS_DIR holds what hitrate.py wrote: run.json (settings, start time, events) and
clients/*.csv (one per client process: counts per 250 ms window). This script can be re-run
on a finished results directory (for instance after changing the plot).

Definitions (also in e2e/bench/README.md):
- hit ratio of a window = hits / reads, where reads counts every get the application issued,
  including those that failed (an errored read is a read the cache did not serve).
- steady hit ratio before an event = hits / reads over the STEADY_S seconds before it started.
- worst window = the lowest window hit ratio from the event's start to the next event's start
  (or the end of the run), as a percentage of steady.
- back to 99% = from the event's start until the hit ratio over one second (4 windows), from the
  worst window on, is again >= 99% of steady (last_window_below_99pct_s: until the end of the last
  single window below it, which a slowly refilling zipf tail pushes far out).
- errors and stale reads: summed over the same span.
"""
import csv
import glob
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from workload import WINDOW, Counters, bucket_upper_ms  # noqa: E402

STEADY_S = 20.0
RECOVERY_FRACTION = 0.99


def load_windows(results):
    """{(window, mode, dist): [counts..., {bucket: n}]} summed over client processes."""
    acc = {}
    nf = len(Counters.FIELDS)
    for path in sorted(glob.glob(os.path.join(results, "clients", "*.csv"))):
        with open(path, newline="") as f:
            for row in csv.DictReader(f):
                k = (int(row["window"]), row["mode"], row["dist"])
                a = acc.get(k)
                if a is None:
                    a = acc[k] = [0] * nf + [{}]
                for i, name in enumerate(Counters.FIELDS):
                    a[i] += int(row[name])
                for item in row["latency_buckets"].split():
                    b, c = item.split(":")
                    a[nf][int(b)] = a[nf].get(int(b), 0) + int(c)
    return acc


def p99_ms(hist):
    total = sum(hist.values())
    if total == 0:
        return None
    need, seen = 0.99 * total, 0
    for b in sorted(hist):
        seen += hist[b]
        if seen >= need:
            return bucket_upper_ms(b)
    return None


def ratio(hits, reads):
    return hits / reads if reads else None


def write_windows_csv(results, run, acc):
    t0 = run["started"]
    path = os.path.join(results, "windows.csv")
    series = {}
    with open(path, "w", newline="") as f:
        out = csv.writer(f)
        out.writerow(("time_s", "unix_time", "mode", "dist", "ops", "reads", "hits", "misses", "errors",
                      "stale_reads", "writes", "hit_ratio", "p99_ms"))
        for (w, mode, dist) in sorted(acc, key=lambda k: (k[1], k[2], k[0])):
            a = acc[(w, mode, dist)]
            ops, reads, hits, misses, errors, stale, writes = a[:7]
            t = w * WINDOW - t0
            if t < 0 or t > run["stopped"] - t0:
                continue  # the partial windows around start and stop
            hr = ratio(hits, reads)
            p99 = p99_ms(a[7])
            out.writerow(("%.2f" % t, "%.2f" % (w * WINDOW), mode, dist, ops, reads, hits, misses, errors, stale,
                          writes, "" if hr is None else "%.5f" % hr, "" if p99 is None else "%.3f" % p99))
            series.setdefault((mode, dist), []).append((t, a))
    return path, series


def back_to(during, worst_t, steady, span=1.0):
    """The first time, from the worst window on, at which the hit ratio over the preceding `span`
    seconds (4 windows) is >= 99% of steady; None if it never is within `during`. A span, not one
    window: a zipf tail refills slowly, and single windows near 99% cross it back and forth."""
    if steady is None or worst_t is None:
        return None
    n = int(round(span / WINDOW))
    pts = [(t, a) for t, a in during if t >= worst_t]
    for i in range(len(pts)):
        if i + 1 < n:
            # Not a full span yet: the worst window itself only counts once it is above the bar.
            continue
        chunk = pts[i + 1 - n:i + 1]
        reads = sum(a[1] for _, a in chunk)
        if reads and sum(a[2] for _, a in chunk) / reads >= RECOVERY_FRACTION * steady:
            return pts[i][0] + WINDOW
    return None


def summarize(run, series):
    t0 = run["started"]
    end = run["stopped"] - t0
    events = run["events"]
    out = []
    for i, ev in enumerate(events):
        start = ev["start"] - t0
        until = events[i + 1]["start"] - t0 if i + 1 < len(events) else end
        combos = {}
        for (mode, dist), points in sorted(series.items()):
            before = [a for t, a in points if start - STEADY_S <= t and t + WINDOW <= start]
            during = [(t, a) for t, a in points if start <= t and t + WINDOW <= until]
            hits = sum(a[2] for a in before)
            reads = sum(a[1] for a in before)
            steady = ratio(hits, reads)
            worst, worst_t, last_low = None, None, None
            for t, a in during:
                hr = ratio(a[2], a[1])
                if hr is None:
                    continue
                if worst is None or hr < worst:
                    worst, worst_t = hr, t
                if steady and hr < RECOVERY_FRACTION * steady:
                    last_low = t
            back = back_to(during, worst_t, steady)
            lat_before = {}
            for a in before:
                for b, c in a[7].items():
                    lat_before[b] = lat_before.get(b, 0) + c
            lat_during = {}
            for _, a in during:
                for b, c in a[7].items():
                    lat_during[b] = lat_during.get(b, 0) + c
            combos["%s/%s" % (mode, dist)] = {
                "mode": mode,
                "dist": dist,
                "steady_hit_ratio": steady,
                "steady_ops_per_s": sum(a[0] for a in before) / STEADY_S if before else None,
                "worst_window_hit_ratio": worst,
                "worst_window_pct_of_steady": 100.0 * worst / steady if steady and worst is not None else None,
                "worst_window_at_s": None if worst_t is None else worst_t - start,
                "back_to_99pct_of_steady_s": None if back is None else back - start,
                "last_window_below_99pct_s": 0.0 if last_low is None else last_low + WINDOW - start,
                "errors": sum(a[4] for _, a in during),
                "stale_reads": sum(a[5] for _, a in during),
                "reads": sum(a[1] for _, a in during),
                "p99_ms_steady": p99_ms(lat_before),
                "p99_ms_during": p99_ms(lat_during),
            }
        out.append({
            "event": ev["name"],
            "command": ev["command"],
            "start_s": start,
            "done_s": ev["done"] - t0 if ev.get("done") else None,
            "analysed_until_s": until,
            "versions": ev.get("versions"),
            "clients": combos,
        })
    return out


def plot(results, run, series, events_summary):
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("analyze: matplotlib missing (make deps installs python3-matplotlib): no plot", file=sys.stderr)
        return None
    dists = sorted({d for _, d in series})
    fig, axes = plt.subplots(len(dists) + 1, 1, figsize=(13, 3.6 * len(dists) + 2.4), sharex=True, squeeze=False,
                             gridspec_kw={"height_ratios": [3] * len(dists) + [2]})
    colors = {"plain": "tab:orange", "cold": "tab:blue", "warm": "tab:green"}
    for ax, dist in zip(axes[:-1, 0], dists):
        for (mode, d), points in sorted(series.items()):
            if d != dist:
                continue
            ts = [t for t, a in points if a[1]]
            hs = [a[2] / a[1] for t, a in points if a[1]]
            ax.plot(ts, hs, label=mode, color=colors.get(mode), linewidth=0.9)
        lo = 1.0
        for (mode, d), points in series.items():
            if d == dist:
                lo = min([lo] + [a[2] / a[1] for _, a in points if a[1]])
        ax.set_ylim(max(0.0, lo - 0.05), 1.005)
        for ev in events_summary:
            ax.axvline(ev["start_s"], color="black", linestyle="--", linewidth=0.8)
            if ev["done_s"] is not None:
                ax.axvspan(ev["start_s"], ev["done_s"], color="grey", alpha=0.15)
            ax.text(ev["start_s"], 1.0, " " + ev["event"], va="top", fontsize=8)
        ax.set_ylabel("hit ratio (%s)" % dist)
        ax.grid(alpha=0.3)
        ax.legend(loc="lower right", fontsize=8)
    # Bottom panel: errors and stale reads per window, per mode (both distributions together).
    ax = axes[-1, 0]
    for mode in sorted({m for m, _ in series}):
        errs, stale = {}, {}
        for (m, _), points in series.items():
            if m == mode:
                for t, a in points:
                    errs[t] = errs.get(t, 0) + a[4]
                    stale[t] = stale.get(t, 0) + a[5]
        ts = sorted(errs)
        ax.plot(ts, [errs[t] for t in ts], color=colors.get(mode), linewidth=0.9, label=mode + " errors")
        ax.plot(ts, [stale[t] for t in ts], color=colors.get(mode), linewidth=0.9, linestyle=":",
                label=mode + " stale reads")
    for ev in events_summary:
        ax.axvline(ev["start_s"], color="black", linestyle="--", linewidth=0.8)
        if ev["done_s"] is not None:
            ax.axvspan(ev["start_s"], ev["done_s"], color="grey", alpha=0.15)
    ax.set_ylabel("per window")
    ax.grid(alpha=0.3)
    ax.legend(loc="upper left", fontsize=7, ncol=3)
    axes[-1, 0].set_xlabel("seconds since the workload started (250 ms windows; shaded: event in progress)")
    fig.suptitle("memcached-operator hit ratio through scale and rolling update (%s)" % run.get("title", ""),
                 fontsize=10)
    fig.tight_layout()
    path = os.path.join(results, "hitrate.png")
    fig.savefig(path, dpi=110)
    return path


def fmt(v, spec, none="-"):
    return none if v is None else spec % v


def table(events_summary):
    lines = ["| event | keys | client | steady hit ratio | worst 250 ms window (% of steady) | back to 99% of steady | errors | stale reads | p99 steady / during |",
             "|---|---|---|---|---|---|---|---|---|"]
    for ev in events_summary:
        for c in ev["clients"].values():
            lines.append("| %s | %s | %s | %s | %s | %s | %d | %d | %s / %s ms |" % (
                ev["event"], c["dist"], c["mode"], fmt(c["steady_hit_ratio"], "%.4f"),
                fmt(c["worst_window_pct_of_steady"], "%.1f%%"), fmt(c["back_to_99pct_of_steady_s"], "%.2f s"),
                c["errors"], c["stale_reads"], fmt(c["p99_ms_steady"], "%.2f"), fmt(c["p99_ms_during"], "%.2f")))
    return "\n".join(lines)


def error_types(results):
    """{mode/dist: {exception type: count}} over the whole run, from clients/*.csv.errors."""
    out = {}
    for path in sorted(glob.glob(os.path.join(results, "clients", "*.csv.errors"))):
        mode, dist = os.path.basename(path).split("-")[:2]
        d = out.setdefault("%s/%s" % (mode, dist), {})
        with open(path) as f:
            for line in f:
                name, count = line.split()
                d[name] = d.get(name, 0) + int(count)
    return out


def analyze(results):
    with open(os.path.join(results, "run.json")) as f:
        run = json.load(f)
    acc = load_windows(results)
    csv_path, series = write_windows_csv(results, run, acc)
    events_summary = summarize(run, series)
    summary = {
        "settings": run["settings"],
        "definitions": {
            "window_s": WINDOW,
            "hit_ratio": "hits / reads; reads include failed gets",
            "steady": "hits / reads over the %g s before the event started" % STEADY_S,
            "worst_window_pct_of_steady": "lowest window hit ratio from the event's start to the next event's start, as % of steady",
            "back_to_99pct_of_steady_s": "event start until the hit ratio over 1 s (4 windows), from the worst window on, is again >= 99% of steady",
            "last_window_below_99pct_s": "event start to the end of the last single window below 99% of steady in that span",
        },
        "events": events_summary,
        "error_types_whole_run": error_types(results),
    }
    summary_path = os.path.join(results, "summary.json")
    with open(summary_path, "w") as f:
        json.dump(summary, f, indent=2)
    md = table(events_summary)
    with open(os.path.join(results, "summary.md"), "w") as f:
        f.write(md + "\n")
    png = plot(results, run, series, events_summary)
    return csv_path, summary_path, png, md


if __name__ == "__main__":
    if len(sys.argv) != 2:
        print(__doc__, file=sys.stderr)
        sys.exit(2)
    c, s, p, md = analyze(sys.argv[1])
    print(md)
    print("windows: %s\nsummary: %s\nplot:    %s" % (c, s, p))
