package opbench

import (
	"encoding/json"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"time"
)

// Figures are one operator's medians over the runs of one N and replicas value.
type Figures struct {
	Runs            int                `json:"runs"`
	ChildrenS       float64            `json:"cold_start_children_s"`
	AvailableS      float64            `json:"cold_start_available_s"`
	CPUChildrenS    float64            `json:"cpu_children_s"`
	CPUAvailableS   float64            `json:"cpu_available_s"`
	ControlPlaneCPU float64            `json:"control_plane_cpu_children_s"`
	PeakRSSMB       float64            `json:"peak_rss_available_mb"`
	IdleRSSMB       float64            `json:"idle_rss_mb"`
	IdleThreads     float64            `json:"idle_threads"`
	IdleCPUS        float64            `json:"cpu_to_idle_sample_s"`
	ReadsColdStart  float64            `json:"reads_cold_start"`
	WritesColdStart float64            `json:"writes_cold_start"`
	WritesByKind    map[string]float64 `json:"writes_cold_start_by_verb_resource"`
	WritesToIdle    float64            `json:"writes_to_idle_sample"`
	DeleteS         float64            `json:"delete_children_gone_s"`
}

// Results is the benchmark's JSON output.
type Results struct {
	Started  time.Time                      `json:"started"`
	Config   map[string]any                 `json:"config"`
	Runs     []*Run                         `json:"runs"`
	Medians  map[string]map[string]*Figures `json:"medians"` // "replicas=R N=n" -> operator -> figures
	Ratios   map[string]map[string]float64  `json:"ratios_ours_over_reference"`
	Scale    map[string]map[string]float64  `json:"scale_latency_ms"` // operator -> up_p50, ...
	Steady   map[string]map[string]float64  `json:"steady_state"`     // operator -> reads, writes, seconds
	Failures []string                       `json:"failures,omitempty"`
}

