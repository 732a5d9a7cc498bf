//go:build reliability

// invariantMonitor: the safety invariants of a MemcachedCluster, checked continuously while a
// reliability scenario runs (started before it, stopped at its end):
//  1. no pod is deleted (deletionTimestamp set, or gone) and no member's memcached stops
//     answering while the latest published endpoints.json names it in servers, previous.servers
//     or next.servers;
//  2. every change of endpoints.json's content is published as version+1: a version is never
//     reused for other content, never skipped, never goes backwards;
//  3. once a list with servers was published, the list is never empty while spec.replicas > 0
//     and some member is Ready.
//
// Two watches (the endpoints ConfigMap, the cluster's pods) see every update; a 100 ms sampler
// reads the ConfigMap, the pods and the cluster from the API and asks every listed member's
// memcached `version` directly. Ordering: resourceVersions handed out by one API server are
// etcd revisions, a single counter over all keys, so ordering the events of both watches by
// resourceVersion is their exact order of commit. That is what "the ConfigMap named the pod
// when it was deleted" is judged on: the pod event's resourceVersion against the last
// ConfigMap revision before it (this test talks to one API server with one etcd, so it holds
// here; Kubernetes documents resourceVersions as opaque in general).
//
// Every violation is reported with t.Errorf (all of them, not only the first) together with the
// monitor's events around it. Thread-safety: one mutex guards the state; the watches and the
// sampler run on their own goroutines until stop().
package operator

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/watch"
)

// monEvent is one line of the monitor's history, shown around a violation.
type monEvent struct {
	at   time.Time
	rv   int64 // 0 when not from the API
	text string
}

type monViolation struct {
	what  string
	index int // into events, the event it was found at
}

// cmRevision is the published endpoints as of one ConfigMap revision.
type cmRevision struct {
	rv    int64
	ep    endpoints
	names map[string]bool // servers, previous.servers and next.servers
}

// podDeletion waits until the ConfigMap revisions before its resourceVersion are known.
type podDeletion struct {
	name, uid, how string
	rv             int64
}

type invariantMonitor struct {
	t       *testing.T
	e       *env
	cluster string
	cmName  string
	cancel  context.CancelFunc
	wg      sync.WaitGroup

	mu         sync.Mutex
	events     []monEvent
	violations []monViolation
	revisions  []cmRevision // in resourceVersion order, as the watch delivered them
	cmWatchRV  int64        // the newest revision the ConfigMap watch has reached
	contents   map[int64]string
	lastVer    int64
	published  bool
	nonEmpty   bool                   // a list with servers was published once
	pods       map[string]*corev1.Pod // by name, as last seen by the pod watch
	everReady  map[string]bool        // by pod UID
	deleted    map[string]bool        // by pod UID: its deletion was checked
	pending    []podDeletion
	replicas   int64 // spec.replicas as last sampled
	downSince  map[string]time.Time
	samples    int
	probes     int
	probeFails int
}

// startInvariantMonitor lists the ConfigMap and the pods, then watches both from the listed
// revisions and starts the sampler.
func (e *env) startInvariantMonitor(cluster, cmName string) *invariantMonitor {
	e.t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	m := &invariantMonitor{
		t: e.t, e: e, cluster: cluster, cmName: cmName, cancel: cancel,
		contents: map[int64]string{}, pods: map[string]*corev1.Pod{}, everReady: map[string]bool{},
		deleted: map[string]bool{}, downSince: map[string]time.Time{}, replicas: -1,
	}
	cms, err := e.kube.CoreV1().ConfigMaps(e.ns).List(ctx, metav1.ListOptions{FieldSelector: "metadata.name=" + cmName})
	if err != nil {
		e.t.Fatalf("monitor: list configmap: %v", err)
	}
	for i := range cms.Items {
		m.onConfigMap(&cms.Items[i], "listed")
	}
	pods, err := e.kube.CoreV1().Pods(e.ns).List(ctx, metav1.ListOptions{})
	if err != nil {
		e.t.Fatalf("monitor: list pods: %v", err)
	}
	for i := range pods.Items {
		m.onPod(watch.Added, &pods.Items[i])
	}
	m.wg.Add(3)
	go m.watchLoop(ctx, "configmap", cms.ResourceVersion, func(ctx context.Context, rv string) (watch.Interface, error) {
		return e.kube.CoreV1().ConfigMaps(e.ns).Watch(ctx, metav1.ListOptions{
			FieldSelector: "metadata.name=" + cmName, ResourceVersion: rv, AllowWatchBookmarks: true})
	})
	go m.watchLoop(ctx, "pods", pods.ResourceVersion, func(ctx context.Context, rv string) (watch.Interface, error) {
		return e.kube.CoreV1().Pods(e.ns).Watch(ctx, metav1.ListOptions{ResourceVersion: rv, AllowWatchBookmarks: true})
	})
	go m.sampler(ctx)
	return m
}

