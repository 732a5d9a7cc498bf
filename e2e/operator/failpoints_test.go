//go:build reliability

// TestReliabilityFailpoints: the operator stopped abruptly at every failpoint (operator
// util/failpoint.h, armed by MCOP_FAILPOINTS), ten times each, while one Warm cluster goes
// through a cycle of scale-up (2 -> 3), a rolling update (3 members), scale-down (3 -> 2), a
// cancelled scale-down (2 -> 1, back to 2 once the drain is recorded) and a multi-member resize
// (2 -> 4, then 4 -> 3 -> 2: every scale-down lowers replicas once). Each time the operator exits with the failpoint code it is restarted at
// once, re-armed with every point that still has injections left (several points armed at once,
// each at a seeded random hit, so that 10 x every point fits the budget; MCOP_FAILPOINT_SEED
// replays a run). The invariant monitor (invariants_test.go) watches the whole run, and every
// step must converge. It fails when: a point is never reached by the cycle or fires fewer than
// 10 times, the operator exits with any other code, a step does not converge, or the monitor
// sees a violation (a listed pod deleted or its memcached stopped, a version skipped, reused or
// going backwards, an empty list while members are Ready).
package operator

import (
	"fmt"
	"math/rand"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

const (
	failpointExitCode   = 87 // operator util::kFailpointExitCode
	failpointInjections = 10
	// Enough for the points reached once or twice a cycle (after lowering replicas, after a
	// rollout's deletion) to fire 10 times with room to spare: 3 or 4 cycles do it.
	failpointMaxCycles = 8
	stepTimeout        = 240 * time.Second
)

// Points reached on almost every pass: armed at a random hit within these bounds, so their
// injections spread over the steps instead of all landing on the first status write.
var frequentFailpoints = map[string]int{
	"status-write-before": 20, "status-write-after": 20, "decision-recorded": 12, "endpoints-published": 3,
}

var firedRe = regexp.MustCompile(`failpoint (\S+) fired \(hit (\d+)\): exiting`)

// knownFailpoints asks the operator binary itself: an unknown name is a start-up error that
// lists every known failpoint. So a point added to the operator is in this test at once.
func knownFailpoints(t *testing.T) []string {
	cmd := exec.Command(operatorBinary(t), "--kubeconfig", filepath.Join(t.TempDir(), "none"))
	cmd.Env = append(os.Environ(), "MCOP_FAILPOINTS=no-such-failpoint")
	out, err := cmd.CombinedOutput()
	_, list, ok := strings.Cut(string(out), "names from: ")
	if err == nil || !ok {
		t.Fatalf("the operator accepted an unknown failpoint or did not list the known ones (%v): %s", err, out)
	}
	names := strings.Split(strings.TrimSpace(list), ", ")
	if len(names) < 10 {
		t.Fatalf("only %d failpoints listed: %q", len(names), names)
	}
	return names
}

type fpInjection struct {
	point, step string
	restarted   time.Time
}

// failpointLoop runs the operator under MCOP_FAILPOINTS and restarts it after every injection.
// Thread-safety: mu guards everything below it; run() is the one goroutine owning the process.
type failpointLoop struct {
	t    *testing.T
	e    *env
	mon  *invariantMonitor
	rng  *rand.Rand
	logs string

	mu        sync.Mutex
	remaining map[string]int
	fired     map[string]int
	byStep    map[string]map[string]int
	conv      map[string][]time.Duration
	open      []fpInjection // injections of the current step, until it converges
	step      string
	runs      int
	lastLog   string
	proc      *exec.Cmd
	stopping  bool
	done      chan struct{}
}

func newFailpointLoop(e *env, mon *invariantMonitor, names []string, seed int64) *failpointLoop {
	l := &failpointLoop{
		t: e.t, e: e, mon: mon, rng: rand.New(rand.NewSource(seed)), logs: e.t.TempDir(),
		remaining: map[string]int{}, fired: map[string]int{}, byStep: map[string]map[string]int{},
		conv: map[string][]time.Duration{}, step: "setup", done: make(chan struct{}),
	}
	for _, n := range names {
		l.remaining[n] = failpointInjections
	}
	return l
}

// planLocked is the MCOP_FAILPOINTS of the next run: every point with injections left.
func (l *failpointLoop) planLocked() string {
	var items []string
	names := make([]string, 0, len(l.remaining))
	for n := range l.remaining {
		names = append(names, n)
	}
	sort.Strings(names) // the seeded draws must not depend on map order
	for _, n := range names {
		if l.remaining[n] <= 0 {
			continue
		}
		hit := 1
		if k, ok := frequentFailpoints[n]; ok {
			hit = 1 + l.rng.Intn(k)
		}
		items = append(items, fmt.Sprintf("%s@%d", n, hit))
	}
	return strings.Join(items, ",")
}

// startLocked starts one operator run with the current plan.
func (l *failpointLoop) startLocked() (*exec.Cmd, string, error) {
	l.runs++
	plan := l.planLocked()
	logPath := filepath.Join(l.logs, fmt.Sprintf("operator-%03d.log", l.runs))
	f, err := os.Create(logPath)
	if err != nil {
		return nil, "", err
	}
	defer f.Close()
	args := []string{"--kubeconfig", os.Getenv("KUBECONFIG"), "--namespace", l.e.ns,
		"--metrics-bind-address=0", "--health-probe-bind-address=0"}
	cmd := exec.Command(operatorBinary(l.t), args...)
	cmd.Env = append(os.Environ(), "MCOP_FAILPOINTS="+plan)
	cmd.Stdout, cmd.Stderr = f, f
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		return nil, "", err
	}
	l.proc, l.lastLog = cmd, logPath
	return cmd, plan, nil
}

