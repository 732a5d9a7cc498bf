//go:build reliability

// API server faults, against the real control plane: the API server stopped for 60 s (in steady
// state, mid drain, mid Warm transition), an informer forced to relist by a watch that expired
// while the operator was cut off, and a second writer making the operator's writes conflict.
// What is checked is what an SRE would look at first: the process stays up and does not spin,
// its log says what is wrong without flooding, the published list is never emptied or
// shortened, versions rise by exactly one, and everything converges once the API is back (the
// time it takes is measured and logged as "figure:" lines, never asserted).
package operator

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"

	"memcached-operator/e2e/framework"
)

// procCPUSeconds is the CPU time (user + system, all threads) a process has used so far.
func procCPUSeconds(t *testing.T, pid int) float64 {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		t.Fatalf("reading /proc/%d/stat: %v", pid, err)
	}
	// The command name (field 2) may hold spaces: count fields after its closing parenthesis.
	f := strings.Fields(string(b[strings.LastIndexByte(string(b), ')')+1:]))
	utime, _ := strconv.ParseFloat(f[11], 64) // field 14
	stime, _ := strconv.ParseFloat(f[12], 64) // field 15
	return (utime + stime) / 100              // USER_HZ is 100 on Linux
}

// versionLog follows one endpoints ConfigMap through API outages and watch expiry (it watches
// again from the last resourceVersion, and lists again after a 410) and checks every version it
// sees as it arrives: a version is never reused for other content, never skipped, never goes
// back, and the list never has fewer servers than the floor the test set (0 for no floor).
// Safe for concurrent use.
type versionLog struct {
	mu       sync.Mutex
	seen     []endpoints // every distinct version, in order
	texts    []string    // endpoints.json of each
	floor    int
	problems []string
	relists  int
}

func (v *versionLog) setFloor(n int) {
	v.mu.Lock()
	defer v.mu.Unlock()
	v.floor = n
}

func (v *versionLog) record(text string) {
	var ep endpoints
	if err := json.Unmarshal([]byte(text), &ep); err != nil {
		v.mu.Lock()
		v.problems = append(v.problems, fmt.Sprintf("endpoints.json does not parse: %v", err))
		v.mu.Unlock()
		return
	}
	v.mu.Lock()
	defer v.mu.Unlock()
	if len(ep.Servers) < v.floor || len(ep.Servers) == 0 {
		v.problems = append(v.problems, fmt.Sprintf("version %d publishes %d servers %v (floor %d)", ep.Version, len(ep.Servers), ep.Names(), v.floor))
	}
	if n := len(v.seen); n > 0 {
		last := v.seen[n-1]
		switch {
		case ep.Version == last.Version && text != v.texts[n-1]:
			v.problems = append(v.problems, fmt.Sprintf("version %d reused for other content: %s%v then %s%v", ep.Version, last.Phase, last.Names(), ep.Phase, ep.Names()))
		case ep.Version == last.Version:
			return
		case ep.Version != last.Version+1:
			v.problems = append(v.problems, fmt.Sprintf("version %d follows %d", ep.Version, last.Version))
		}
	}
	v.seen = append(v.seen, ep)
	v.texts = append(v.texts, text)
}

// last is the newest version seen (ok false before the first).
func (v *versionLog) last() (endpoints, bool) {
	v.mu.Lock()
	defer v.mu.Unlock()
	if len(v.seen) == 0 {
		return endpoints{}, false
	}
	return v.seen[len(v.seen)-1], true
}

func (v *versionLog) check(t *testing.T) {
	t.Helper()
	v.mu.Lock()
	defer v.mu.Unlock()
	for _, p := range v.problems {
		t.Errorf("published versions: %s", p)
	}
	var phases []string
	for i, ep := range v.seen {
		phases = append(phases, fmt.Sprintf("%d:%s%v", ep.Version, ep.Phase, ep.Names()))
		if i > 0 && ep.Phase == v.seen[i-1].Phase && slices.Equal(ep.Names(), v.seen[i-1].Names()) {
			t.Logf("version %d has the servers of version %d; what changed:\n%s\n%s", ep.Version, ep.Version-1, v.texts[i-1], v.texts[i])
		}
	}
	t.Logf("published versions seen (%d relists of the test's own watch): %s", v.relists, strings.Join(phases, " "))
}

