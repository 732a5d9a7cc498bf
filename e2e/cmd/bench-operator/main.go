// bench-operator runs the operator benchmark (e2e/opbench, e2e/bench/README.md) against a
// running local cluster: the C++ operator and the controller-runtime reference side by side.
// e2e/bench/operator (`make bench-operator`) brings up the cluster, builds the reference and
// calls it; it writes DIR/results.json and DIR/table.md and prints the table.
package main

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"memcached-operator/e2e/opbench"
)

func printReport(path string) int {
	b, err := os.ReadFile(path)
	var res opbench.Results
	if err == nil {
		err = json.Unmarshal(b, &res)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "bench-operator:", err)
		return 1
	}
	res.Summarize()
	res.Table(os.Stdout)
	return 0
}

func ints(s string) ([]int, error) {
	var out []int
	for _, f := range strings.Split(s, ",") {
		v, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || v < 0 {
			return nil, fmt.Errorf("%q is not a list of counts", s)
		}
		out = append(out, v)
	}
	return out, nil
}

func main() {
	home, _ := os.UserHomeDir()
	def := filepath.Join(home, ".cache", "memcached-operator", "bench", "operator-"+time.Now().UTC().Format("20060102T150405Z"))
	n := flag.String("n", "1,10,100,1000", "cluster counts, comma-separated")
	replicas := flag.String("replicas", "0", "spec.replicas of every cluster, comma-separated (e.g. 0,1)")
	runs := flag.Int("runs", 3, "runs per operator and N (medians over them; the operators alternate)")
	scales := flag.Int("scales", 50, "scale-ups and scale-downs per operator in total (each way)")
	scaleAt := flag.Int("scale-at", 0, "the N whose runs scale (default: the smallest)")
	steady := flag.Duration("steady", 600*time.Second, "steady-state window, once per operator at the largest N (0: none)")
	idle := flag.Duration("idle", 60*time.Second, "from the operator's start to the idle RSS and threads sample")
	timeout := flag.Duration("timeout", 20*time.Minute, "for each wait (cold start, deletion)")
	out := flag.String("out", def, "result directory")
	ours := flag.String("ours", "build/bin/memcached-operator", "the C++ operator binary")
	reference := flag.String("reference", "", "the reference-operator binary (go build ./cmd/reference-operator)")
	kubeconfig := flag.String("kubeconfig", os.Getenv("KUBECONFIG"), "kubeconfig of the local cluster")
	state := flag.String("state", os.Getenv("MCOP_E2E_STATE"), "the local cluster's state directory, for its control plane's CPU (e2e/cluster env)")
	audit := flag.String("audit-log", os.Getenv("MCOP_E2E_AUDIT_LOG"), "the API server's audit log (e2e/cluster audit-log)")
	report := flag.String("report", "", "print the table of a finished run's results.json (medians computed again from its runs) and exit")
	flag.Parse()
	if *report != "" {
		os.Exit(printReport(*report))
	}
	cfg := opbench.Config{Runs: *runs, Scales: *scales, ScaleAt: *scaleAt, Steady: *steady, Idle: *idle,
		Timeout: *timeout, Out: *out, Ours: *ours, Reference: *reference, Kubeconfig: *kubeconfig, AuditLog: *audit, StateDir: *state}
	var err error
	if cfg.Ns, err = ints(*n); err == nil {
		cfg.Replicas, err = ints(*replicas)
	}
	if err == nil && (cfg.Reference == "" || cfg.Kubeconfig == "" || cfg.AuditLog == "" || cfg.Runs < 1) {
		err = fmt.Errorf("--reference, --kubeconfig, --audit-log and --runs >= 1 are needed")
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "bench-operator:", err)
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	res, err := opbench.Execute(ctx, cfg)
	if err != nil {
		fmt.Fprintln(os.Stderr, "bench-operator:", err)
		os.Exit(1)
	}
	var table bytes.Buffer
	res.Table(&table)
	_ = os.WriteFile(filepath.Join(cfg.Out, "table.md"), table.Bytes(), 0o644)
	os.Stdout.Write(table.Bytes())
	fmt.Fprintf(os.Stderr, "bench-operator: results in %s\n", cfg.Out)
	if len(res.Failures) > 0 {
		os.Exit(1)
	}
}