// run supervises the operator until stop(): an exit with the failpoint code is an injection
// (counted, then the operator restarts at once); any other exit is an error, and the operator
// is restarted so that the scenario still reports everything else.
func (l *failpointLoop) run() {
	defer close(l.done)
	for {
		l.mu.Lock()
		if l.stopping {
			l.mu.Unlock()
			return
		}
		cmd, plan, err := l.startLocked()
		logPath := l.lastLog
		l.mu.Unlock()
		if err != nil {
			l.t.Errorf("starting the operator: %v", err)
			return
		}
		_ = cmd.Wait()
		code := cmd.ProcessState.ExitCode()
		restarted := time.Now()
		l.mu.Lock()
		if l.stopping {
			l.mu.Unlock()
			return
		}
		text, _ := os.ReadFile(logPath)
		m := firedRe.FindSubmatch(text)
		switch {
		case code == failpointExitCode && m != nil:
			point := string(m[1])
			l.fired[point]++
			l.remaining[point]--
			if l.byStep[point] == nil {
				l.byStep[point] = map[string]int{}
			}
			l.byStep[point][l.step]++
			l.open = append(l.open, fpInjection{point, l.step, restarted})
			l.mon.mark(fmt.Sprintf("failpoint %s fired (hit %s) in step %s; operator restarted", point, m[2], l.step))
		default:
			l.t.Errorf("the operator exited with code %d, not by a failpoint (MCOP_FAILPOINTS=%s); log tail:\n%s",
				code, plan, tail(string(text), 40))
			l.mon.mark(fmt.Sprintf("operator exited with code %d", code))
		}
		l.mu.Unlock()
	}
}