// followVersions starts a versionLog on the ConfigMap `name`; it runs until the test ends.
func (e *env) followVersions(name string) *versionLog {
	e.t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	e.t.Cleanup(func() { cancel(); <-done })
	v := &versionLog{}
	cms := e.kube.CoreV1().ConfigMaps(e.ns)
	sel := "metadata.name=" + name
	go func() {
		defer close(done)
		rv := ""
		for ctx.Err() == nil {
			if rv == "" {
				list, err := cms.List(ctx, metav1.ListOptions{FieldSelector: sel})
				if err != nil {
					time.Sleep(100 * time.Millisecond)
					continue
				}
				for _, cm := range list.Items {
					v.record(cm.Data["endpoints.json"])
				}
				rv = list.ResourceVersion
			}
			w, err := cms.Watch(ctx, metav1.ListOptions{FieldSelector: sel, ResourceVersion: rv, AllowWatchBookmarks: true})
			if err != nil {
				if apierrors.IsResourceExpired(err) || apierrors.IsGone(err) {
					rv = ""
					v.mu.Lock()
					v.relists++
					v.mu.Unlock()
				}
				time.Sleep(100 * time.Millisecond)
				continue
			}
			rv = v.consume(w, rv)
		}
	}()
	// The first version, before the test goes on.
	framework.WaitFor(e.t, 60*time.Second, "the test's watch of "+name, func() (bool, error) {
		_, ok := v.last()
		return ok, nil
	})
	return v
}

// consume reads one watch until it ends; it returns the resourceVersion to watch from next
// ("" to list again).
func (v *versionLog) consume(w watch.Interface, rv string) string {
	defer w.Stop()
	for ev := range w.ResultChan() {
		switch ev.Type {
		case watch.Error:
			if st := apierrors.FromObject(ev.Object); apierrors.IsResourceExpired(st) || apierrors.IsGone(st) {
				v.mu.Lock()
				v.relists++
				v.mu.Unlock()
				return ""
			}
			return rv
		case watch.Added, watch.Modified, watch.Bookmark:
			cm, ok := ev.Object.(*corev1.ConfigMap)
			if !ok {
				continue
			}
			rv = cm.ResourceVersion
			if ev.Type != watch.Bookmark {
				v.record(cm.Data["endpoints.json"])
			}
		case watch.Deleted:
			if cm, ok := ev.Object.(*corev1.ConfigMap); ok {
				rv = cm.ResourceVersion
			}
		}
	}
	return rv
}

// outageFigures is what one API server outage cost the operator.
type outageFigures struct {
	cpuSeconds float64
	seconds    float64
	logLines   []string
	back       time.Time // when the API server answered /readyz again
}

func (f outageFigures) cpuPercent() float64 { return 100 * f.cpuSeconds / f.seconds }

// apiOutage stops the shared API server for d, watching the operator: it must stay up for the
// whole outage. The API server is started again in any case, even if the test fails meanwhile.
func (e *env) apiOutage(op *operatorProc, d time.Duration) outageFigures {
	e.t.Helper()
	e.t.Cleanup(func() { _, _ = framework.ClusterCmd(e.t, "fault", "apiserver-start") })
	logBefore := len(op.logText())
	if out, err := framework.ClusterCmd(e.t, "fault", "apiserver-stop"); err != nil {
		e.t.Fatalf("fault apiserver-stop: %v\n%s", err, out)
	}
	cpu0, t0 := procCPUSeconds(e.t, op.pid()), time.Now()
	for time.Since(t0) < d {
		if !op.running() {
			_, _ = framework.ClusterCmd(e.t, "fault", "apiserver-start")
			e.t.Fatalf("the operator exited %s into the API server outage (exit code %d)", time.Since(t0).Round(time.Second), op.exitCode())
		}
		time.Sleep(time.Second)
	}
	f := outageFigures{cpuSeconds: procCPUSeconds(e.t, op.pid()) - cpu0, seconds: time.Since(t0).Seconds()}
	text := op.logText()
	if tail := strings.TrimSpace(text[logBefore:]); tail != "" {
		f.logLines = strings.Split(tail, "\n")
	}
	if out, err := framework.ClusterCmd(e.t, "fault", "apiserver-start"); err != nil {
		e.t.Fatalf("fault apiserver-start: %v\n%s", err, out)
	}
	f.back = time.Now()
	return f
}

