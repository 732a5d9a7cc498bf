//go:build reliability

// memcached and node faults under client load (build/bin/clientconfig-load, load_test.go):
//
//   - a member's memcached SIGKILLed: restarted by the kubelet, it keeps its ring slot (same
//     position and host; the list is never shortened; versions move by one) and comes back empty,
//     so no client reads a value older than its last acknowledged write;
//   - a member SIGSTOPped while the operator needs it (a drain's connection count, a Warm copy,
//     a scale-down's stale-copy sweep): the step times out with a Warning event naming the
//     member, the operator's other clusters keep converging meanwhile, and the cluster converges
//     after SIGCONT;
//   - the node NotReady for 60 s: no pod deleted, nothing removed from the published list, every
//     member active again afterwards.
package operator

import (
	"context"
	"fmt"
	"net"
	"slices"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"memcached-operator/e2e/framework"
)

// checkRingKept fails the test unless every version in eps lists the members of base at the same
// positions with the same hosts (never shortened, never reordered) and versions rise by one
// from base.Version.
func checkRingKept(t *testing.T, base endpoints, eps []endpoints) {
	t.Helper()
	for i, ep := range eps {
		if ep.Version != base.Version+int64(i)+1 {
			t.Errorf("version %d published as #%d after %d: versions must rise by one", ep.Version, i+1, base.Version)
		}
		if len(ep.Servers) != len(base.Servers) {
			t.Errorf("version %d lists %v; want every member of %v kept", ep.Version, ep.Names(), base.Names())
			continue
		}
		for j, s := range ep.Servers {
			if s.Name != base.Servers[j].Name || s.Host != base.Servers[j].Host {
				t.Errorf("version %d: position %d is %s (%s), was %s (%s)", ep.Version, j, s.Name, s.Host, base.Servers[j].Name, base.Servers[j].Host)
			}
			if s.State != "active" && s.State != "unready" {
				t.Errorf("version %d: %s is %q in the ring", ep.Version, s.Name, s.State)
			}
		}
	}
}

func statesOf(ep endpoints) string {
	var out []string
	for _, s := range ep.Servers {
		out = append(out, s.Name+"="+s.State)
	}
	return strings.Join(out, ",")
}

func (e *env) restartCount(pod string) int32 {
	p, ok := e.pod(pod)
	if !ok || len(p.Status.ContainerStatuses) == 0 {
		return -1
	}
	return p.Status.ContainerStatuses[0].RestartCount
}

func (e *env) memberAddr(pod string) string {
	e.t.Helper()
	p, ok := e.pod(pod)
	if !ok || p.Status.PodIP == "" {
		e.t.Fatalf("pod %s has no address", pod)
	}
	return net.JoinHostPort(p.Status.PodIP, "11211")
}