func tail(text string, n int) string {
	lines := strings.Split(strings.TrimSpace(text), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

func (l *failpointLoop) stop() {
	l.mu.Lock()
	l.stopping = true
	if l.proc != nil && l.proc.Process != nil {
		_ = l.proc.Process.Signal(syscall.SIGTERM)
	}
	l.mu.Unlock()
	select {
	case <-l.done:
	case <-time.After(20 * time.Second):
		l.mu.Lock()
		_ = l.proc.Process.Kill()
		l.mu.Unlock()
		<-l.done
	}
}

func (l *failpointLoop) setStep(step string) {
	l.mu.Lock()
	l.step = step
	l.mu.Unlock()
	l.mon.mark("step " + step)
}

// converge waits for invariant 4 on the step and records, for every injection of the step, the
// time from its restart to the step's convergence.
func (l *failpointLoop) converge(names []string) time.Duration {
	l.t.Helper()
	start := time.Now()
	var last error
	for time.Since(start) < stepTimeout {
		ok, err := l.e.converged(clusterName, cmName, names)
		if ok {
			now := time.Now()
			l.mu.Lock()
			for _, in := range l.open {
				l.conv[in.point] = append(l.conv[in.point], now.Sub(in.restarted))
			}
			l.open = nil
			l.mu.Unlock()
			l.mon.mark(fmt.Sprintf("converged on %v", names))
			return time.Since(start)
		}
		last = err
		time.Sleep(250 * time.Millisecond)
	}
	l.mon.mark("did not converge")
	l.t.Fatalf("step %s did not converge on %v within %s: %v", l.step, names, stepTimeout, last)
	return 0
}

func (l *failpointLoop) allDone() bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, r := range l.remaining {
		if r > 0 {
			return false
		}
	}
	return true
}

func (e *env) patchCluster(patch string) {
	e.t.Helper()
	e.kubectlOK("patch", "mcc/"+clusterName, "--type=merge", "-p", patch)
}

// fillKeys writes n keys at their owners under the published ring, so the warm copies and the
// sweeps of the next transitions have work.
func (e *env) fillKeys(bin string, n int) {
	e.t.Helper()
	_, cm, ok := e.endpointsOf(cmName)
	if !ok {
		e.t.Fatalf("no endpoints ConfigMap")
	}
	var keys []string
	for i := 0; i < n; i++ {
		keys = append(keys, fmt.Sprintf("fp:%d", i))
	}
	own := owners(e.t, bin, cm.Data["endpoints.json"], keys)
	for _, k := range keys {
		mcSet(e.t, own[k].addr, k, "v-"+k)
	}
}

func TestReliabilityFailpoints(t *testing.T) {
	t.Parallel()
	bin := clientconfigBinary(t)
	names := knownFailpoints(t)
	seed := time.Now().UnixNano()
	if s := os.Getenv("MCOP_FAILPOINT_SEED"); s != "" {
		v, err := strconv.ParseInt(s, 10, 64)
		if err != nil {
			t.Fatalf("MCOP_FAILPOINT_SEED: %v", err)
		}
		seed = v
	}
	t.Logf("failpoints: %s; seed %d (MCOP_FAILPOINT_SEED=%d replays the draws)", strings.Join(names, ", "), seed, seed)

	e := newEnv(t)
	e.createCluster(clusterName, "  replicas: 2\n  memcached:\n    memoryMB: 64\n"+
		"  drain:\n    minSeconds: 2\n    timeoutSeconds: 20\n"+
		"  transition:\n    mode: Warm\n    propagationSeconds: 1\n    windowSeconds: 1\n")
	mon := e.startInvariantMonitor(clusterName, cmName)
	loop := newFailpointLoop(e, mon, names, seed)
	go loop.run()
	stopped := false
	stopAll := func() {
		if !stopped {
			stopped = true
			loop.stop()
			mon.stop()
			if t.Failed() {
				loop.mu.Lock()
				text, _ := os.ReadFile(loop.lastLog)
				t.Logf("last operator run's log tail (%s):\n%s", loop.lastLog, tail(string(text), 60))
				loop.mu.Unlock()
			}
		}
	}
	t.Cleanup(stopAll)

	begin := time.Now()
	loop.setStep("create")
	loop.converge(memberNames(clusterName, 2))
	memory := 64
	cycles, cancelled := 0, 0
	stepTimes := map[string][]time.Duration{}
	timed := func(step string, f func()) {
		loop.setStep(step)
		s := time.Now()
		f()
		stepTimes[step] = append(stepTimes[step], time.Since(s))
	}
	for cycles < failpointMaxCycles && !loop.allDone() {
		cycles++
		e.fillKeys(bin, 300)
		timed("scale-up", func() {
			e.patchCluster(`{"spec":{"replicas":3}}`)
			loop.converge(memberNames(clusterName, 3))
		})
		timed("rolling-update", func() {
			if memory == 64 {
				memory = 72
			} else {
				memory = 64
			}
			e.patchCluster(fmt.Sprintf(`{"spec":{"memcached":{"memoryMB":%d}}}`, memory))
			loop.converge(memberNames(clusterName, 3))
		})
		timed("scale-down", func() {
			e.patchCluster(`{"spec":{"replicas":2}}`)
			loop.converge(memberNames(clusterName, 2))
		})
		timed("cancelled-scale-down", func() {
			before, _ := e.pod(clusterName + "-1")
			e.patchCluster(`{"spec":{"replicas":1}}`)
			e.waitFor(stepTimeout, "the drain to 1 recorded", func() (bool, error) {
				st := statusOf(e.mcc(clusterName))
				return st.Drain != nil && st.Drain.TargetReplicas == 1, fmt.Errorf("status.drain %+v", st.Drain)
			})
			e.patchCluster(`{"spec":{"replicas":2}}`)
			loop.converge(memberNames(clusterName, 2))
			if after, ok := e.pod(clusterName + "-1"); ok && before != nil && after.UID == before.UID {
				cancelled++
			}
		})
		timed("resize", func() {
			e.patchCluster(`{"spec":{"replicas":4}}`)
			loop.converge(memberNames(clusterName, 4))
			e.patchCluster(`{"spec":{"replicas":3}}`)
			loop.converge(memberNames(clusterName, 3))
			e.patchCluster(`{"spec":{"replicas":2}}`)
			loop.converge(memberNames(clusterName, 2))
		})
		t.Logf("cycle %d done after %s", cycles, time.Since(begin).Round(time.Second))
	}
	elapsed := time.Since(begin)
	stopAll()
	violations := len(mon.violations)

	loop.mu.Lock()
	defer loop.mu.Unlock()
	var b strings.Builder
	fmt.Fprintf(&b, "%d cycles in %s, %d operator runs, %d of %d scale-downs cancelled before the drain ended, %d violations\n",
		cycles, elapsed.Round(time.Second), loop.runs, cancelled, cycles, violations)
	fmt.Fprintf(&b, "| failpoint | injections | steps it fired in | convergence after restart p50 / max |\n|---|---|---|---|\n")
	for _, n := range names {
		var steps []string
		for s, c := range loop.byStep[n] {
			steps = append(steps, fmt.Sprintf("%s %d", s, c))
		}
		sort.Strings(steps)
		fmt.Fprintf(&b, "| %s | %d | %s | %s |\n", n, loop.fired[n], strings.Join(steps, ", "), durationSummary(loop.conv[n]))
		if loop.fired[n] == 0 {
			t.Errorf("failpoint %s was never reached by the cycle", n)
		} else if loop.fired[n] < failpointInjections {
			t.Errorf("failpoint %s fired %d times, want %d", n, loop.fired[n], failpointInjections)
		}
	}
	var stepNames []string
	for s := range stepTimes {
		stepNames = append(stepNames, s)
	}
	sort.Strings(stepNames)
	for _, s := range stepNames {
		fmt.Fprintf(&b, "step %s: %s\n", s, durationSummary(stepTimes[s]))
	}
	t.Logf("figure: failpoints\n%s", b.String())
}

// durationSummary is "p50 / max" of ds, "-" when empty.
func durationSummary(ds []time.Duration) string {
	if len(ds) == 0 {
		return "-"
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	return fmt.Sprintf("%.1f s / %.1f s", s[len(s)/2].Seconds(), s[len(s)-1].Seconds())
}