// checkOutage asserts what an outage must not do to the operator, and logs its figures.
func checkOutage(t *testing.T, name string, op *operatorProc, f outageFigures) {
	t.Helper()
	t.Logf("figure: API server stopped %.0f s (%s): operator CPU %.2f s = %.1f%% of one core; %d log lines",
		f.seconds, name, f.cpuSeconds, f.cpuPercent(), len(f.logLines))
	// A spin: a retry loop without a wait burns a core while the API server is away.
	if f.cpuPercent() >= 20 {
		t.Errorf("%s: the operator used %.1f%% of a core while the API server was down (a busy retry loop)", name, f.cpuPercent())
	}
	// Bounded: retries back off, so a minute costs tens of lines, not one per attempt in a loop.
	if len(f.logLines) > 300 {
		t.Errorf("%s: %d log lines during a %.0f s outage", name, len(f.logLines), f.seconds)
	}
	// Clear: the lines say which request failed and that it is retried (the informers' "list
	// failed"/"watch restarted ... reason=error" and the reconcile's "failed" lines).
	names, retries := 0, 0
	for _, l := range f.logLines {
		low := strings.ToLower(l)
		if strings.Contains(low, "connect") || strings.Contains(low, "refused") || strings.Contains(low, "api server") {
			names++
		}
		if strings.Contains(low, "retry") || strings.Contains(low, "restarted") || strings.Contains(low, "backoff") || strings.Contains(low, "requeue") {
			retries++
		}
	}
	if len(f.logLines) == 0 || names == 0 || retries == 0 {
		t.Errorf("%s: the log during the outage does not say the API server is unreachable and retried (%d lines naming it, %d saying retry):\n%s",
			name, names, retries, strings.Join(f.logLines, "\n"))
	} else {
		show := f.logLines
		if len(show) > 12 {
			show = show[:12]
		}
		t.Logf("%s: log during the outage (first %d of %d lines):\n%s", name, len(show), len(f.logLines), strings.Join(show, "\n"))
	}
	if !op.running() {
		t.Errorf("%s: the operator exited", name)
	}
}

func (e *env) patchSpec(name, patch string) {
	e.t.Helper()
	if _, err := e.dyn.Resource(mccGVR).Namespace(e.ns).Patch(context.Background(), name, types.MergePatchType, []byte(patch), metav1.PatchOptions{}); err != nil {
		e.t.Fatalf("patching %s with %s: %v", name, patch, err)
	}
}

// waitObserved waits until status.observedGeneration catches up with the spec's generation.
func (e *env) waitObserved(name string, timeout time.Duration) {
	e.t.Helper()
	e.waitFor(timeout, name+" status.observedGeneration current", func() (bool, error) {
		u := e.mcc(name)
		s := statusOf(u)
		return s.ObservedGeneration == u.GetGeneration(), fmt.Errorf("observedGeneration %d, generation %d", s.ObservedGeneration, u.GetGeneration())
	})
}

const outage = 60 * time.Second

// The API server stopped for 60 s three times, under an operator of its own each: in steady
// state, mid drain, mid Warm transition. Fails if the operator exits, uses 20% of a core or
// more while the API server is away, logs more than 300 lines or nothing that says what is
// wrong, publishes a list emptied or shorter than the floor or a version that is not the last
// one plus one, deletes the draining member while clients are still connected, or never
// converges (the drain or transition finished, a spec change made after the return acted upon).
// Not parallel: it stops the API server every test uses.
func TestReliabilityAPIServerOutage(t *testing.T) {
	t.Run("SteadyState", testOutageSteadyState)
	t.Run("MidDrain", testOutageMidDrain)
	t.Run("MidWarmTransition", testOutageMidWarmTransition)
}

func testOutageSteadyState(t *testing.T) {
	e := newEnv(t)
	op := e.startOperator()
	e.createCluster(clusterName, "  replicas: 2\n  drain:\n    minSeconds: 1\n    timeoutSeconds: 30\n")
	e.waitAvailable(clusterName, 120*time.Second)
	e.waitServers(2, 60*time.Second)
	versions := e.followVersions(cmName)
	versions.setFloor(2)
	before, _ := versions.last()

	f := e.apiOutage(op, outage)
	checkOutage(t, "steady state", op, f)

	// Back: a spec change made now is acted upon (a third member published).
	e.patchSpec(clusterName, `{"spec":{"replicas":3}}`)
	e.waitFor(180*time.Second, "3 servers published after the API server returned", func() (bool, error) {
		ep, _ := versions.last()
		return len(ep.Servers) == 3, fmt.Errorf("published %v", ep.Names())
	})
	e.waitAvailable(clusterName, 120*time.Second)
	e.waitObserved(clusterName, 60*time.Second)
	after, _ := versions.last()
	t.Logf("figure: steady state: API server back -> scale-up made after the return published and status current in %.1f s (versions %d -> %d)",
		time.Since(f.back).Seconds(), before.Version, after.Version)
	// No exact count: after a minute without heartbeats the node lifecycle controller marks the
	// node and its pods NotReady until the kubelet reports again, and the operator publishes
	// that (a member "unready", then "active" again) under versions of their own.
	versions.check(t)
}

