package opbench

import (
	"fmt"
	"io"
	"maps"
	"slices"
	"strings"
)

// Table writes the Markdown table of the medians: one row per figure and N, ours beside the
// reference and the ratio (below 1: ours is smaller or faster).
func (res *Results) Table(w io.Writer) {
	fmt.Fprintln(w, "| figure | ours | reference (controller-runtime) | ratio ours/reference |")
	fmt.Fprintln(w, "|---|---|---|---|")
	row := func(name string, o, r float64, format string) {
		ratio := "—"
		if r > 0 {
			ratio = fmt.Sprintf("%.2f", o/r)
		}
		fmt.Fprintf(w, "| %s | "+format+" | "+format+" | %s |\n", name, o, r, ratio)
	}
	for _, replicas := range res.replicasValues() {
		ns := res.nsValues(replicas)
		for _, f := range []struct {
			name, format string
			get          func(*Figures) float64
		}{
			{"cold start: operator start → every child exists (s)", "%.2f", func(f *Figures) float64 { return f.ChildrenS }},
			{"cold start: operator start → every cluster Available (s)", "%.2f", func(f *Figures) float64 { return f.AvailableS }},
			{"CPU for that cold start, to Available (s)", "%.2f", func(f *Figures) float64 { return f.CPUAvailableS }},
			{"control-plane CPU (etcd, API server, controller manager) to every child (s)", "%.2f", func(f *Figures) float64 { return f.ControlPlaneCPU }},
			{"peak RSS over that cold start (MB)", "%.1f", func(f *Figures) float64 { return f.PeakRSSMB }},
			{"RSS at the idle sample (MB)", "%.1f", func(f *Figures) float64 { return f.IdleRSSMB }},
			{"threads at the idle sample", "%.0f", func(f *Figures) float64 { return f.IdleThreads }},
			{"CPU from start to the idle sample (s)", "%.2f", func(f *Figures) float64 { return f.IdleCPUS }},
			{"API writes during cold start (audit log)", "%.0f", func(f *Figures) float64 { return f.WritesColdStart }},
			{"API reads during cold start (own metrics)", "%.0f", func(f *Figures) float64 { return f.ReadsColdStart }},
			{"API writes from start to the idle sample", "%.0f", func(f *Figures) float64 { return f.WritesToIdle }},
			{"delete all → every child gone (s)", "%.2f", func(f *Figures) float64 { return f.DeleteS }},
		} {
			for _, n := range ns {
				m := res.Medians[key(replicas, n)]
				if m["ours"] == nil || m["reference"] == nil {
					continue
				}
				row(fmt.Sprintf("%s, N=%d, replicas %d", f.name, n, replicas), f.get(m["ours"]), f.get(m["reference"]), f.format)
			}
		}
		if len(ns) >= 2 {
			lo, hi := res.Medians[key(replicas, ns[0])], res.Medians[key(replicas, ns[len(ns)-1])]
			if lo["ours"] != nil && lo["reference"] != nil && hi["ours"] != nil && hi["reference"] != nil {
				per := func(op string) float64 {
					return (hi[op].IdleRSSMB - lo[op].IdleRSSMB) * 1024 / float64(ns[len(ns)-1]-ns[0])
				}
				row(fmt.Sprintf("RSS per added cluster, N=%d→%d, replicas %d (KB)", ns[0], ns[len(ns)-1], replicas),
					per("ours"), per("reference"), "%.1f")
			}
		}
	}
	o, r := res.Scale["ours"], res.Scale["reference"]
	if o != nil && r != nil {
		for _, p := range []string{"p50", "p90", "p99"} {
			row(fmt.Sprintf("scale-up: new pod Ready → ConfigMap lists it, %s (ms; %.0f scales)", p, o["count_up"]), o["up_"+p], r["up_"+p], "%.1f")
		}
		for _, p := range []string{"p50", "p90", "p99"} {
			row(fmt.Sprintf("scale-down: patch → ConfigMap without it, %s (ms; %.0f scales)", p, o["count_down"]), o["down_"+p], r["down_"+p], "%.1f")
		}
	}
	if o, r := res.Steady["ours"], res.Steady["reference"]; o != nil && r != nil {
		row(fmt.Sprintf("API writes in %.0f s of steady state, N=%.0f", o["seconds"], o["n"]), o["writes"], r["writes"], "%.0f")
		row(fmt.Sprintf("API reads in %.0f s of steady state, N=%.0f", o["seconds"], o["n"]), o["reads"], r["reads"], "%.0f")
	}
	res.writesByKind(w)
	if len(res.Failures) > 0 {
		fmt.Fprintf(w, "\nFailed runs (left out of the medians):\n- %s\n", strings.Join(res.Failures, "\n- "))
	}
}

func (res *Results) replicasValues() []int {
	var out []int
	for _, r := range res.Runs {
		if !slices.Contains(out, r.Replicas) {
			out = append(out, r.Replicas)
		}
	}
	return out
}

func (res *Results) nsValues(replicas int) []int {
	var out []int
	for _, r := range res.Runs {
		if r.Replicas == replicas && !slices.Contains(out, r.N) {
			out = append(out, r.N)
		}
	}
	slices.Sort(out)
	return out
}

// writesByKind lists, for the largest N of the first replicas value, the cold start's writes
// by verb and resource: where the two operators' writes differ.
func (res *Results) writesByKind(w io.Writer) {
	rv := res.replicasValues()
	if len(rv) == 0 {
		return
	}
	ns := res.nsValues(rv[0])
	m := res.Medians[key(rv[0], ns[len(ns)-1])]
	if m["ours"] == nil || m["reference"] == nil {
		return
	}
	kinds := map[string]bool{}
	for _, f := range m {
		for k := range f.WritesByKind {
			kinds[k] = true
		}
	}
	sorted := slices.Sorted(maps.Keys(kinds))
	fmt.Fprintf(w, "\nWrites during the cold start at N=%d, replicas %d, by verb and resource (audit log):\n\n", ns[len(ns)-1], rv[0])
	fmt.Fprintln(w, "| verb resource | ours | reference |")
	fmt.Fprintln(w, "|---|---|---|")
	for _, k := range sorted {
		fmt.Fprintf(w, "| %s | %.0f | %.0f |\n", k, m["ours"].WritesByKind[k], m["reference"].WritesByKind[k])
	}
}