func parseRV(s string) int64 {
	n, _ := strconv.ParseInt(s, 10, 64)
	return n
}

// watchLoop follows one watch from `rv`, reopening it from the last revision seen when the API
// server ends it. A watch that cannot resume (410 Gone) lost events: that is reported, since
// the invariants would no longer be checked on every update.
func (m *invariantMonitor) watchLoop(ctx context.Context, what, rv string, open func(context.Context, string) (watch.Interface, error)) {
	defer m.wg.Done()
	for ctx.Err() == nil {
		w, err := open(ctx, rv)
		if err != nil {
			if ctx.Err() == nil {
				m.note(0, fmt.Sprintf("%s watch: %v (retrying)", what, err))
				time.Sleep(200 * time.Millisecond)
			}
			continue
		}
		for ev := range w.ResultChan() {
			if ev.Type == watch.Error {
				if ctx.Err() != nil {
					break // stopping
				}
				// 410 Gone: the revision is compacted away, the updates in between were lost
				// and the invariants not checked on them. Any other error: open it again.
				if st, ok := ev.Object.(*metav1.Status); ok && st.Code == http.StatusGone {
					m.violation(fmt.Sprintf("monitor: the %s watch could not resume from revision %s (%s): events were lost", what, rv, st.Message))
					w.Stop()
					return
				}
				m.note(0, fmt.Sprintf("%s watch error %v (reopening)", what, ev.Object))
				break
			}
			obj, ok := ev.Object.(metav1.Object)
			if !ok {
				continue
			}
			rv = obj.GetResourceVersion()
			switch o := ev.Object.(type) {
			case *corev1.ConfigMap:
				if ev.Type == watch.Bookmark {
					m.advanceConfigMap(parseRV(rv))
				} else if ev.Type != watch.Deleted {
					m.onConfigMap(o, string(ev.Type))
				} else {
					m.note(parseRV(rv), "configmap DELETED")
				}
			case *corev1.Pod:
				if ev.Type != watch.Bookmark {
					m.onPod(ev.Type, o)
				}
			}
		}
		w.Stop()
	}
}

func (m *invariantMonitor) note(rv int64, text string) int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.noteLocked(rv, text)
}

func (m *invariantMonitor) noteLocked(rv int64, text string) int {
	m.events = append(m.events, monEvent{time.Now(), rv, text})
	return len(m.events) - 1
}

// mark puts a line of the scenario (a step, an injection) into the history.
func (m *invariantMonitor) mark(text string) { m.note(0, "-- "+text) }

func (m *invariantMonitor) violation(what string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.violationLocked(what)
}

func (m *invariantMonitor) violationLocked(what string) {
	i := m.noteLocked(0, "VIOLATION: "+what)
	m.violations = append(m.violations, monViolation{what, i})
}

func endpointNames(ep endpoints) map[string]bool {
	names := map[string]bool{}
	for _, s := range ep.Servers {
		names[s.Name] = true
	}
	for _, ring := range []*endpoints{ep.Next, ep.Previous} {
		if ring != nil {
			for _, s := range ring.Servers {
				names[s.Name] = true
			}
		}
	}
	return names
}

// contentWithoutVersion is endpoints.json with its version left out, compared canonically.
func contentWithoutVersion(text string) string {
	var raw map[string]any
	if json.Unmarshal([]byte(text), &raw) != nil {
		return text
	}
	delete(raw, "version")
	b, _ := json.Marshal(raw)
	return string(b)
}

