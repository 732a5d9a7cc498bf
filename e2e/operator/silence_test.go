//go:build reliability

// Steady state is silent: an operator that rewrites objects when nothing changed (the hot loop
// most reported against operators) is caught here by the API server's own audit log, which
// e2e/cluster always writes (every completed write request, any verb, events included). The
// operator is told apart by its User-Agent (memcached-operator/<version>) and the test's
// namespace, so the operators of other tests running alongside do not count.
package operator

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/watch"

	"memcached-operator/e2e/framework"
)

// auditEvent is an audit log line (framework.ReadAuditLog).
type auditEvent = framework.AuditEvent

// auditLogPath is the running cluster's audit log (e2e/cluster env exports it).
func auditLogPath(t *testing.T) string {
	t.Helper()
	p := os.Getenv("MCOP_E2E_AUDIT_LOG")
	if p == "" && os.Getenv("MCOP_E2E_STATE") != "" {
		p = filepath.Join(os.Getenv("MCOP_E2E_STATE"), "logs", "kube-apiserver-audit.log")
	}
	if _, err := os.Stat(p); p == "" || err != nil {
		t.Fatalf("no API server audit log (%q): run through e2e/run-tests, whose cluster writes one", p)
	}
	return p
}

// auditWrites returns the audit log's write requests received at or after `since` that match
// keep, oldest first; it reads the rotated backups too, so a rotation loses nothing. Only the
// lines holding the operator's User-Agent are decoded: the log grows to tens of megabytes.
func auditWrites(t *testing.T, since time.Time, keep func(auditEvent) bool) []auditEvent {
	t.Helper()
	var out []auditEvent
	framework.ReadAuditLog(auditLogPath(t), "memcached-operator/", func(a auditEvent) {
		if !a.Received.Before(since) && keep(a) {
			out = append(out, a)
		}
	})
	sort.Slice(out, func(i, j int) bool { return out[i].Received.Before(out[j].Received) })
	return out
}

// operatorWrites is keep for the writes of an operator (of any test) in this test's namespace.
func (e *env) operatorWrites(a auditEvent) bool {
	return strings.HasPrefix(a.UserAgent, "memcached-operator/") && a.ObjectRef.Namespace == e.ns
}

func listed(ws []auditEvent, max int) string {
	var b strings.Builder
	for i, w := range ws {
		if i == max {
			fmt.Fprintf(&b, "\n  ... %d more", len(ws)-max)
			break
		}
		b.WriteString("\n  " + w.String())
	}
	return b.String()
}

// byReason counts writes by verb, resource and subresource.
func byReason(ws []auditEvent) map[string]int {
	out := map[string]int{}
	for _, w := range ws {
		what := w.ObjectRef.Resource
		if w.ObjectRef.Subresource != "" {
			what += "/" + w.ObjectRef.Subresource
		}
		out[w.Verb+" "+what]++
	}
	return out
}

func pidFile(t *testing.T, component string) int {
	b, err := os.ReadFile(filepath.Join(os.Getenv("MCOP_E2E_STATE"), "run", component+".pid"))
	if err != nil {
		return 0
	}
	var pid int
	fmt.Sscan(strings.TrimSpace(string(b)), &pid)
	return pid
}

// statusChanges records every change of one MemcachedCluster's status a watch delivers, with
// what changed (the status fields, conditions by type), so that each status write in the audit
// log can be matched with the change that explains it. Safe for concurrent use.
type statusChanges struct {
	mu      sync.Mutex
	changes []statusChange
}

type statusChange struct {
	at      time.Time
	changed []string
}

func (e *env) watchStatus(name string) *statusChanges {
	e.t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	e.t.Cleanup(cancel)
	w, err := e.dyn.Resource(mccGVR).Namespace(e.ns).Watch(ctx, metav1.ListOptions{FieldSelector: "metadata.name=" + name})
	if err != nil {
		e.t.Fatalf("watch %s: %v", name, err)
	}
	sc := &statusChanges{}
	go func() {
		defer w.Stop()
		var last map[string]any
		for ev := range w.ResultChan() {
			u, ok := ev.Object.(*unstructured.Unstructured)
			if !ok || ev.Type != watch.Added && ev.Type != watch.Modified {
				continue
			}
			st, _ := u.Object["status"].(map[string]any)
			if last != nil {
				if changed := statusDiff(last, st); len(changed) > 0 {
					sc.mu.Lock()
					sc.changes = append(sc.changes, statusChange{time.Now(), changed})
					sc.mu.Unlock()
				}
			}
			last = st
		}
	}()
	return sc
}