func testOutageMidDrain(t *testing.T) {
	e := newEnv(t)
	op := e.startOperator()
	e.createCluster(clusterName, "  replicas: 3\n  drain:\n    minSeconds: 1\n    timeoutSeconds: 900\n")
	e.waitAvailable(clusterName, 120*time.Second)
	e.waitServers(3, 90*time.Second)
	versions := e.followVersions(cmName)
	ep, _ := versions.last()
	outgoing := ep.Servers[2]
	conns := holdConnections(t, fmt.Sprintf("%s:%d", outgoing.Address, outgoing.Port), 2)
	defer closeAll(conns)
	e.kubectlOK("scale", "mcc/"+clusterName, "--replicas=2")
	e.waitFor(60*time.Second, "cache-2 unpublished (the drain started)", func() (bool, error) {
		ep, _ := versions.last()
		return len(ep.Servers) == 2, fmt.Errorf("published %v", ep.Names())
	})
	// From here on the list holds the two staying members, through the outage and after it.
	versions.setFloor(2)
	drainVersion, _ := versions.last()
	var publishedAt string
	e.waitFor(30*time.Second, "status.drain.publishedAt", func() (bool, error) {
		s := statusOf(e.mcc(clusterName))
		if s.Drain != nil {
			publishedAt = s.Drain.PublishedAt
		}
		return publishedAt != "", fmt.Errorf("drain %+v", s.Drain)
	})

	f := e.apiOutage(op, outage)
	checkOutage(t, "mid drain", op, f)

	// Back, with the clients still connected: the drain goes on waiting, from where it was.
	time.Sleep(10 * time.Second)
	if p, ok := e.pod("cache-2"); !ok || p.DeletionTimestamp != nil {
		t.Fatalf("cache-2 deleted after the outage while its clients are still connected")
	}
	if r := e.stsReplicas(clusterName); r != 3 {
		t.Errorf("StatefulSet replicas %d after the outage with the drain still waiting, want 3", r)
	}
	if s := statusOf(e.mcc(clusterName)); s.Drain == nil || s.Drain.PublishedAt != publishedAt {
		t.Errorf("status.drain after the outage %+v, want the drain published at %s", s.Drain, publishedAt)
	}
	closeAll(conns)
	closed := time.Now()
	e.waitFor(180*time.Second, "the drain finished (StatefulSet at 2, status.drain cleared)", func() (bool, error) {
		s := statusOf(e.mcc(clusterName))
		return e.stsReplicas(clusterName) == 2 && s.Drain == nil, fmt.Errorf("replicas %d, drain %+v", e.stsReplicas(clusterName), s.Drain)
	})
	finished := time.Now()
	e.patchSpec(clusterName, `{"spec":{"replicas":3}}`)
	e.waitFor(180*time.Second, "3 servers published after the drain", func() (bool, error) {
		ep, _ := versions.last()
		return len(ep.Servers) == 3, fmt.Errorf("published %v", ep.Names())
	})
	e.waitObserved(clusterName, 60*time.Second)
	t.Logf("figure: mid drain: clients closed %.1f s after the API server was back -> drain finished in %.1f s; scale-up made then published in %.1f s",
		closed.Sub(f.back).Seconds(), finished.Sub(closed).Seconds(), time.Since(finished).Seconds())
	after, _ := versions.last()
	t.Logf("versions %d -> %d across the outage, the drain's end and a scale-up", drainVersion.Version, after.Version)
	versions.check(t)
}