// Fails if: a killed member is not restarted, leaves or moves in the published list, a version
// is skipped or repeated, the restarted member still holds an item written before the kill (not
// empty), or a client reads a value older than its last acknowledged write.
func TestReliabilityMemberKilled(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	op := e.startOperator()
	e.createCluster(clusterName, fmt.Sprintf("  replicas: 3\n  drain:\n    minSeconds: %d\n    timeoutSeconds: 60\n", minSeconds))
	e.waitAvailable(clusterName, 120*time.Second)
	base, _ := e.waitServers(3, 60*time.Second)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	published := e.watchPublished(ctx, cmName)
	load := e.startLoad(cmName, loadArgs...)
	phases := []phase{}
	mark := time.Now()
	time.Sleep(5 * time.Second)
	phases = append(phases, phase{"steady (3 members)", mark, time.Now()})

	for _, victim := range []string{"cache-1", "cache-2", "cache-0"} {
		addr := e.memberAddr(victim)
		// An item only this test wrote, straight to the member: after the restart it must be
		// gone (the member is known-empty, nothing of before the kill is served).
		mcSet(t, addr, "mcfaults:marker", "before-the-kill")
		before := e.restartCount(victim)
		oldPids := framework.MemcachedProcesses()[strings.Split(addr, ":")[0]]
		killed := time.Now()
		if out, err := framework.ClusterCmd(t, "fault", "pod-kill", e.ns+"/"+victim); err != nil {
			t.Fatalf("fault pod-kill %s: %v\n%s", victim, err, out)
		}
		var restarted time.Duration
		e.waitFor(60*time.Second, victim+" restarted, Ready and published active", func() (bool, error) {
			p, ok := e.pod(victim)
			if ok && restarted == 0 && e.restartCount(victim) > before {
				restarted = time.Since(killed)
			}
			state := e.serverState(cmName, victim)
			return ok && restarted > 0 && framework.PodReady(p) && state == "active",
				fmt.Errorf("restarts %d (was %d), ready %v, published %q", e.restartCount(victim), before, ok && framework.PodReady(p), state)
		})
		back := time.Since(killed)
		if p, _ := e.pod(victim); p.Status.PodIP+":11211" != addr {
			t.Logf("%s came back on %s (was %s)", victim, p.Status.PodIP, addr)
			addr = net.JoinHostPort(p.Status.PodIP, "11211")
		}
		if v, hit := mcGet(t, addr, "mcfaults:marker"); hit {
			t.Errorf("%s after its restart still serves %q written before the kill", victim, v)
		}
		if procs := framework.MemcachedProcesses()[strings.Split(addr, ":")[0]]; len(procs) != 1 || (len(oldPids) == 1 && procs[0].Pid == oldPids[0].Pid) {
			t.Errorf("%s: want one new memcached process, found %v (before: %v)", victim, procs, oldPids)
		}
		time.Sleep(5 * time.Second) // the hit ratio refills
		phases = append(phases, phase{"kill " + victim + " and 5 s after", killed, time.Now()})
		during, _ := load.between(killed, time.Now())
		t.Logf("figure: SIGKILL %s -> restarted in %s, Ready and published active in %s; load meanwhile: %d errors %s, %d misses, hit ratio %.4f",
			victim, restarted.Round(100*time.Millisecond), back.Round(100*time.Millisecond), during.Errors, kinds(during.ErrorsByKind), during.Misses, during.hitRatio())
	}
	s := load.stop()
	load.logPhases(phases)
	checkLoadSummary(t, s)
	// Errors are expected only while a member is down (connection refused, reset): none in the
	// steady stretch before the first kill.
	if steady, _ := load.between(phases[0].from, phases[0].to); steady.Errors != 0 {
		t.Errorf("%d client errors in steady state %s", steady.Errors, kinds(steady.ErrorsByKind))
	}

	last, _, _ := e.endpointsOf(cmName)
	published.upTo(t, last.Version)
	eps := published.since(base.Version)
	checkRingKept(t, base, eps)
	var trail []string
	for _, ep := range eps {
		trail = append(trail, fmt.Sprintf("v%d[%s]", ep.Version, statesOf(ep)))
	}
	t.Logf("figure: %d versions published through 3 kills: %s", len(eps), strings.Join(trail, " "))
	if !op.running() {
		t.Fatalf("the operator exited (code %d)", op.exitCode())
	}
}