// statusDiff names what differs between two statuses: top-level fields, conditions by type.
func statusDiff(a, b map[string]any) []string {
	var out []string
	conds := func(m map[string]any) map[string]string {
		out := map[string]string{}
		list, _ := m["conditions"].([]any)
		for _, c := range list {
			cm, _ := c.(map[string]any)
			t, _ := cm["type"].(string)
			j, _ := json.Marshal(cm)
			out[t] = string(j)
		}
		return out
	}
	ca, cb := conds(a), conds(b)
	for t := range ca {
		if ca[t] != cb[t] {
			out = append(out, "condition "+t)
		}
	}
	for t := range cb {
		if _, ok := ca[t]; !ok {
			out = append(out, "condition "+t)
		}
	}
	keys := map[string]bool{}
	for k := range a {
		keys[k] = true
	}
	for k := range b {
		keys[k] = true
	}
	for k := range keys {
		if k == "conditions" {
			continue
		}
		ja, _ := json.Marshal(a[k])
		jb, _ := json.Marshal(b[k])
		if string(ja) != string(jb) {
			out = append(out, k)
		}
	}
	sort.Strings(out)
	return out
}

func (sc *statusChanges) since(t time.Time) []statusChange {
	sc.mu.Lock()
	defer sc.mu.Unlock()
	var out []statusChange
	for _, c := range sc.changes {
		if !c.at.Before(t) {
			out = append(out, c)
		}
	}
	return out
}

// explainStatusWrites checks that every status write the audit log shows for `name` since
// `since` changed the status (a write that changes nothing is wasted, and in a loop it is the
// hot loop this test looks for), and logs each with what it changed.
func (e *env) explainStatusWrites(name, what string, since time.Time, ws []auditEvent, sc *statusChanges) {
	e.t.Helper()
	n := 0
	for _, w := range ws {
		if w.Verb == "update" && w.ObjectRef.Subresource == "status" && w.ObjectRef.Name == name && w.ResponseStatus.Code == 200 {
			n++
		}
	}
	changes := sc.since(since)
	var b strings.Builder
	for _, c := range changes {
		fmt.Fprintf(&b, "\n  %s status: %s", c.at.Format("15:04:05.000"), strings.Join(c.changed, ", "))
	}
	e.t.Logf("%s: %d status writes of %s, %d status changes seen:%s", what, n, name, len(changes), b.String())
	if n > len(changes) {
		e.t.Errorf("%s: %d status writes of %s but only %d changes of its status: %d writes changed nothing", what, n, name, len(changes), n-len(changes))
	}
}

// readinessFlips records every change of a pod's Ready condition in the namespace, the one
// thing that may make a quiet operator write (it publishes a member's readiness). Safe for
// concurrent use.
type readinessFlips struct {
	mu    sync.Mutex
	flips []string // "15:04:05.000 pod ready=false"
	pods  map[string]time.Time
}

func (e *env) watchReadiness() *readinessFlips {
	e.t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	e.t.Cleanup(cancel)
	w, err := e.kube.CoreV1().Pods(e.ns).Watch(ctx, metav1.ListOptions{})
	if err != nil {
		e.t.Fatalf("watch pods: %v", err)
	}
	rf := &readinessFlips{pods: map[string]time.Time{}}
	go func() {
		defer w.Stop()
		ready := map[string]bool{}
		for ev := range w.ResultChan() {
			p, ok := ev.Object.(*corev1.Pod)
			if !ok {
				continue
			}
			r := ev.Type != watch.Deleted && framework.PodReady(p)
			if was, seen := ready[p.Name]; seen && was == r {
				continue
			} else if seen || ev.Type != watch.Added {
				rf.mu.Lock()
				rf.flips = append(rf.flips, fmt.Sprintf("%s %s ready=%v", time.Now().Format("15:04:05.000"), p.Name, r))
				rf.pods[p.Name] = time.Now()
				rf.mu.Unlock()
			}
			ready[p.Name] = r
		}
	}()
	return rf
}

// clusterFlipped says whether a pod of cluster `c` (pods are "<cluster>-<ordinal>") changed
// readiness since t.
func (rf *readinessFlips) clusterFlipped(c string, t time.Time) bool {
	rf.mu.Lock()
	defer rf.mu.Unlock()
	for pod, at := range rf.pods {
		if strings.HasPrefix(pod, c+"-") && !at.Before(t) {
			return true
		}
	}
	return false
}

