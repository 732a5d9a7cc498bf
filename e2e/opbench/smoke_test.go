package opbench

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"memcached-operator/e2e/framework"
)

// TestOperatorBenchSmoke runs the operator benchmark small (N = 1 and 3, replicas 0, one run,
// 10 s of steady state, 2 scales each way, the idle sample 3 s after start) against the suite's
// cluster and checks that every figure of both operators was measured and is sane: children
// created, clusters Available, CPU and RSS read from /proc, writes found in the audit log,
// reads in the operators' metrics, scale latencies, deletion, and a complete JSON file. It does
// not compare speed: that is the benchmark's job (make bench-operator).
func TestOperatorBenchSmoke(t *testing.T) {
	kubeconfig, audit := os.Getenv("KUBECONFIG"), os.Getenv("MCOP_E2E_AUDIT_LOG")
	if kubeconfig == "" || audit == "" {
		t.Fatal("KUBECONFIG and MCOP_E2E_AUDIT_LOG are unset: run through e2e/run-tests")
	}
	root, _ := filepath.Abs(filepath.Join("..", ".."))
	ours := os.Getenv("MCOP_OPERATOR_BINARY")
	if ours == "" {
		ours = filepath.Join(root, "build", "bin", "memcached-operator")
	}
	if _, err := os.Stat(ours); err != nil {
		t.Fatalf("%s is not built (make build)", ours)
	}
	applyCRDs(t, filepath.Join(root, "crds"))
	dir := t.TempDir()
	reference := filepath.Join(dir, "reference-operator")
	build := exec.Command("go", "build", "-o", reference, "./cmd/reference-operator")
	build.Dir = filepath.Join(root, "e2e")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("building the reference operator: %v\n%s", err, out)
	}
	var log bytes.Buffer
	cfg := Config{Ns: []int{1, 3}, Replicas: []int{0}, Runs: 1, Scales: 2, Steady: 10 * time.Second,
		Idle: 3 * time.Second, Timeout: 2 * time.Minute, Out: filepath.Join(dir, "out"), Ours: ours,
		Reference: reference, Kubeconfig: kubeconfig, AuditLog: audit, StateDir: framework.StateDir(t), Log: &log}
	res, err := Execute(context.Background(), cfg)
	t.Logf("benchmark log:\n%s", log.String())
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Failures) > 0 {
		t.Fatalf("failed runs: %s", strings.Join(res.Failures, "; "))
	}
	checkRuns(t, res.Runs)
	checkJSON(t, filepath.Join(cfg.Out, "results.json"))
	var table bytes.Buffer
	res.Table(&table)
	t.Logf("table:\n%s", table.String())
	for _, row := range []string{"every child exists (s), N=3", "threads at the idle sample, N=1", "scale-up: new pod Ready", "steady state, N=3"} {
		if !strings.Contains(table.String(), row) {
			t.Errorf("the table has no row %q", row)
		}
	}
}

func checkRuns(t *testing.T, runs []*Run) {
	t.Helper()
	if len(runs) != 4 {
		t.Fatalf("%d runs, want 4 (2 operators x N = 1, 3)", len(runs))
	}
	for _, r := range runs {
		what := fmt.Sprintf("%s N=%d", r.Operator, r.N)
		switch {
		case r.ChildrenS <= 0 || r.ChildrenS > 120 || r.AvailableS <= 0 || r.AvailableS > 120:
			t.Errorf("%s: cold start %.3f s to children, %.3f s to Available", what, r.ChildrenS, r.AvailableS)
		case r.CPUAvailableS <= 0 || r.PeakRSSMB < 5 || r.Idle.RSSMB < 5 || r.Idle.Threads < 1:
			t.Errorf("%s: CPU %.2f s, peak RSS %.1f MB, idle RSS %.1f MB, %d threads", what, r.CPUAvailableS, r.PeakRSSMB, r.Idle.RSSMB, r.Idle.Threads)
		case sum(r.WritesColdStart) < float64(5*r.N):
			// Every cluster has 5 children, each created by one write during the cold start.
			t.Errorf("%s: %v writes in the audit log during the cold start, want >= %d", what, r.WritesColdStart, 5*r.N)
		case sum(r.ReadsColdStart) < 1:
			t.Errorf("%s: no reads in the operator's metrics during the cold start", what)
		case r.DeleteS <= 0:
			t.Errorf("%s: deletion took %.3f s", what, r.DeleteS)
		case r.N > 0 && r.ControlPlaneCPUChildrenS <= 0:
			t.Errorf("%s: control-plane CPU %.2f s during the cold start, want > 0", what, r.ControlPlaneCPUChildrenS)
		}
		if r.N == 1 && (len(r.ScaleUpMS) != 2 || len(r.ScaleDownMS) != 2) {
			t.Errorf("%s: scale latencies up %v, down %v, want 2 each", what, r.ScaleUpMS, r.ScaleDownMS)
		}
		if r.N == 3 && r.SteadyS < 10 {
			t.Errorf("%s: steady window %.1f s, want >= 10", what, r.SteadyS)
		}
	}
}

func checkJSON(t *testing.T, path string) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var res Results
	if err := json.Unmarshal(b, &res); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	for _, k := range []string{key(0, 1), key(0, 3)} {
		if res.Medians[k]["ours"] == nil || res.Medians[k]["reference"] == nil || res.Ratios[k]["cold_start_children"] <= 0 {
			t.Errorf("%s: no medians or ratios for %s", path, k)
		}
	}
	if res.Scale["ours"]["count_up"] != 2 || res.Scale["reference"]["count_up"] != 2 {
		t.Errorf("%s: scale latencies %v", path, res.Scale)
	}
	if _, ok := res.Steady["ours"]; !ok {
		t.Errorf("%s: no steady-state figures for ours", path)
	}
	if _, ok := res.Steady["reference"]; !ok {
		t.Errorf("%s: no steady-state figures for the reference", path)
	}
}

// applyCRDs applies crds/ with kubectl, as a user would, and waits until the CRD is served.
func applyCRDs(t *testing.T, dir string) {
	t.Helper()
	if out, err := exec.Command("kubectl", "apply", "-f", dir).CombinedOutput(); err != nil {
		t.Fatalf("applying %s: %v\n%s", dir, err, out)
	}
	// On a fresh cluster the CRD can have no status yet, and kubectl wait then fails at once
	// (".status.conditions accessor error") instead of waiting: try again.
	var out []byte
	var err error
	for i := 0; i < 40; i++ {
		out, err = exec.Command("kubectl", "wait", "--for=condition=Established", "--timeout=60s",
			"crd/memcachedclusters.memcached.operator.io").CombinedOutput()
		if err == nil {
			return
		}
		time.Sleep(500 * time.Millisecond)
	}
	t.Fatalf("the MemcachedCluster CRD is not Established: %v\n%s", err, out)
}
