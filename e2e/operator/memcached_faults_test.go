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

func keys(m map[string]bool) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}