func median(xs []float64) float64 {
	if len(xs) == 0 {
		return math.NaN()
	}
	s := slices.Clone(xs)
	sort.Float64s(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

// percentile is the nearest-rank percentile.
func percentile(xs []float64, p float64) float64 {
	if len(xs) == 0 {
		return math.NaN()
	}
	s := slices.Clone(xs)
	sort.Float64s(s)
	i := int(math.Ceil(p/100*float64(len(s)))) - 1
	return s[max(i, 0)]
}

func sum(r requests) float64 {
	var t float64
	for _, v := range r {
		t += v
	}
	return t
}

func key(replicas, n int) string { return fmt.Sprintf("replicas=%d N=%d", replicas, n) }

func figuresOf(runs []*Run) *Figures {
	col := func(f func(*Run) float64) float64 {
		var xs []float64
		for _, r := range runs {
			xs = append(xs, f(r))
		}
		return median(xs)
	}
	f := &Figures{Runs: len(runs), WritesByKind: map[string]float64{}}
	f.ChildrenS = col(func(r *Run) float64 { return r.ChildrenS })
	f.AvailableS = col(func(r *Run) float64 { return r.AvailableS })
	f.CPUChildrenS = col(func(r *Run) float64 { return r.CPUChildrenS })
	f.CPUAvailableS = col(func(r *Run) float64 { return r.CPUAvailableS })
	f.ControlPlaneCPU = col(func(r *Run) float64 { return r.ControlPlaneCPUChildrenS })
	f.PeakRSSMB = col(func(r *Run) float64 { return r.PeakRSSMB })
	f.IdleRSSMB = col(func(r *Run) float64 { return r.Idle.RSSMB })
	f.IdleThreads = col(func(r *Run) float64 { return float64(r.Idle.Threads) })
	f.IdleCPUS = col(func(r *Run) float64 { return r.Idle.CPUSeconds })
	f.ReadsColdStart = col(func(r *Run) float64 { return sum(r.ReadsColdStart) })
	f.WritesColdStart = col(func(r *Run) float64 { return sum(r.WritesColdStart) })
	f.WritesToIdle = col(func(r *Run) float64 { return sum(r.WritesIdle) })
	f.DeleteS = col(func(r *Run) float64 { return r.DeleteS })
	kinds := map[string]bool{}
	for _, r := range runs {
		for k := range r.WritesColdStart {
			kinds[k] = true
		}
	}
	for k := range kinds {
		f.WritesByKind[k] = col(func(r *Run) float64 { return r.WritesColdStart[k] })
	}
	return f
}

func summarize(cfg Config, runs []*Run) *Results {
	res := &Results{Started: time.Now().UTC(), Runs: runs,
		Config: map[string]any{"n": cfg.Ns, "replicas": cfg.Replicas, "runs": cfg.Runs, "scales": cfg.Scales,
			"scale_at": cfg.ScaleAt, "steady_s": cfg.Steady.Seconds(), "idle_s": cfg.Idle.Seconds(),
			"ours": cfg.Ours, "reference": cfg.Reference}}
	res.Summarize()
	return res
}

// Summarize computes the medians, ratios, percentiles and failures from the runs (again, for a
// results.json written by an older version of the benchmark).
func (res *Results) Summarize() {
	runs := res.Runs
	res.Medians, res.Ratios = map[string]map[string]*Figures{}, map[string]map[string]float64{}
	res.Scale, res.Steady, res.Failures = map[string]map[string]float64{}, map[string]map[string]float64{}, nil
	byKey := map[string]map[string][]*Run{}
	scaleUp, scaleDown := map[string][]float64{}, map[string][]float64{}
	for _, r := range runs {
		if r.Error != "" {
			res.Failures = append(res.Failures, fmt.Sprintf("%s N=%d replicas=%d run %d: %s", r.Operator, r.N, r.Replicas, r.Index+1, r.Error))
			continue
		}
		k := key(r.Replicas, r.N)
		if byKey[k] == nil {
			byKey[k] = map[string][]*Run{}
		}
		byKey[k][r.Operator] = append(byKey[k][r.Operator], r)
		scaleUp[r.Operator] = append(scaleUp[r.Operator], r.ScaleUpMS...)
		scaleDown[r.Operator] = append(scaleDown[r.Operator], r.ScaleDownMS...)
		if r.SteadyS > 0 {
			res.Steady[r.Operator] = map[string]float64{"n": float64(r.N), "seconds": r.SteadyS,
				"reads": sum(r.ReadsSteady), "writes": sum(r.WritesSteady)}
		}
	}
	for k, ops := range byKey {
		res.Medians[k] = map[string]*Figures{}
		for op, rs := range ops {
			res.Medians[k][op] = figuresOf(rs)
		}
		if o, ref := res.Medians[k]["ours"], res.Medians[k]["reference"]; o != nil && ref != nil {
			res.Ratios[k] = map[string]float64{}
			for name, pair := range map[string][2]float64{
				"cold_start_children": {o.ChildrenS, ref.ChildrenS}, "cold_start_available": {o.AvailableS, ref.AvailableS},
				"cpu_available": {o.CPUAvailableS, ref.CPUAvailableS}, "idle_rss": {o.IdleRSSMB, ref.IdleRSSMB},
				"threads": {o.IdleThreads, ref.IdleThreads}, "writes_cold_start": {o.WritesColdStart, ref.WritesColdStart},
				"delete": {o.DeleteS, ref.DeleteS}} {
				if pair[1] > 0 { // JSON has no infinities
					res.Ratios[k][name] = pair[0] / pair[1]
				}
			}
		}
	}
	for op, xs := range scaleUp {
		if len(xs) == 0 || len(scaleDown[op]) == 0 {
			continue
		}
		ys := scaleDown[op]
		res.Scale[op] = map[string]float64{"count_up": float64(len(xs)), "up_p50": percentile(xs, 50), "up_p90": percentile(xs, 90),
			"up_p99": percentile(xs, 99), "count_down": float64(len(ys)), "down_p50": percentile(ys, 50),
			"down_p90": percentile(ys, 90), "down_p99": percentile(ys, 99)}
	}
}

func (res *Results) write(dir string) error {
	b, err := json.MarshalIndent(res, "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(dir, "results.json"), append(b, '\n'), 0o644)
}