// Fails if: the node's NotReady deletes a pod, removes a member from the published list or
// reorders it, a member is not active again after the node is Ready, the operator exits, or a
// client reads a stale value.
func TestReliabilityNodeNotReady(t *testing.T) {
	// Not parallel: the node is the whole cluster's.
	e := newEnv(t)
	op := e.startOperator()
	e.createCluster(clusterName, fmt.Sprintf("  replicas: 2\n  drain:\n    minSeconds: %d\n    timeoutSeconds: 60\n", minSeconds))
	e.waitAvailable(clusterName, 120*time.Second)
	base, _ := e.waitServers(2, 60*time.Second)
	uids := map[string]string{}
	for _, n := range base.Names() {
		p, _ := e.pod(n)
		uids[n] = string(p.UID)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	published := e.watchPublished(ctx, cmName)
	load := e.startLoad(cmName, loadArgs...)
	time.Sleep(3 * time.Second)

	if out, err := framework.ClusterCmd(t, "fault", "node-notready"); err != nil {
		t.Fatalf("node-notready: %v\n%s", err, out)
	}
	ready := false
	defer func() {
		if !ready {
			framework.ClusterCmd(t, "fault", "node-ready")
		}
	}()
	down := time.Now()
	unreadyPods, unreadyPublished := map[string]bool{}, map[string]bool{}
	taint := ""
	for time.Since(down) < 60*time.Second {
		for n, uid := range uids {
			p, ok := e.pod(n)
			if !ok || string(p.UID) != uid || p.DeletionTimestamp != nil {
				t.Fatalf("node NotReady for %s: pod %s deleted or replaced", time.Since(down).Round(time.Second), n)
			}
			if !framework.PodReady(p) && !unreadyPods[n] {
				unreadyPods[n] = true
				t.Logf("node NotReady +%s: pod %s not Ready", time.Since(down).Round(100*time.Millisecond), n)
			}
		}
		ep, _, _ := e.endpointsOf(cmName)
		if !slices.Equal(ep.Names(), base.Names()) {
			t.Fatalf("node NotReady for %s: published %v, want %v kept", time.Since(down).Round(time.Second), ep.Names(), base.Names())
		}
		for _, s := range ep.Servers {
			if s.State == "unready" && !unreadyPublished[s.Name] {
				unreadyPublished[s.Name] = true
				t.Logf("node NotReady +%s: %s published unready (version %d)", time.Since(down).Round(100*time.Millisecond), s.Name, ep.Version)
			}
		}
		if !op.running() {
			t.Fatalf("the operator exited while the node was NotReady (code %d)", op.exitCode())
		}
		if taint == "" {
			taint = notReadyTaint(e)
		}
		time.Sleep(500 * time.Millisecond)
	}
	// Why no pod goes: the node-lifecycle controller taints a NotReady node NoExecute (unless
	// every node of the zone is NotReady, as here with one node: it then takes it for a
	// partition and neither taints nor evicts), and the API server gives every pod a toleration
	// of that taint for 300 s (DefaultTolerationSeconds), well beyond these 60 s. The loopback
	// kubelet keeps heartbeating and posting the pods' own readiness, so nothing marks them
	// NotReady either (the controller does that only for a node whose heartbeats stop).
	p, _ := e.pod(base.Names()[0])
	var tolerations []string
	for _, tol := range p.Spec.Tolerations {
		if tol.TolerationSeconds != nil {
			tolerations = append(tolerations, fmt.Sprintf("%s:%s for %d s", tol.Key, tol.Effect, *tol.TolerationSeconds))
		}
	}
	t.Logf("figure: node NotReady: taint %q; pod tolerations %v", taint, tolerations)
	duringNotReady, _ := load.between(down, time.Now())
	if out, err := framework.ClusterCmd(t, "fault", "node-ready"); err != nil {
		t.Fatalf("node-ready: %v\n%s", err, out)
	}
	ready = true
	up := time.Now()
	e.waitFor(90*time.Second, "every member Ready and published active", func() (bool, error) {
		ep, _, _ := e.endpointsOf(cmName)
		for _, n := range base.Names() {
			p, ok := e.pod(n)
			if !ok || !framework.PodReady(p) || e.serverState(cmName, n) != "active" {
				return false, fmt.Errorf("published %s", statesOf(ep))
			}
		}
		return true, nil
	})
	t.Logf("figure: node Ready -> every member Ready and active in %s", time.Since(up).Round(100*time.Millisecond))
	e.waitAvailable(clusterName, 60*time.Second)
	time.Sleep(3 * time.Second)
	s := load.stop()
	load.logPhases([]phase{{"before", down.Add(-3 * time.Second), down}, {"node NotReady 60 s", down, up}, {"after", up, time.Now()}})
	checkLoadSummary(t, s)
	t.Logf("figure: node NotReady 60 s: pods not Ready %v, published unready %v; load meanwhile %d errors %s, stale %d",
		keys(unreadyPods), keys(unreadyPublished), duringNotReady.Errors, kinds(duringNotReady.ErrorsByKind), duringNotReady.Stale)
	for n, uid := range uids {
		if p, ok := e.pod(n); !ok || string(p.UID) != uid {
			t.Errorf("pod %s replaced after the node came back", n)
		}
	}
	last, _, _ := e.endpointsOf(cmName)
	published.upTo(t, last.Version)
	eps := published.since(base.Version)
	checkRingKept(t, base, eps)
	var trail []string
	for _, ep := range eps {
		trail = append(trail, fmt.Sprintf("v%d[%s]", ep.Version, statesOf(ep)))
	}
	t.Logf("figure: versions published through the NotReady node: %s", strings.Join(trail, " "))
	if !op.running() {
		t.Fatalf("the operator exited (code %d)", op.exitCode())
	}
}

// notReadyTaint is the node's NoExecute not-ready taint ("" while it has none).
func notReadyTaint(e *env) string {
	n, err := e.kube.CoreV1().Nodes().Get(context.Background(), "loopback-node", metav1.GetOptions{})
	if err != nil {
		return ""
	}
	for _, tn := range n.Spec.Taints {
		if tn.Key == corev1.TaintNodeNotReady && tn.Effect == corev1.TaintEffectNoExecute {
			return tn.Key + ":" + string(tn.Effect)
		}
	}
	return ""
}

func keys(m map[string]bool) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}