func testOutageMidWarmTransition(t *testing.T) {
	e := newEnv(t)
	op := e.startOperator()
	e.createCluster(clusterName, "  replicas: 2\n  drain:\n    minSeconds: 1\n    timeoutSeconds: 60\n"+
		"  transition:\n    mode: Warm\n    propagationSeconds: 15\n    windowSeconds: 10\n")
	e.waitAvailable(clusterName, 120*time.Second)
	e.waitStable(2, 120*time.Second)
	versions := e.followVersions(cmName)
	versions.setFloor(2)
	start, _ := versions.last()
	e.kubectlOK("scale", "mcc/"+clusterName, "--replicas=3")
	e.waitFor(120*time.Second, "the Warm transition's prepare phase published", func() (bool, error) {
		ep, _ := versions.last()
		return ep.Phase == "prepare", fmt.Errorf("published %s%v", ep.Phase, ep.Names())
	})
	inPhase, _ := versions.last()

	f := e.apiOutage(op, outage)
	checkOutage(t, "mid Warm transition ("+inPhase.Phase+")", op, f)

	e.waitFor(240*time.Second, "the transition finished (stable ring of 3, status.transition cleared)", func() (bool, error) {
		ep, _ := versions.last()
		st, _ := e.mcc(clusterName).Object["status"].(map[string]any)
		return len(ep.Servers) == 3 && ep.Phase == "" && st["transition"] == nil, fmt.Errorf("published %s%v", ep.Phase, ep.Names())
	})
	finished := time.Now()
	e.patchSpec(clusterName, `{"spec":{"drain":{"timeoutSeconds":61}}}`)
	e.waitObserved(clusterName, 60*time.Second)
	t.Logf("figure: mid Warm transition (%s): API server back -> transition finished in %.1f s; spec change made then observed in %.1f s",
		inPhase.Phase, finished.Sub(f.back).Seconds(), time.Since(finished).Seconds())
	// The phases in order, each at least once (a member's readiness changing within a phase
	// publishes that phase again under the next version). "copy" may be missing: when the
	// copy is already done by the time its phase could be recorded (it ran in a pass whose
	// status write failed during the outage), the operator goes from prepare to switch in one
	// pass; clients behave the same in prepare and copy, so nothing is lost.
	var phases []string
	versions.mu.Lock()
	for _, ep := range versions.seen {
		ph := ep.Phase
		if ph == "" {
			ph = "stable"
		}
		if ep.Version > start.Version && (len(phases) == 0 || phases[len(phases)-1] != ph) {
			phases = append(phases, ph)
		}
	}
	versions.mu.Unlock()
	want := []string{"prepare", "copy", "switch", "finalize", "stable"}
	if !slices.Equal(phases, want) && !slices.Equal(phases, slices.Delete(slices.Clone(want), 1, 2)) {
		t.Errorf("phases published across the outage: %v, want %v (copy optional)", phases, want)
	}
	versions.check(t)
}

// tcpGate sits between an operator and its apiProxy at the TCP level, so a test can cut the
// operator off the way a network partition does: every open connection is closed at once and
// new ones are refused (accepted and closed) until restore. The API server and every other
// client keep working. Safe for concurrent use.
type tcpGate struct {
	kubeconfig string // the apiProxy's kubeconfig, with the gate's address as the server

	mu    sync.Mutex
	open  bool                  // guarded by mu
	conns map[net.Conn]struct{} // both ends of every proxied connection; guarded by mu
}

func newTCPGate(t *testing.T, px *apiProxy) *tcpGate {
	t.Helper()
	b, err := os.ReadFile(px.kubeconfig)
	if err != nil {
		t.Fatal(err)
	}
	text := string(b)
	i := strings.Index(text, "server: https://")
	if i < 0 {
		t.Fatalf("no server in %s", px.kubeconfig)
	}
	line := text[i+len("server: https://"):]
	target := line[:strings.IndexByte(line, '\n')]
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	g := &tcpGate{open: true, conns: map[net.Conn]struct{}{}}
	// The proxy's certificate names 127.0.0.1, so the gate's address verifies as well.
	g.kubeconfig = filepath.Join(t.TempDir(), "gate.kubeconfig")
	if err := os.WriteFile(g.kubeconfig, []byte(strings.Replace(text, "https://"+target, "https://"+ln.Addr().String(), 1)), 0o600); err != nil {
		t.Fatal(err)
	}
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go g.serve(c, target)
		}
	}()
	return g
}

func (g *tcpGate) serve(c net.Conn, target string) {
	g.mu.Lock()
	open := g.open
	g.mu.Unlock()
	if !open {
		c.Close()
		return
	}
	up, err := net.Dial("tcp", target)
	if err != nil {
		c.Close()
		return
	}
	g.mu.Lock()
	if !g.open {
		g.mu.Unlock()
		c.Close()
		up.Close()
		return
	}
	g.conns[c], g.conns[up] = struct{}{}, struct{}{}
	g.mu.Unlock()
	done := make(chan struct{}, 2)
	go func() { _, _ = io.Copy(up, c); done <- struct{}{} }()
	go func() { _, _ = io.Copy(c, up); done <- struct{}{} }()
	<-done
	c.Close()
	up.Close()
	g.mu.Lock()
	delete(g.conns, c)
	delete(g.conns, up)
	g.mu.Unlock()
}

// cut closes every connection through the gate and refuses new ones.
func (g *tcpGate) cut() time.Time {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.open = false
	for c := range g.conns {
		c.Close()
	}
	return time.Now()
}

func (g *tcpGate) restore() time.Time {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.open = true
	return time.Now()
}

