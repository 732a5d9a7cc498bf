//go:build reliability

// Client load through resizes and a rolling update: build/bin/clientconfig-load (libclientconfig's
// Client, following the endpoints ConfigMap as projected by the kubelet's layout) writes and reads
// versioned values at >= 10,000 operations/s while a Warm cluster is scaled 2 -> 3, 3 -> 2 and
// rolled, and must see 0 client errors and 0 stale reads throughout. This file also holds the
// load helpers memcached_faults_test.go uses.
package operator

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"memcached-operator/e2e/framework"
)

// loadWindow is one line of clientconfig-load's output: the counts of one second (or, in the
// summary, of the whole run).
type loadWindow struct {
	TMs          int64            `json:"t_ms"`
	Version      int64            `json:"version"`
	Ops          int64            `json:"ops"`
	Gets         int64            `json:"gets"`
	Hits         int64            `json:"hits"`
	Misses       int64            `json:"misses"`
	Sets         int64            `json:"sets"`
	Fills        int64            `json:"fills"`
	Stale        int64            `json:"stale"`
	Corrupt      int64            `json:"corrupt"`
	Errors       int64            `json:"errors"`
	ErrorsByKind map[string]int64 `json:"errors_by_kind"`
}

type loadSummary struct {
	loadWindow
	ElapsedS    float64  `json:"elapsed_s"`
	OpsPerS     float64  `json:"ops_per_s"`
	FirstErrors []string `json:"first_errors"`
	FirstStale  []string `json:"first_stale"`
}

func (w *loadWindow) add(o loadWindow) {
	w.Ops += o.Ops
	w.Gets += o.Gets
	w.Hits += o.Hits
	w.Misses += o.Misses
	w.Sets += o.Sets
	w.Fills += o.Fills
	w.Stale += o.Stale
	w.Corrupt += o.Corrupt
	w.Errors += o.Errors
	for k, n := range o.ErrorsByKind {
		if w.ErrorsByKind == nil {
			w.ErrorsByKind = map[string]int64{}
		}
		w.ErrorsByKind[k] += n
	}
}

func (w loadWindow) hitRatio() float64 {
	if w.Gets == 0 {
		return 0
	}
	return float64(w.Hits) / float64(w.Gets)
}

// loadGen is a running clientconfig-load and the projection of the ConfigMap it follows.
// Its methods are safe from any goroutine.
type loadGen struct {
	t       *testing.T
	cmd     *exec.Cmd
	stderr  string
	mu      sync.Mutex
	windows []loadWindow // guarded by mu
	summary *loadSummary // guarded by mu
	ready   chan struct{}
	done    chan struct{}
}

func loadBinary(t *testing.T) string {
	bin := filepath.Join(repoRoot(t), "build", "bin", "clientconfig-load")
	if _, err := os.Stat(bin); err != nil {
		t.Fatalf("%s is not built (make build)", bin)
	}
	return bin
}

// startLoad projects the ConfigMap cm into a directory as the kubelet would (1 s delay) and runs
// clientconfig-load on it with args (after --dir); it returns once the keys are prefilled.
// The load is stopped when the test ends.
func (e *env) startLoad(cm string, args ...string) *loadGen {
	e.t.Helper()
	bin := loadBinary(e.t)
	dir := filepath.Join(e.t.TempDir(), "mount")
	proj := framework.ClusterCommand("project-configmap", e.ns+"/"+cm, dir, "--delay", "1s")
	projLog, err := os.Create(filepath.Join(e.t.TempDir(), "project-configmap.log"))
	if err != nil {
		e.t.Fatal(err)
	}
	proj.Stdout, proj.Stderr = projLog, projLog
	proj.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := proj.Start(); err != nil {
		e.t.Fatalf("project-configmap: %v", err)
	}
	e.t.Cleanup(func() {
		_ = syscall.Kill(-proj.Process.Pid, syscall.SIGKILL)
		_ = proj.Wait()
		projLog.Close()
	})
	e.waitFor(30*time.Second, "the ConfigMap projected into "+dir, func() (bool, error) {
		_, err := os.Stat(filepath.Join(dir, "endpoints.json"))
		return err == nil, err
	})

	l := &loadGen{t: e.t, ready: make(chan struct{}), done: make(chan struct{})}
	l.stderr = filepath.Join(e.t.TempDir(), "load.stderr")
	errf, err := os.Create(l.stderr)
	if err != nil {
		e.t.Fatal(err)
	}
	l.cmd = exec.Command(bin, append([]string{"--dir", dir}, args...)...)
	l.cmd.Stderr = errf
	out, err := l.cmd.StdoutPipe()
	if err != nil {
		e.t.Fatal(err)
	}
	if err := l.cmd.Start(); err != nil {
		e.t.Fatalf("starting %s: %v", bin, err)
	}
	go l.read(out, errf)
	e.t.Cleanup(func() { l.stop() })
	select {
	case <-l.ready:
	case <-l.done:
		b, _ := os.ReadFile(l.stderr)
		e.t.Fatalf("clientconfig-load exited before it was ready:\n%s", b)
	case <-time.After(120 * time.Second):
		e.t.Fatalf("clientconfig-load not ready (prefilled) within 120 s")
	}
	e.t.Logf("load started: %s %s", bin, strings.Join(l.cmd.Args[1:], " "))
	return l
}