// podFault sends a fault verb (pod-stop, pod-cont, ...) to a pod of the test's namespace.
func (e *env) podFault(verb, pod string) error {
	out, err := framework.ClusterCmd(e.t, "fault", verb, e.ns+"/"+pod)
	if err != nil {
		return fmt.Errorf("fault %s %s: %v: %s", verb, pod, err, strings.TrimSpace(out))
	}
	return nil
}

// warningsNaming returns the Warning events of a cluster with the given reason whose message
// names the member.
func (e *env) warningsNaming(cluster, reason, member string) []corev1.Event {
	var out []corev1.Event
	for _, ev := range e.eventsWithReason(cluster, reason) {
		if ev.Type == corev1.EventTypeWarning && strings.Contains(ev.Message, member) {
			out = append(out, ev)
		}
	}
	return out
}

// otherCluster is a second cluster of the same operator, scaled while a member of another one is
// stopped: it must converge as promptly as ever (the operator does not hang on the stopped
// member). Not safe for concurrent use.
type otherCluster struct {
	e        *env
	name     string
	replicas int
}

func (o *otherCluster) create() {
	o.e.createCluster(o.name, "  replicas: 1\n  drain:\n    minSeconds: 1\n    timeoutSeconds: 30\n")
	o.replicas = 1
}

// scale moves it between 1 and 2 members and waits until the list of the new size is published,
// the StatefulSet is at that size and the cluster Available; it returns how long that took.
func (o *otherCluster) scale(bound time.Duration) time.Duration {
	e := o.e
	e.t.Helper()
	o.replicas = 3 - o.replicas
	started := time.Now()
	e.kubectlOK("scale", "mcc/"+o.name, fmt.Sprintf("--replicas=%d", o.replicas))
	e.waitFor(bound, fmt.Sprintf("the other cluster %s converged at %d", o.name, o.replicas), func() (bool, error) {
		ep, _, _ := e.endpointsOf(o.name + "-endpoints")
		s := statusOf(e.mcc(o.name))
		ok := len(ep.Servers) == o.replicas && e.stsReplicas(o.name) == int32(o.replicas) && s.Drain == nil &&
			s.Phase == "Available" && s.Replicas == int64(o.replicas)
		return ok, fmt.Errorf("published %v, StatefulSet %d, phase %s, drain %v", ep.Names(), e.stsReplicas(o.name), s.Phase, s.Drain != nil)
	})
	return time.Since(started)
}