// onConfigMap checks invariants 2 and 3 on one revision of the ConfigMap.
func (m *invariantMonitor) onConfigMap(cm *corev1.ConfigMap, how string) {
	rv := parseRV(cm.ResourceVersion)
	text := cm.Data["endpoints.json"]
	var ep endpoints
	if err := json.Unmarshal([]byte(text), &ep); err != nil {
		m.violation(fmt.Sprintf("configmap revision %d: endpoints.json unreadable: %v", rv, err))
		return
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if rv <= m.cmWatchRV {
		return // the list and the watch overlap by one revision at most
	}
	m.cmWatchRV = rv
	m.revisions = append(m.revisions, cmRevision{rv, ep, endpointNames(ep)})
	m.noteLocked(rv, fmt.Sprintf("configmap %s: version %d %s%v next=%v previous=%v", how, ep.Version, ep.Phase, ep.Names(),
		ringNames(ep.Next), ringNames(ep.Previous)))
	content := contentWithoutVersion(text)
	if prev, seen := m.contents[ep.Version]; seen && prev != content {
		m.violationLocked(fmt.Sprintf("version %d reused for other content", ep.Version))
	}
	if m.published {
		switch {
		case ep.Version < m.lastVer:
			m.violationLocked(fmt.Sprintf("version went backwards: %d after %d", ep.Version, m.lastVer))
		case ep.Version > m.lastVer+1:
			m.violationLocked(fmt.Sprintf("version skipped: %d after %d", ep.Version, m.lastVer))
		case ep.Version == m.lastVer+1 && content == m.contents[m.lastVer]:
			m.violationLocked(fmt.Sprintf("version %d published with the content of %d", ep.Version, m.lastVer))
		}
	}
	m.contents[ep.Version] = content
	m.lastVer = ep.Version
	m.published = true
	if len(ep.Servers) > 0 {
		m.nonEmpty = true
	}
	m.checkNotEmptyLocked(ep, fmt.Sprintf("configmap revision %d", rv))
}

func ringNames(ep *endpoints) []string {
	if ep == nil {
		return nil
	}
	return ep.Names()
}

// checkNotEmptyLocked: invariant 3.
// Judged from the first publish that listed servers: before it, the members are still coming
// up and the first ring is not established (the operator publishes an empty list at creation).
func (m *invariantMonitor) checkNotEmptyLocked(ep endpoints, where string) {
	if len(ep.Servers) > 0 || m.replicas <= 0 || !m.nonEmpty {
		return
	}
	for _, p := range m.pods {
		if podReady(p) && p.DeletionTimestamp == nil {
			m.violationLocked(fmt.Sprintf("%s: published list empty while spec.replicas=%d and %s is Ready", where, m.replicas, p.Name))
			return
		}
	}
}

func podReady(p *corev1.Pod) bool {
	for _, c := range p.Status.Conditions {
		if c.Type == corev1.PodReady {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}

// advanceConfigMap: a bookmark says no ConfigMap revision up to rv is missing.
func (m *invariantMonitor) advanceConfigMap(rv int64) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if rv > m.cmWatchRV {
		m.cmWatchRV = rv
	}
	m.settleLocked(nil)
}

func (m *invariantMonitor) onPod(typ watch.EventType, p *corev1.Pod) {
	if !strings.HasPrefix(p.Name, m.cluster+"-") {
		return
	}
	rv := parseRV(p.ResourceVersion)
	m.mu.Lock()
	defer m.mu.Unlock()
	uid := string(p.UID)
	if podReady(p) {
		m.everReady[uid] = true
	}
	old := m.pods[p.Name]
	state := fmt.Sprintf("ready=%v", podReady(p))
	if p.DeletionTimestamp != nil {
		state += " deleting"
	}
	if old == nil || string(old.UID) != uid || podReady(old) != podReady(p) || (old.DeletionTimestamp == nil) != (p.DeletionTimestamp == nil) || typ == watch.Deleted {
		m.noteLocked(rv, fmt.Sprintf("pod %s %s uid=%s %s", p.Name, typ, uid[:8], state))
	}
	if typ == watch.Deleted {
		delete(m.pods, p.Name)
	} else {
		m.pods[p.Name] = p
	}
	if (typ == watch.Deleted || p.DeletionTimestamp != nil) && !m.deleted[uid] {
		m.deleted[uid] = true
		how := "deletionTimestamp set"
		if typ == watch.Deleted {
			how = "gone"
		}
		m.pending = append(m.pending, podDeletion{p.Name, uid, how, rv})
		m.settleLocked(nil)
	}
}

// settleLocked judges the pod deletions whose revision the ConfigMap's history now covers: the
// watch reached a later revision, or `current` (a GET of the ConfigMap, the newest revision)
// is older than the deletion, so nothing was published in between.
func (m *invariantMonitor) settleLocked(current *cmRevision) {
	var still []podDeletion
	for _, d := range m.pending {
		var at *cmRevision
		switch {
		case m.cmWatchRV > d.rv:
			for i := len(m.revisions) - 1; i >= 0; i-- {
				if m.revisions[i].rv < d.rv {
					at = &m.revisions[i]
					break
				}
			}
		case current != nil && current.rv < d.rv:
			at = current
		default:
			still = append(still, d)
			continue
		}
		if at != nil && at.names[d.name] {
			m.violationLocked(fmt.Sprintf("pod %s (uid %s) %s at revision %d while endpoints version %d (revision %d) names it",
				d.name, d.uid[:8], d.how, d.rv, at.ep.Version, at.rv))
		}
	}
	m.pending = still
}

// sampler: every 100 ms, the ConfigMap, the cluster's spec.replicas and each listed member's
// memcached, read directly.
func (m *invariantMonitor) sampler(ctx context.Context) {
	defer m.wg.Done()
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		m.sample(ctx)
	}
}

func (m *invariantMonitor) sample(ctx context.Context) {
	rctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if u, err := m.e.dyn.Resource(mccGVR).Namespace(m.e.ns).Get(rctx, m.cluster, metav1.GetOptions{}); err == nil {
		spec, _ := u.Object["spec"].(map[string]any)
		if r, ok := spec["replicas"].(int64); ok {
			m.mu.Lock()
			m.replicas = r
			m.mu.Unlock()
		}
	}
	cm, err := m.e.kube.CoreV1().ConfigMaps(m.e.ns).Get(rctx, m.cmName, metav1.GetOptions{})
	if err != nil {
		return
	}
	var ep endpoints
	if json.Unmarshal([]byte(cm.Data["endpoints.json"]), &ep) != nil {
		return
	}
	cur := cmRevision{parseRV(cm.ResourceVersion), ep, endpointNames(ep)}
	m.mu.Lock()
	m.samples++
	m.settleLocked(&cur)
	m.checkNotEmptyLocked(ep, fmt.Sprintf("sampled version %d", ep.Version))
	m.mu.Unlock()
	m.probeListed(ctx, ep, cur.names)
}

// probeListed asks every member the sampled endpoints name, whose pod exists, is not being
// deleted and was Ready once, for its `version`. Twice in a row without an answer (2 s timeout
// each: the machine is shared and slow) while still listed is a stopped member.
func (m *invariantMonitor) probeListed(ctx context.Context, ep endpoints, names map[string]bool) {
	addrs := map[string]string{}
	for _, ring := range []*endpoints{&ep, ep.Next, ep.Previous} {
		if ring == nil {
			continue
		}
		for _, s := range ring.Servers {
			addrs[s.Name] = net.JoinHostPort(s.Address, strconv.Itoa(s.Port))
		}
	}
	m.mu.Lock()
	targets := map[string]string{}
	uids := map[string]string{}
	for name, addr := range addrs {
		if p := m.pods[name]; p != nil && p.DeletionTimestamp == nil && m.everReady[string(p.UID)] && podReady(p) {
			targets[name], uids[name] = addr, string(p.UID)
		}
	}
	m.mu.Unlock()
	var wg sync.WaitGroup
	var mu sync.Mutex
	failed := map[string]error{}
	for name, addr := range targets {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := memcachedVersion(ctx, addr); err != nil && ctx.Err() == nil {
				mu.Lock()
				failed[name] = err
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	m.mu.Lock()
	defer m.mu.Unlock()
	m.probes += len(targets)
	for name := range targets {
		err, bad := failed[name]
		if !bad {
			delete(m.downSince, name)
			continue
		}
		m.probeFails++
		p := m.pods[name]
		if p == nil || string(p.UID) != uids[name] || p.DeletionTimestamp != nil {
			continue // deleted meanwhile: judged by the deletion check
		}
		if _, was := m.downSince[name]; !was {
			m.downSince[name] = time.Now()
			m.noteLocked(0, fmt.Sprintf("memcached %s at %s did not answer: %v", name, targets[name], err))
			continue
		}
		m.violationLocked(fmt.Sprintf("memcached %s at %s (pod uid %s, Ready) stopped answering while endpoints version %d names it: %v",
			name, targets[name], uids[name][:8], ep.Version, err))
		delete(m.downSince, name)
	}
}

// memcachedVersion sends `version` and expects "VERSION ...".
func memcachedVersion(ctx context.Context, addr string) error {
	d := net.Dialer{Timeout: 2 * time.Second}
	c, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return err
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(2 * time.Second))
	if _, err := c.Write([]byte("version\r\n")); err != nil {
		return err
	}
	line, err := bufio.NewReader(c).ReadString('\n')
	if err != nil {
		return err
	}
	if !strings.HasPrefix(line, "VERSION ") {
		return fmt.Errorf("answered %q", strings.TrimSpace(line))
	}
	return nil
}

// stop ends the watches and the sampler, judges what is still pending, and reports every
// violation with the monitor's events around it. It returns the number of violations.
func (m *invariantMonitor) stop() int {
	m.t.Helper()
	// Let the watches deliver what was committed before the end.
	time.Sleep(500 * time.Millisecond)
	m.cancel()
	m.wg.Wait()
	m.mu.Lock()
	defer m.mu.Unlock()
	m.settleLocked(nil)
	for _, d := range m.pending {
		m.t.Logf("monitor: the deletion of pod %s at revision %d could not be ordered against the ConfigMap (watch behind)", d.name, d.rv)
	}
	m.t.Logf("monitor: %d events, %d ConfigMap revisions, %d API samples, %d memcached probes (%d unanswered), %d violations",
		len(m.events), len(m.revisions), m.samples, m.probes, m.probeFails, len(m.violations))
	for _, v := range m.violations {
		lo, hi := max(0, v.index-12), min(len(m.events), v.index+6)
		var b strings.Builder
		for _, ev := range m.events[lo:hi] {
			fmt.Fprintf(&b, "  %s rv=%d %s\n", ev.at.Format("15:04:05.000"), ev.rv, ev.text)
		}
		m.t.Errorf("invariant violated: %s\nevents around it:\n%s", v.what, b.String())
	}
	return len(m.violations)
}

// converged is invariant 4 for one scenario step: Available=True, observedGeneration ==
// generation, the published servers are exactly `names` (stable, no phase), the StatefulSet's
// replicas equal spec.replicas, and no transition, rollout or drain is left in status.
func (e *env) converged(cluster, cmName string, names []string) (bool, error) {
	ctx := context.Background()
	u, err := e.dyn.Resource(mccGVR).Namespace(e.ns).Get(ctx, cluster, metav1.GetOptions{})
	if err != nil {
		return false, err
	}
	st := statusOf(u)
	raw, _ := u.Object["status"].(map[string]any)
	spec, _ := u.Object["spec"].(map[string]any)
	replicas, _ := spec["replicas"].(int64)
	if c := st.condition("Available"); c.Status != "True" {
		return false, fmt.Errorf("Available %s %s: %s", c.Status, c.Reason, c.Message)
	}
	if st.ObservedGeneration != u.GetGeneration() {
		return false, fmt.Errorf("observedGeneration %d, generation %d", st.ObservedGeneration, u.GetGeneration())
	}
	for _, f := range []string{"transition", "rollout", "drain"} {
		if raw[f] != nil {
			return false, fmt.Errorf("status.%s still set", f)
		}
	}
	ep, _, ok := e.endpointsOf(cmName)
	if !ok {
		return false, fmt.Errorf("no ConfigMap")
	}
	if ep.Phase != "" || !reflect.DeepEqual(ep.Names(), names) {
		return false, fmt.Errorf("published %s%v, want %v", ep.Phase, ep.Names(), names)
	}
	sts, err := e.kube.AppsV1().StatefulSets(e.ns).Get(ctx, cluster, metav1.GetOptions{})
	if err != nil {
		return false, err
	}
	if sts.Spec.Replicas == nil || int64(*sts.Spec.Replicas) != replicas {
		return false, fmt.Errorf("StatefulSet replicas %v, spec.replicas %d", sts.Spec.Replicas, replicas)
	}
	// The StatefulSet controller has seen the operator's last change (a new pod template
	// leaves updatedReplicas as it was until it has).
	if sts.Status.ObservedGeneration != sts.Generation {
		return false, fmt.Errorf("StatefulSet observedGeneration %d, generation %d", sts.Status.ObservedGeneration, sts.Generation)
	}
	if int64(sts.Status.UpdatedReplicas) != replicas || int64(sts.Status.ReadyReplicas) != replicas {
		return false, fmt.Errorf("StatefulSet: %d updated and %d ready of %d replicas", sts.Status.UpdatedReplicas, sts.Status.ReadyReplicas, replicas)
	}
	return true, nil
}

// memberNames is cluster-0 ... cluster-(n-1).
func memberNames(cluster string, n int) []string {
	var out []string
	for i := 0; i < n; i++ {
		out = append(out, fmt.Sprintf("%s-%d", cluster, i))
	}
	return slices.Clip(out)
}