// clusterOf is the MemcachedCluster an operator write is about: the cluster itself, its
// StatefulSet and PDB ("cNN"), its ConfigMap and Services ("cNN-..."), its events ("cNN.<id>").
func clusterOf(a auditEvent) string {
	n := a.ObjectRef.Name
	if i := strings.IndexAny(n, "-."); i > 0 {
		return n[:i]
	}
	return n
}

const silentClusters = 50

// 50 MemcachedClusters, Available and quiet, then 10 minutes in which the operator writes
// nothing at all (any verb, any object, events included), counted from the audit log; then one
// cluster in a long drain (the outgoing member held by a client): 2 minutes of waiting without
// a write, and the drain's end written once the client leaves. Fails on any write in the quiet
// windows (listed with verb, object and answer), if the cluster never gets quiet, or if the
// audit log shows no write of the operator where there must be some (setup, the drain's end):
// the counter would be blind.
func TestReliabilitySteadyStateIsSilent(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	op := e.startOperator()
	setup := time.Now()
	var manifest strings.Builder
	for i := 0; i < silentClusters; i++ {
		fmt.Fprintf(&manifest, "---\napiVersion: memcached.operator.io/v1alpha1\nkind: MemcachedCluster\nmetadata:\n  name: c%02d\nspec:\n"+
			"  replicas: %d\n  memcached:\n    memoryMB: 8\n  drain:\n    minSeconds: 1\n    timeoutSeconds: 900\n", i, i%2+1)
	}
	if out, err := e.applyYAML(manifest.String()); err != nil {
		t.Fatalf("creating %d clusters: %v\n%s", silentClusters, err, out)
	}
	e.waitFor(15*time.Minute, fmt.Sprintf("%d clusters Available", silentClusters), func() (bool, error) {
		list, err := e.dyn.Resource(mccGVR).Namespace(e.ns).List(context.Background(), metav1.ListOptions{})
		if err != nil {
			return false, err
		}
		ready := 0
		for i := range list.Items {
			s := statusOf(&list.Items[i])
			if s.Phase == "Available" && s.ReadyReplicas == int64(s.Replicas) && s.ObservedGeneration == list.Items[i].GetGeneration() {
				ready++
			}
		}
		return ready == silentClusters, fmt.Errorf("%d of %d Available with every member ready", ready, silentClusters)
	})
	setupWrites := auditWrites(t, setup, e.operatorWrites)
	t.Logf("figure: %d clusters (%d members) Available in %.0f s; the operator's writes meanwhile: %d %v",
		silentClusters, silentClusters*3/2, time.Since(setup).Seconds(), len(setupWrites), byReason(setupWrites))
	if len(setupWrites) < silentClusters {
		t.Fatalf("the audit log shows %d writes of the operator for creating %d clusters: it does not see the operator", len(setupWrites), silentClusters)
	}

	// Quiet: no write for 30 s (a member's readiness settling can still cause one). Checked
	// 30 s after the last write seen, not in a poll loop: each check reads the whole log.
	var quietFrom time.Time
	for deadline := time.Now().Add(5 * time.Minute); ; {
		ws := auditWrites(t, time.Now().Add(-30*time.Second), e.operatorWrites)
		if len(ws) == 0 {
			quietFrom = time.Now()
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the operator never went 30 s without a write; %d writes in the last 30 s:%s", len(ws), listed(ws, 20))
		}
		time.Sleep(time.Until(ws[len(ws)-1].Received.Add(30*time.Second)) + time.Second)
	}

	const window = 10 * time.Minute
	flips := e.watchReadiness()
	kubelet := pidFile(t, "loopback-kubelet")
	opCPU0 := procCPUSeconds(t, op.pid())
	var kCPU0 float64
	if kubelet != 0 {
		kCPU0 = procCPUSeconds(t, kubelet)
	}
	time.Sleep(window)
	opCPU := procCPUSeconds(t, op.pid()) - opCPU0
	ws := auditWrites(t, quietFrom, e.operatorWrites)
	t.Logf("figure: %d clusters idle %s: %d writes by the operator; operator CPU %.1f s (%.2f%% of a core), VmRSS %d KiB",
		silentClusters, window, len(ws), opCPU, 100*opCPU/window.Seconds(), rssKiB(t, op.pid()))
	if kubelet != 0 {
		k := procCPUSeconds(t, kubelet) - kCPU0
		t.Logf("figure: the loopback kubelet meanwhile (probing %d memcached members): CPU %.1f s (%.1f%% of a core)",
			silentClusters*3/2, k, 100*k/window.Seconds())
	}
	// A write is explained only by a member of its cluster changing readiness meanwhile (on a
	// loaded machine a probe can time out); anything else is a write with no cause.
	var unexplained []auditEvent
	for _, w := range ws {
		if !flips.clusterFlipped(clusterOf(w), quietFrom) {
			unexplained = append(unexplained, w)
		}
	}
	flips.mu.Lock()
	t.Logf("pod readiness changes in the window: %d %v", len(flips.flips), flips.flips)
	flips.mu.Unlock()
	if len(ws) != 0 {
		t.Logf("writes by the operator in the window:%s", listed(ws, 40))
	}
	if len(unexplained) != 0 {
		t.Errorf("%d writes by the operator in %s of steady state that no readiness change explains (%v):%s",
			len(unexplained), window, byReason(unexplained), listed(unexplained, 40))
	}

	e.checkLongDrainIsSilent(flips)
	if !op.running() {
		t.Errorf("the operator exited")
	}
}