// Fails if: a step needing a stopped member hangs instead of timing out, ends without a Warning
// event naming the member, keeps the operator from converging another cluster within 60 s, or
// leaves the cluster unconverged after SIGCONT.
func TestReliabilityMemberStopped(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	op := e.startOperator()
	other := &otherCluster{e: e, name: "other"}
	other.create()
	e.createCluster("drn", "  replicas: 3\n  drain:\n    minSeconds: 2\n    timeoutSeconds: 4\n")
	e.createCluster("wrm", "  replicas: 2\n  drain:\n    minSeconds: 2\n    timeoutSeconds: 30\n"+
		"  transition:\n    mode: Warm\n    propagationSeconds: 2\n    windowSeconds: 2\n")
	e.createCluster("swp", "  replicas: 3\n  drain:\n    minSeconds: 2\n    timeoutSeconds: 30\n")
	for _, n := range []string{"other", "drn", "wrm", "swp"} {
		e.waitAvailable(n, 180*time.Second)
	}
	stopped := map[string]bool{}
	defer func() {
		for pod := range stopped {
			_ = e.podFault("pod-cont", pod) // leave no stopped process behind
		}
	}()
	stop := func(pod string) time.Time {
		t.Helper()
		if err := e.podFault("pod-stop", pod); err != nil {
			t.Fatal(err)
		}
		stopped[pod] = true
		return time.Now()
	}
	cont := func(pod string) {
		t.Helper()
		// The pod may be gone (a drain that timed out lowers the StatefulSet): nothing to resume.
		if err := e.podFault("pod-cont", pod); err != nil {
			t.Logf("%v", err)
		}
		delete(stopped, pod)
	}
	converged := func(cluster string, n int) time.Duration {
		t.Helper()
		started := time.Now()
		e.waitFor(180*time.Second, fmt.Sprintf("%s converged at %d active members", cluster, n), func() (bool, error) {
			ep, _, _ := e.endpointsOf(cluster + "-endpoints")
			s := statusOf(e.mcc(cluster))
			active := 0
			for _, m := range ep.Servers {
				if m.State == "active" {
					active++
				}
			}
			// Available, not the phase: a drain that timed out leaves Degraded (DrainTimeout) until
			// the spec changes again, by design.
			avail := s.condition("Available").Status == "True" && s.condition("Progressing").Status == "False"
			return active == n && len(ep.Servers) == n && ep.Phase == "" && s.Drain == nil && avail &&
					e.stsReplicas(cluster) == int32(n),
				fmt.Errorf("published %s%s, phase %s, drain %v, StatefulSet %d", ep.Phase, statesOf(ep), s.Phase, s.Drain != nil, e.stsReplicas(cluster))
		})
		return time.Since(started)
	}

	// warned waits for a Warning `reason` on `cluster` naming `member`, logs its message and
	// returns how long after `at` it came.
	warned := func(cluster, reason, member string, at time.Time, timeout time.Duration) time.Duration {
		e.waitFor(timeout, "a "+reason+" Warning naming "+member, func() (bool, error) {
			return len(e.warningsNaming(cluster, reason, member)) > 0, fmt.Errorf("events %v", e.eventsWithReason(cluster, reason))
		})
		took := time.Since(at)
		t.Logf("%s: %s", reason, e.warningsNaming(cluster, reason, member)[0].Message)
		return took
	}

	// 1. A drain's connection count: drn-2 leaves, and is stopped once the list without it is
	// published, before the count starts (minSeconds 2): the count cannot read its stats.
	e.kubectlOK("scale", "mcc/drn", "--replicas=2")
	e.waitFor(60*time.Second, "drn's drain published (publishedAt)", func() (bool, error) {
		d := statusOf(e.mcc("drn")).Drain
		return d != nil && d.PublishedAt != "", fmt.Errorf("drain %+v", d)
	})
	at := stop("drn-2")
	otherTook := other.scale(60 * time.Second)
	var outcome string
	e.waitFor(60*time.Second, "drn's drain decided", func() (bool, error) {
		if d := statusOf(e.mcc("drn")).Drain; d != nil && d.Outcome != "" {
			outcome = d.Outcome
		} else if d == nil && outcome == "" {
			outcome = "(drain done)"
		}
		return outcome != "", fmt.Errorf("no outcome")
	})
	decided := time.Since(at)
	if outcome == "TimedOut" {
		// The event follows the status write that records the outcome.
		warned("drn", "DrainTimeout", "drn-2", at, 30*time.Second)
	} else {
		// Only if the pod turned unready first (a stopped memcached fails its readiness probe
		// within 7-12 s): a not-Ready pod whose stats cannot be read serves no clients, and the
		// drain skips it.
		p, ok := e.pod("drn-2")
		t.Logf("drain outcome %s (pod present %v, ready %v): the stopped member was skipped as not Ready", outcome, ok, ok && framework.PodReady(p))
	}
	cont("drn-2")
	tookDrn := converged("drn", 2)
	t.Logf("figure: drain count on a stopped member: outcome %s %s after SIGSTOP; other cluster converged meanwhile in %s; converged %s after SIGCONT",
		outcome, decided.Round(100*time.Millisecond), otherTook.Round(100*time.Millisecond), tookDrn.Round(100*time.Millisecond))

	// 2. A Warm transition's copy: wrm-0 (a source: every key moving to wrm-2 comes from wrm-0
	// or wrm-1) is stopped as soon as prepare is published, before the copy starts.
	addrs := []string{e.memberAddr("wrm-0"), e.memberAddr("wrm-1")}
	for _, a := range addrs {
		mcFill(t, a, "filler:", 2000)
	}
	e.kubectlOK("scale", "mcc/wrm", "--replicas=3")
	e.waitFor(60*time.Second, "wrm's prepare phase published", func() (bool, error) {
		ep, _, _ := e.endpointsOf("wrm-endpoints")
		return ep.Phase == "prepare" || ep.Phase == "copy", fmt.Errorf("published %s%v", ep.Phase, ep.Names())
	})
	at = stop("wrm-0")
	otherTook = other.scale(60 * time.Second)
	decided = warned("wrm", "WarmCopyFailed", "wrm-0", at, 120*time.Second)
	cont("wrm-0")
	tookWrm := converged("wrm", 3)
	t.Logf("figure: Warm copy from a stopped member: WarmCopyFailed %s after SIGSTOP; other cluster converged meanwhile in %s; converged %s after SIGCONT",
		decided.Round(100*time.Millisecond), otherTook.Round(100*time.Millisecond), tookWrm.Round(100*time.Millisecond))

	// 3. A scale-down's stale-copy sweep: swp-0 stays and must be swept, but is stopped.
	at = stop("swp-0")
	e.kubectlOK("scale", "mcc/swp", "--replicas=2")
	otherTook = other.scale(60 * time.Second)
	decided = warned("swp", "StaleCopySweepFailed", "swp-0", at, 180*time.Second)
	cont("swp-0")
	tookSwp := converged("swp", 2)
	t.Logf("figure: stale-copy sweep of a stopped member: StaleCopySweepFailed %s after SIGSTOP; other cluster converged meanwhile in %s; converged %s after SIGCONT",
		decided.Round(100*time.Millisecond), otherTook.Round(100*time.Millisecond), tookSwp.Round(100*time.Millisecond))

	if !op.running() {
		t.Fatalf("the operator exited (code %d)", op.exitCode())
	}
}