// A deletion that happened while the operator was cut off is acted upon after its informers
// had to relist. The operator (through an apiProxy, behind a tcpGate) is cut off; meanwhile
// the endpoints ConfigMap and the client Service are deleted and the spec scaled 2 -> 3; the
// API server is restarted, so its watch cache starts over and every resourceVersion the
// operator holds is too old (410 Gone: an etcd compaction alone does not do it, the watch cache
// still serves the old versions). Reconnected, the operator must relist (seen by the proxy as a
// LIST of configmaps after the return, and "reason=gone" in its log), recreate the ConfigMap
// and the Service, and publish the third member under exactly the next version. Fails if any
// of that is missing. Not parallel: it restarts the API server.
func TestReliabilityWatchExpiry(t *testing.T) {
	e := newEnv(t)
	px := newAPIProxy(t)
	gate := newTCPGate(t, px)
	op := e.startOperatorWith(gate.kubeconfig)
	e.createCluster(clusterName, "  replicas: 2\n  drain:\n    minSeconds: 1\n    timeoutSeconds: 30\n")
	e.waitAvailable(clusterName, 120*time.Second)
	e.waitServers(2, 60*time.Second)
	versions := e.followVersions(cmName)
	before, _ := versions.last()
	st := statusOf(e.mcc(clusterName))
	ctx := context.Background()

	cutAt := gate.cut()
	time.Sleep(2 * time.Second) // the operator notices: its connections are gone
	if err := e.kube.CoreV1().ConfigMaps(e.ns).Delete(ctx, cmName, metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	if err := e.kube.CoreV1().Services(e.ns).Delete(ctx, clusterName+"-client", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	e.patchSpec(clusterName, `{"spec":{"replicas":3}}`)
	t.Cleanup(func() { _, _ = framework.ClusterCmd(t, "fault", "apiserver-start") })
	for _, verb := range []string{"apiserver-stop", "apiserver-start"} {
		if out, err := framework.ClusterCmd(t, "fault", verb); err != nil {
			t.Fatalf("fault %s: %v\n%s", verb, err, out)
		}
	}
	time.Sleep(3 * time.Second)
	restored := gate.restore()
	if !op.running() {
		t.Fatalf("the operator exited while cut off (exit code %d)", op.exitCode())
	}

	var recreated time.Time
	e.waitFor(180*time.Second, "the endpoints ConfigMap recreated with 3 servers", func() (bool, error) {
		ep, _, ok := e.endpointsOf(cmName)
		if ok && recreated.IsZero() {
			recreated = time.Now()
		}
		return ok && len(ep.Servers) == 3, fmt.Errorf("exists %v, published %v", ok, ep.Names())
	})
	e.waitFor(60*time.Second, "the client Service recreated", func() (bool, error) {
		_, err := e.kube.CoreV1().Services(e.ns).Get(ctx, clusterName+"-client", metav1.GetOptions{})
		return err == nil, err
	})
	e.waitAvailable(clusterName, 120*time.Second)
	e.waitObserved(clusterName, 60*time.Second)
	converged := time.Now()

	// Two changes at most: the deleted ConfigMap is recreated under the next version (the
	// operator keeps only the version, not the content it published, so it cannot prove the
	// list unchanged; docs/configmap-contract.md), and the third member joins; both can come
	// in one version when the member is Ready by the time the ConfigMap is recreated.
	ep, _, _ := e.endpointsOf(cmName)
	if ep.Version <= before.Version || ep.Version > before.Version+2 || st.ConfigVersion != before.Version {
		t.Errorf("version %d after the ConfigMap's recreation and one scale-up from version %d (status.configVersion was %d)", ep.Version, before.Version, st.ConfigVersion)
	}
	if s := statusOf(e.mcc(clusterName)); s.ConfigVersion != ep.Version {
		t.Errorf("status.configVersion %d, ConfigMap version %d", s.ConfigVersion, ep.Version)
	}
	// The relist: a LIST of configmaps (not a watch) after the return, and the informer's word.
	// The ConfigMap may be repaired before its own informer is back (the cluster's informer
	// can reconnect first, and the repair applies the ConfigMap whatever the cache says): the
	// configmaps informer, still backing off, relists up to a minute later.
	lists := 0
	var watches []string
	e.waitFor(150*time.Second, "the configmaps informer's relist after its watch expired", func() (bool, error) {
		lists, watches = 0, nil
		for _, r := range px.requestsSince(restored) {
			if r.Method == "GET" && strings.HasSuffix(r.Path, "/namespaces/"+e.ns+"/configmaps") {
				if r.watch() {
					watches = append(watches, r.String())
				} else {
					lists++
				}
			}
		}
		gone := false
		for _, l := range strings.Split(op.logText(), "\n") {
			gone = gone || strings.Contains(l, "resource=configmaps ") && strings.Contains(l, "reason=gone")
		}
		return lists > 0 && gone, fmt.Errorf("%d lists, configmaps watch expired %v, watches %v", lists, gone, watches)
	})
	gone := strings.Count(op.logText(), "reason=gone")
	t.Logf("figure: watch expiry: cut off %.0f s (API server restarted meanwhile); after reconnecting: %d relists of configmaps, %d \"reason=gone\" log lines; ConfigMap recreated %.1f s and the scale-up converged %.1f s after the return",
		restored.Sub(cutAt).Seconds(), lists, gone, recreated.Sub(restored).Seconds(), converged.Sub(restored).Seconds())
	if lists == 0 {
		t.Errorf("no relist of configmaps after the operator reconnected (watches: %v)", watches)
	}
	if gone == 0 {
		t.Errorf("the operator's log has no \"reason=gone\": its watches never expired, so the test proved nothing")
	}
	versions.check(t)
}

// stormWriter is the second writer of a conflict storm: it rewrites one object's annotation
// "storm.e2e/n" in a loop with Update (read, change, write back at the resourceVersion read),
// so whoever else writes the object at an older resourceVersion gets a 409. It remembers the
// last value the API server accepted, which must still be there at the end (no lost update).
type stormWriter struct {
	what      string
	get       func(ctx context.Context) (metav1.Object, error)
	update    func(ctx context.Context, o metav1.Object) error
	accepted  int // updates the API server took
	conflicts int // its own 409s
	last      string
	// Values sent after `last` whose answer was lost (a timeout): the API server may have
	// taken any of them, so each is as good as `last` at the end.
	unknown []string
}

func (w *stormWriter) run(stop context.Context, done chan<- struct{}) {
	defer func() { done <- struct{}{} }()
	for n := 1; stop.Err() == nil; n++ {
		// Requests are not cancelled by the end of the storm, so every answer is known but for
		// a timeout.
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		o, err := w.get(ctx)
		if err == nil {
			a := o.GetAnnotations()
			if a == nil {
				a = map[string]string{}
			}
			a["storm.e2e/n"] = strconv.Itoa(n)
			o.SetAnnotations(a)
			err = w.update(ctx, o)
			switch {
			case err == nil:
				w.accepted++
				w.last = strconv.Itoa(n)
				w.unknown = nil
			case apierrors.IsConflict(err):
				w.conflicts++
			case !apierrors.IsInvalid(err) && !apierrors.IsNotFound(err):
				w.unknown = append(w.unknown, strconv.Itoa(n))
			}
		}
		cancel()
		time.Sleep(2 * time.Millisecond) // a tight loop, but not one that starves the API server
	}
}

// codes409 sums memcached_operator_api_requests_total{code="409"} by resource.
func codes409(t *testing.T, url string) map[string]float64 {
	out := map[string]float64{}
	for _, s := range samples(t, url, "memcached_operator_api_requests_total") {
		if s.labels["code"] == "409" {
			out[s.labels["resource"]] += s.value
		}
	}
	return out
}

func total(m map[string]float64) float64 {
	n := 0.0
	for _, v := range m {
		n += v
	}
	return n
}

// A second writer updates the MemcachedCluster, the StatefulSet and the endpoints ConfigMap
// (an annotation each, with Update, so writes at an older resourceVersion conflict) as fast as
// the API server takes it, while the spec goes 2 -> 3 -> 2. Fails if the operator does not
// converge to the last spec, loses the other writer's last annotation on any of the three,
// publishes a version that is not the last plus one, or makes more than 50 requests a second
// during the storm (retrying conflicts without backing off). The 409s it got are logged.
func TestReliabilityConflictStorm(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	port := freePort(t)
	op := e.startOperator(fmt.Sprintf("--metrics-bind-address=127.0.0.1:%d", port))
	metricsURL := fmt.Sprintf("http://127.0.0.1:%d/metrics", port)
	e.createCluster(clusterName, "  replicas: 2\n  drain:\n    minSeconds: 1\n    timeoutSeconds: 30\n")
	e.waitAvailable(clusterName, 120*time.Second)
	e.waitServers(2, 60*time.Second)
	versions := e.followVersions(cmName)
	versions.setFloor(2)
	before, _ := versions.last()

	// The storm's own clients, without the shared clients' 50 requests/s limit.
	cfg := framework.Config(t)
	cfg.QPS, cfg.Burst = 300, 300
	dyn, kube := dynamic.NewForConfigOrDie(cfg), kubernetes.NewForConfigOrDie(cfg)
	mccs := dyn.Resource(mccGVR).Namespace(e.ns)
	stss := kube.AppsV1().StatefulSets(e.ns)
	cms := kube.CoreV1().ConfigMaps(e.ns)
	writers := []*stormWriter{
		{what: "MemcachedCluster",
			get: func(ctx context.Context) (metav1.Object, error) {
				return mccs.Get(ctx, clusterName, metav1.GetOptions{})
			},
			update: func(ctx context.Context, o metav1.Object) error {
				_, err := mccs.Update(ctx, o.(*unstructured.Unstructured), metav1.UpdateOptions{})
				return err
			}},
		{what: "StatefulSet",
			get: func(ctx context.Context) (metav1.Object, error) {
				return stss.Get(ctx, clusterName, metav1.GetOptions{})
			},
			update: func(ctx context.Context, o metav1.Object) error {
				_, err := stss.Update(ctx, o.(*appsv1.StatefulSet), metav1.UpdateOptions{})
				return err
			}},
		{what: "ConfigMap",
			get: func(ctx context.Context) (metav1.Object, error) { return cms.Get(ctx, cmName, metav1.GetOptions{}) },
			update: func(ctx context.Context, o metav1.Object) error {
				_, err := cms.Update(ctx, o.(*corev1.ConfigMap), metav1.UpdateOptions{})
				return err
			}},
	}
	reqs0, c0 := apiRequests(t, metricsURL), codes409(t, metricsURL)
	ctx, stop := context.WithCancel(context.Background())
	defer stop()
	done := make(chan struct{}, len(writers))
	stormStart := time.Now()
	for _, w := range writers {
		go w.run(ctx, done)
	}
	time.Sleep(5 * time.Second)

	e.patchSpec(clusterName, `{"spec":{"replicas":3}}`)
	e.waitFor(240*time.Second, "3 servers published during the storm", func() (bool, error) {
		if !op.running() {
			return false, fmt.Errorf("the operator exited")
		}
		ep, _ := versions.last()
		return len(ep.Servers) == 3, fmt.Errorf("published %v", ep.Names())
	})
	up := time.Since(stormStart)
	e.patchSpec(clusterName, `{"spec":{"replicas":2}}`)
	e.waitFor(240*time.Second, "back to 2 during the storm (published, StatefulSet lowered, drain done)", func() (bool, error) {
		ep, _ := versions.last()
		s := statusOf(e.mcc(clusterName))
		return len(ep.Servers) == 2 && e.stsReplicas(clusterName) == 2 && s.Drain == nil,
			fmt.Errorf("published %v, StatefulSet %d, drain %+v", ep.Names(), e.stsReplicas(clusterName), s.Drain)
	})
	// The storm goes on a while after the last spec change was deployed: the operator must
	// stay converged and quiet under it, not keep rewriting.
	for time.Since(stormStart) < 45*time.Second {
		time.Sleep(time.Second)
	}
	stop()
	for range writers {
		<-done
	}
	storm := time.Since(stormStart)
	reqs1, c1 := apiRequests(t, metricsURL), codes409(t, metricsURL)

	// Converged to the last spec, with the other writer's last word kept everywhere.
	e.waitAvailable(clusterName, 120*time.Second)
	e.waitObserved(clusterName, 60*time.Second)
	s := statusOf(e.mcc(clusterName))
	if s.Replicas != 2 || e.stsReplicas(clusterName) != 2 {
		t.Errorf("after the storm: status.replicas %d, StatefulSet replicas %d; want 2", s.Replicas, e.stsReplicas(clusterName))
	}
	for _, w := range writers {
		o, err := w.get(context.Background())
		if err != nil {
			t.Fatalf("%s: %v", w.what, err)
		}
		if got := o.GetAnnotations()["storm.e2e/n"]; got != w.last && !slices.Contains(w.unknown, got) {
			t.Errorf("%s: annotation storm.e2e/n = %q, want %q (the other writer's last accepted update was lost; unanswered after it: %v)", w.what, got, w.last, w.unknown)
		}
		t.Logf("figure: storm writer on the %s: %d updates accepted, %d conflicts (%.0f/s)", w.what, w.accepted, w.conflicts, float64(w.accepted)/storm.Seconds())
	}
	n := total(reqs1) - total(reqs0)
	rate := n / storm.Seconds()
	conflicts := map[string]float64{}
	for r, v := range c1 {
		if d := v - c0[r]; d > 0 {
			conflicts[r] = d
		}
	}
	t.Logf("figure: conflict storm %.0f s (2 -> 3 published after %.0f s, back to 2 after): the operator's requests %.0f (%.1f/s; writes %.0f), its 409s %v",
		storm.Seconds(), up.Seconds(), n, rate, writes(reqs1)-writes(reqs0), conflicts)
	if rate > 50 {
		t.Errorf("the operator made %.1f requests/s during the storm: conflicts are retried without backing off", rate)
	}
	if after, _ := versions.last(); after.Version != before.Version+2 {
		t.Errorf("version %d after 2 -> 3 -> 2 from version %d, want %d", after.Version, before.Version, before.Version+2)
	}
	versions.check(t)
	if !op.running() {
		t.Errorf("the operator exited")
	}
}