// checkLongDrainIsSilent scales c01 (2 members) to 1 with a client holding the outgoing
// member: the drain's start writes (the list, status, events), then 2 minutes of waiting write
// nothing, and the client leaving ends the drain with writes again.
func (e *env) checkLongDrainIsSilent(flips *readinessFlips) {
	t := e.t
	const name = "c01"
	ep, _, ok := e.endpointsOf(name + "-endpoints")
	if !ok || len(ep.Servers) != 2 {
		t.Fatalf("%s publishes %v, want 2 servers", name, ep.Names())
	}
	conns := holdConnections(t, fmt.Sprintf("%s:%d", ep.Servers[1].Address, ep.Servers[1].Port), 1)
	defer closeAll(conns)
	sc := e.watchStatus(name)
	time.Sleep(time.Second) // the watch is established before anything changes
	scaled := time.Now()
	e.kubectlOK("scale", "mcc/"+name, "--replicas=1")
	e.waitFor(60*time.Second, name+" drain started (outgoing member unpublished)", func() (bool, error) {
		ep, _, _ := e.endpointsOf(name + "-endpoints")
		s := statusOf(e.mcc(name))
		return len(ep.Servers) == 1 && s.Drain != nil && s.Drain.PublishedAt != "", fmt.Errorf("published %v, drain %+v", ep.Names(), s.Drain)
	})
	// The drain's start: what it wrote, and why.
	time.Sleep(10 * time.Second)
	started := auditWrites(t, scaled, e.operatorWrites)
	t.Logf("figure: the drain's start: %d writes by the operator (%v):%s", len(started), byReason(started), listed(started, 30))
	if len(started) == 0 {
		t.Errorf("no write recorded for the drain's start: the audit log does not see the operator")
	}
	e.explainStatusWrites(name, "the drain's start", scaled, started, sc)

	const wait = 2 * time.Minute
	from := time.Now()
	time.Sleep(wait)
	ws := auditWrites(t, from, e.operatorWrites)
	t.Logf("figure: a drain waiting for its client %s: %d writes by the operator", wait, len(ws))
	// Nothing changes while the client stays: no write is explained (but by a member changing
	// readiness, as above).
	var unexplained []auditEvent
	for _, w := range ws {
		if !flips.clusterFlipped(clusterOf(w), from) {
			unexplained = append(unexplained, w)
		}
	}
	if len(unexplained) != 0 {
		t.Errorf("%d writes while a drain waited %s and nothing changed (%v):%s", len(unexplained), wait, byReason(unexplained), listed(unexplained, 40))
	}
	if p, ok := e.pod(name + "-1"); !ok || p.DeletionTimestamp != nil {
		t.Fatalf("%s-1 deleted while its client is connected", name)
	}

	// The client leaves: that is a change, and the drain's end is written.
	closeAll(conns)
	left := time.Now()
	e.waitFor(120*time.Second, name+" drain finished", func() (bool, error) {
		s := statusOf(e.mcc(name))
		return e.stsReplicas(name) == 1 && s.Drain == nil, fmt.Errorf("replicas %d drain %+v", e.stsReplicas(name), s.Drain)
	})
	time.Sleep(5 * time.Second)
	end := auditWrites(t, left, e.operatorWrites)
	t.Logf("figure: the client left -> drain finished: %d writes by the operator (%v):%s", len(end), byReason(end), listed(end, 30))
	if len(end) == 0 {
		t.Errorf("no write recorded for the drain's end")
	}
	e.explainStatusWrites(name, "the drain's end", left, end, sc)
}