func (l *loadGen) read(out interface{ Read([]byte) (int, error) }, errf *os.File) {
	defer close(l.done)
	defer errf.Close()
	sc := bufio.NewScanner(out)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		line := sc.Bytes()
		var head struct {
			Ready, Summary bool
			PrefillErrors  int64 `json:"prefill_errors"`
		}
		if json.Unmarshal(line, &head) != nil {
			continue
		}
		switch {
		case head.Ready:
			if head.PrefillErrors > 0 {
				l.t.Logf("clientconfig-load: %d prefill errors", head.PrefillErrors)
			}
			close(l.ready)
		case head.Summary:
			var s loadSummary
			if json.Unmarshal(line, &s) == nil {
				l.mu.Lock()
				l.summary = &s
				l.mu.Unlock()
			}
		default:
			var w loadWindow
			if json.Unmarshal(line, &w) == nil {
				l.mu.Lock()
				l.windows = append(l.windows, w)
				l.mu.Unlock()
			}
		}
	}
	_ = l.cmd.Wait()
}

// stop ends the load (SIGTERM) and returns its summary (nil if it printed none).
func (l *loadGen) stop() *loadSummary {
	if l.cmd.ProcessState == nil {
		_ = l.cmd.Process.Signal(syscall.SIGTERM)
	}
	select {
	case <-l.done:
	case <-time.After(30 * time.Second):
		l.t.Errorf("clientconfig-load did not exit within 30 s of SIGTERM")
		_ = l.cmd.Process.Kill()
		<-l.done
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.summary
}

// between sums the windows that ended in (from, to] and says how many there were.
func (l *loadGen) between(from, to time.Time) (loadWindow, int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	var sum loadWindow
	n := 0
	for _, w := range l.windows {
		if w.TMs > from.UnixMilli() && w.TMs <= to.UnixMilli() {
			sum.add(w)
			n++
		}
	}
	return sum, n
}

// windowsBetween returns the windows that ended in (from, to].
func (l *loadGen) windowsBetween(from, to time.Time) []loadWindow {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []loadWindow
	for _, w := range l.windows {
		if w.TMs > from.UnixMilli() && w.TMs <= to.UnixMilli() {
			out = append(out, w)
		}
	}
	return out
}

// phase is one stretch of a load run, for the figures.
type phase struct {
	name     string
	from, to time.Time
}

// logPhases logs, per phase, the rate, hit ratio, misses, errors and stale reads, and returns
// them as a Markdown table (what docs/reliability.md reports).
func (l *loadGen) logPhases(phases []phase) string {
	var b strings.Builder
	b.WriteString("| phase | s | ops/s | hit ratio | worst 1 s hit ratio | misses | errors | stale reads |\n|---|---|---|---|---|---|---|---|\n")
	for _, p := range phases {
		sum, n := l.between(p.from, p.to)
		worst := 1.0
		for _, w := range l.windowsBetween(p.from, p.to) {
			if r := w.hitRatio(); w.Gets > 0 && r < worst {
				worst = r
			}
		}
		rate := 0.0
		if n > 0 {
			rate = float64(sum.Ops) / float64(n)
		}
		fmt.Fprintf(&b, "| %s | %d | %.0f | %.4f | %.4f | %d | %d %s | %d |\n", p.name, n, rate, sum.hitRatio(), worst,
			sum.Misses, sum.Errors, kinds(sum.ErrorsByKind), sum.Stale)
	}
	l.t.Logf("figure: load per phase:\n%s", b.String())
	return b.String()
}

func kinds(m map[string]int64) string {
	if len(m) == 0 {
		return ""
	}
	var ks []string
	for k, n := range m {
		ks = append(ks, fmt.Sprintf("%s=%d", k, n))
	}
	sort.Strings(ks)
	return "(" + strings.Join(ks, ", ") + ")"
}

// checkLoadSummary fails the test on any stale or corrupt read, and logs the run's figures.
func checkLoadSummary(t *testing.T, s *loadSummary) {
	t.Helper()
	if s == nil {
		t.Fatalf("clientconfig-load printed no summary")
	}
	t.Logf("figure: load summary: %.0f ops/s over %.1f s (%d ops: %d gets, %d hits, %d misses, %d sets, %d fills), hit ratio %.4f, errors %d %s, stale %d, corrupt %d",
		s.OpsPerS, s.ElapsedS, s.Ops, s.Gets, s.Hits, s.Misses, s.Sets, s.Fills, s.hitRatio(), s.Errors, kinds(s.ErrorsByKind), s.Stale, s.Corrupt)
	if s.Stale != 0 || s.Corrupt != 0 {
		t.Errorf("%d stale and %d corrupt reads; first: %v", s.Stale, s.Corrupt, s.FirstStale)
	}
	if len(s.FirstErrors) > 0 {
		first := s.FirstErrors
		if len(first) > 5 {
			first = first[:5]
		}
		t.Logf("first client errors: %s", strings.Join(first, "; "))
	}
}

// loadArgs is the workload of these tests: 8 threads (one Client each: more requests in flight
// ride out the shared machine's scheduling delays), 20,000 keys, 10% sets,
// 12,000 operations/s asked (the machine may deliver less: it is measured), a 2 s timeout so a
// stall of the shared machine is not taken for a failure.
var loadArgs = []string{"--threads", "8", "--keys", "20000", "--rate", "12000", "--write-fraction", "0.1", "--timeout-ms", "2000"}

// Fails if: any client error (a key routed to a member that is gone or not serving, a list
// published with a member missing), any stale read (a copy older than an acknowledged write
// served: a Warm phase applied wrongly, a stale copy not swept), a version skipped or repeated,
// or the cluster not settling, or a 1 s window whose hit ratio fell below 99% (Warm promises no
// dip).
func TestReliabilityLoadThroughResizes(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.startOperator()
	ep2, _, published := e.warmCluster(2, 2, "  memcached:\n    memoryMB: 64\n")
	s, load := e.loadThroughResizes("Warm", ep2, published)
	if s != nil && s.Errors != 0 {
		t.Errorf("%d client errors through Warm resizes and a Warm rolling update; want 0", s.Errors)
	}
	// No dip: every second's hit ratio at least 99% (e2e/bench's criterion for Warm).
	for _, w := range load.windowsBetween(time.UnixMilli(0), time.Now()) {
		if w.Gets > 0 && w.hitRatio() < 0.99 {
			t.Errorf("a 1 s window at %s had hit ratio %.4f (%d misses of %d gets); Warm promises no dip", time.UnixMilli(w.TMs).UTC().Format("15:04:05"), w.hitRatio(), w.Misses, w.Gets)
		}
	}
}

// The same with transition.mode Cold (the default): moved keys start cold (misses, reported), and
// the StatefulSet restarts the members itself in the rolling update, so each is down for a moment
// while still listed (unready): client errors are expected there, and only there. Fails if: any
// stale read, any client error during the resizes, or a version skipped or repeated.
func TestReliabilityLoadThroughResizesCold(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.startOperator()
	e.createCluster(clusterName, fmt.Sprintf("  replicas: 2\n  memcached:\n    memoryMB: 64\n  drain:\n    minSeconds: %d\n    timeoutSeconds: 60\n", minSeconds))
	e.waitAvailable(clusterName, 120*time.Second)
	ep2, _ := e.waitStable(2, 90*time.Second)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	published := e.watchPublished(ctx, cmName)
	e.loadThroughResizes("Cold", ep2, published)
}

// loadThroughResizes runs the load through 2 -> 3, 3 -> 2 and a rolling update of the cluster
// (in the given transition mode), checks there was no stale read, no client error outside a Cold
// rolling update and versions rising by one, logs the figures per phase and returns the summary
// and the load's windows.
func (e *env) loadThroughResizes(mode string, ep2 endpoints, published *publishedVersions) (*loadSummary, *loadGen) {
	t := e.t
	t.Helper()
	load := e.startLoad(cmName, loadArgs...)
	var phases []phase
	mark := time.Now()
	step := func(name string, settle func()) {
		t.Helper()
		settle()
		now := time.Now()
		phases = append(phases, phase{name, mark, now})
		mark = now
	}
	step("steady (2 members)", func() { time.Sleep(10 * time.Second) })
	step("scale 2 -> 3 ("+mode+")", func() {
		e.kubectlOK("scale", "mcc/"+clusterName, "--replicas=3")
		e.waitStable(3, 180*time.Second)
		e.waitAvailable(clusterName, 120*time.Second)
		time.Sleep(3 * time.Second) // the projection's delay and the clients' reload
	})
	step("scale 3 -> 2 ("+mode+")", func() {
		e.kubectlOK("scale", "mcc/"+clusterName, "--replicas=2")
		e.waitStable(2, 180*time.Second)
		e.waitFor(120*time.Second, "StatefulSet lowered to 2 and the drain done", func() (bool, error) {
			s := statusOf(e.mcc(clusterName))
			return e.stsReplicas(clusterName) == 2 && s.Drain == nil && s.Phase == "Available", fmt.Errorf("replicas %d, drain %v, phase %s", e.stsReplicas(clusterName), s.Drain, s.Phase)
		})
		time.Sleep(3 * time.Second)
	})
	resizes := phases[len(phases)-1].to
	step("rolling update ("+mode+", 2 members)", func() {
		e.rollAndWait()
		time.Sleep(3 * time.Second)
	})
	step("steady after", func() { time.Sleep(5 * time.Second) })
	s := load.stop()
	load.logPhases(phases)
	checkLoadSummary(t, s)
	if during, _ := load.between(phases[0].from, resizes); during.Errors != 0 {
		t.Errorf("%d client errors through the resizes (%s); want 0", during.Errors, kinds(during.ErrorsByKind))
	}
	if after, _ := load.between(phases[len(phases)-1].from, phases[len(phases)-1].to); after.Errors != 0 {
		t.Errorf("%d client errors once the rolling update had settled (%s); want 0", after.Errors, kinds(after.ErrorsByKind))
	}
	if s != nil && s.OpsPerS < 10000 {
		// Reported, not asserted: the rate is the shared machine's, not the operator's.
		t.Logf("NOTE: %.0f ops/s reached, below the 10,000 asked of the workload (2 shared cores)", s.OpsPerS)
	}
	last, _, _ := e.endpointsOf(cmName)
	published.upTo(t, last.Version)
	eps := published.since(ep2.Version)
	for i, ep := range eps {
		if ep.Version != ep2.Version+int64(i)+1 {
			t.Errorf("version %d published as #%d after %d: versions must rise by one", ep.Version, i+1, ep2.Version)
		}
	}
	t.Logf("published %d versions: %s", len(eps), strings.Join(phasesOf(eps), " "))
	return s, load
}

// rollAndWait changes the pod template (memoryMB) and waits until both members run in new pods,
// Ready, the rollout and any transition over, the stable ring of 2 published and the cluster
// Available.
func (e *env) rollAndWait() {
	e.t.Helper()
	uids := map[string]string{}
	for _, n := range []string{"cache-0", "cache-1"} {
		p, _ := e.pod(n)
		uids[n] = string(p.UID)
	}
	e.kubectlOK("patch", "mcc/"+clusterName, "--type=merge", "-p", `{"spec":{"memcached":{"memoryMB":80}}}`)
	e.waitFor(300*time.Second, "both members restarted and the stable ring of 2 published", func() (bool, error) {
		for n, uid := range uids {
			p, ok := e.pod(n)
			if !ok || string(p.UID) == uid || p.DeletionTimestamp != nil || !framework.PodReady(p) {
				return false, fmt.Errorf("%s not replaced yet", n)
			}
		}
		u := e.mcc(clusterName)
		st, _ := u.Object["status"].(map[string]any)
		ep, _, _ := e.endpointsOf(cmName)
		active := 0
		for _, m := range ep.Servers {
			if m.State == "active" {
				active++
			}
		}
		s := statusOf(u)
		return st["rollout"] == nil && st["transition"] == nil && len(ep.Servers) == 2 && active == 2 && ep.Phase == "" &&
				s.Phase == "Available" && s.ObservedGeneration == u.GetGeneration(),
			fmt.Errorf("rollout %v, transition %v, published %s%s, phase %s", st["rollout"] != nil, st["transition"] != nil, ep.Phase, statesOf(ep), s.Phase)
	})
}
