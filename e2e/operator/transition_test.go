// Warm transitions with real memcached: a cluster in spec.transition.mode Warm scaled 2 -> 3 and
// back to 2. Every published version is watched: the phases come in order (prepare, copy,
// switch, finalize, then the stable ring), each once, with the rings the contract says. The keys
// that move are on their new owner before clients read it there (copied, not cold): after the
// scale-up the new pod holds the moved keys' values, and the old owners no longer hold them
// (finalize cleaned them); after the scale-down the values written on the leaving pod are back
// on their owners, never the older copies those held before the scale-up.
package operator

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/watch"
)

// publishedVersions records every endpoints.json version the API server hands out, from a watch
// of the ConfigMap (a poll could miss a version that lived a few milliseconds).
type publishedVersions struct {
	mu   sync.Mutex
	seen []endpoints
}

func (e *env) watchPublished(ctx context.Context, name string) *publishedVersions {
	e.t.Helper()
	w, err := e.kube.CoreV1().ConfigMaps(e.ns).Watch(ctx, metav1.ListOptions{FieldSelector: "metadata.name=" + name})
	if err != nil {
		e.t.Fatalf("watch configmap %s: %v", name, err)
	}
	p := &publishedVersions{}
	go func() {
		defer w.Stop()
		for ev := range w.ResultChan() {
			cm, ok := ev.Object.(*corev1.ConfigMap)
			if !ok || (ev.Type != watch.Added && ev.Type != watch.Modified) {
				continue
			}
			var ep endpoints
			if json.Unmarshal([]byte(cm.Data["endpoints.json"]), &ep) != nil {
				continue
			}
			p.mu.Lock()
			if n := len(p.seen); n == 0 || p.seen[n-1].Version != ep.Version {
				p.seen = append(p.seen, ep)
			}
			p.mu.Unlock()
		}
	}()
	return p
}

func (p *publishedVersions) since(version int64) []endpoints {
	p.mu.Lock()
	defer p.mu.Unlock()
	var out []endpoints
	for _, ep := range p.seen {
		if ep.Version > version {
			out = append(out, ep)
		}
	}
	return out
}

// upTo waits until the watch has delivered `version` (a GET can see a version before the
// watch event for it arrives).
func (p *publishedVersions) upTo(t *testing.T, version int64) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		p.mu.Lock()
		n := len(p.seen)
		seen := n > 0 && p.seen[n-1].Version >= version
		p.mu.Unlock()
		if seen {
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("the ConfigMap watch did not deliver version %d within 10s", version)
}

func phasesOf(eps []endpoints) []string {
	var out []string
	for _, ep := range eps {
		ph := ep.Phase
		if ph == "" {
			ph = "stable"
		}
		out = append(out, fmt.Sprintf("%s%v", ph, ep.Names()))
	}
	return out
}

// checkPhases asserts the versions after `from` walk prepare, copy, switch, finalize, stable
// from the ring `a` to the ring `b`, each version one higher than the one before.
func checkPhases(t *testing.T, eps []endpoints, from int64, a, b []string) {
	t.Helper()
	want := []string{
		fmt.Sprintf("prepare%v", a), fmt.Sprintf("copy%v", a), fmt.Sprintf("switch%v", b),
		fmt.Sprintf("finalize%v", b), fmt.Sprintf("stable%v", b),
	}
	got := phasesOf(eps)
	if !slices.Equal(got, want) {
		t.Fatalf("published after version %d: %v; want %v", from, got, want)
	}
	for i, ep := range eps {
		if ep.Version != from+int64(i)+1 {
			t.Errorf("version %d published as #%d after %d: versions must rise by one", ep.Version, i+1, from)
		}
		switch ep.Phase {
		case "prepare", "copy":
			if ep.Next == nil || !slices.Equal(ep.Next.Names(), b) || ep.Previous != nil {
				t.Errorf("%s: next %v, previous %v; want next %v and no previous", ep.Phase, ep.Next, ep.Previous, b)
			}
		case "switch":
			if ep.Previous == nil || !slices.Equal(ep.Previous.Names(), a) || ep.Next != nil {
				t.Errorf("switch: previous %v, next %v; want previous %v", ep.Previous, ep.Next, a)
			}
		default:
			if ep.Next != nil || ep.Previous != nil {
				t.Errorf("%q: next %v, previous %v; want neither", ep.Phase, ep.Next, ep.Previous)
			}
		}
	}
}

// waitStable waits until the endpoints ConfigMap publishes n servers and no transition phase
// (a Warm cluster's members join through transitions too); it returns the endpoints and the
// endpoints.json text.
func (e *env) waitStable(n int, timeout time.Duration) (endpoints, string) {
	e.t.Helper()
	var ep endpoints
	var text string
	e.waitFor(timeout, fmt.Sprintf("the stable ring of %d published", n), func() (bool, error) {
		got, cm, ok := e.endpointsOf(cmName)
		if !ok {
			return false, fmt.Errorf("no ConfigMap")
		}
		ep, text = got, cm.Data["endpoints.json"]
		return len(ep.Servers) == n && ep.Phase == "", fmt.Errorf("published %s%v", ep.Phase, ep.Names())
	})
	return ep, text
}

// warmCluster creates the 2-member Warm cluster the tests below start from (propagationSeconds
// and windowSeconds given, `extra` spec lines before the drain), waits for its stable ring and
// starts watching its endpoints ConfigMap; the watch ends with the test.
func (e *env) warmCluster(propagation, window int, extra string) (endpoints, string, *publishedVersions) {
	e.t.Helper()
	e.createCluster(clusterName, fmt.Sprintf("  replicas: 2\n%s  drain:\n    minSeconds: %d\n    timeoutSeconds: 60\n"+
		"  transition:\n    mode: Warm\n    propagationSeconds: %d\n    windowSeconds: %d\n", extra, minSeconds, propagation, window))
	e.waitAvailable(clusterName, 90*time.Second)
	ep, text := e.waitStable(2, 90*time.Second)
	ctx, cancel := context.WithCancel(context.Background())
	e.t.Cleanup(cancel)
	return ep, text, e.watchPublished(ctx, cmName)
}

func TestWarmTransitionsWalkThePhasesAndMoveKeysWarm(t *testing.T) {
	bin := clientconfigBinary(t)
	e := newEnv(t)
	e.startOperator()
	ep2, text2, published := e.warmCluster(2, 3, "")

	var keys []string
	for i := 0; i < 400; i++ {
		keys = append(keys, fmt.Sprintf("session:%d", i))
	}
	first := owners(t, bin, text2, keys)
	for _, k := range keys {
		mcSet(t, first[k].addr, k, "v1")
	}

	// 2 -> 3.
	started := time.Now()
	e.kubectlOK("scale", "mcc/"+clusterName, "--replicas=3")
	ep3, text3 := e.waitStable(3, 120*time.Second)
	published.upTo(t, ep3.Version)
	t.Logf("figure: kubectl scale 2 -> 3 (Warm, propagation 2 s, window 3 s) -> stable ring of 3 in %s", time.Since(started).Round(100*time.Millisecond))
	up := published.since(ep2.Version)
	checkPhases(t, up, ep2.Version, []string{"cache-0", "cache-1"}, []string{"cache-0", "cache-1", "cache-2"})

	second := owners(t, bin, text3, keys)
	var moved []string
	for _, k := range keys {
		if second[k].name == first[k].name {
			if v, hit := mcGet(t, second[k].addr, k); !hit || v != "v1" {
				t.Errorf("%s stayed on %s but reads %q, %v", k, second[k].name, v, hit)
			}
			continue
		}
		moved = append(moved, k)
		// Warm: the new owner holds the value before any client wrote it there.
		if v, hit := mcGet(t, second[k].addr, k); !hit || v != "v1" {
			t.Errorf("%s moved to %s: %q, %v; want the copied v1", k, second[k].name, v, hit)
		}
		// Finalize cleaned the old owner.
		if v, hit := mcGet(t, first[k].addr, k); hit {
			t.Errorf("%s: its old owner %s still holds %q after the transition", k, first[k].name, v)
		}
		mcSet(t, second[k].addr, k, "v2")
	}
	if len(moved) == 0 {
		t.Fatalf("no key of %d moved to cache-2", len(keys))
	}
	t.Logf("%d of %d keys moved to cache-2, all warm", len(moved), len(keys))
	if raw, ok := e.mcc(clusterName).Object["status"].(map[string]any)["transition"]; ok {
		t.Errorf("status.transition after the transition: %v", raw)
	}

	// 3 -> 2: the moved keys go back to their first owners with the values written on cache-2.
	last := up[len(up)-1].Version
	started = time.Now()
	e.kubectlOK("scale", "mcc/"+clusterName, "--replicas=2")
	epBack, textBack := e.waitStable(2, 120*time.Second)
	published.upTo(t, epBack.Version)
	t.Logf("figure: kubectl scale 3 -> 2 (Warm) -> stable ring of 2 in %s", time.Since(started).Round(100*time.Millisecond))
	down := published.since(last)
	checkPhases(t, down, last, []string{"cache-0", "cache-1", "cache-2"}, []string{"cache-0", "cache-1"})
	back := owners(t, bin, textBack, keys)
	for _, k := range moved {
		if back[k] != first[k] {
			t.Fatalf("%s: owner %v after the scale-down, %v before the scale-up", k, back[k], first[k])
		}
		if v, hit := mcGet(t, back[k].addr, k); !hit || v != "v2" {
			t.Errorf("%s back on %s: %q, %v; want v2 (copied from cache-2), never v1", k, back[k].name, v, hit)
		}
	}
	for _, reason := range []string{"TransitionStarted", "WarmCopyFinished", "TransitionCompleted"} {
		if n := len(e.eventsWithReason(clusterName, reason)); n != 2 {
			t.Errorf("%d %s events, want 2", n, reason)
		}
	}
	if n := len(e.eventsWithReason(clusterName, "WarmCopyFailed")); n != 0 {
		t.Errorf("%d WarmCopyFailed events", n)
	}
	// The drain waits for the transition, then lowers the StatefulSet.
	e.waitFor(60*time.Second, "StatefulSet lowered to 2", func() (bool, error) {
		return e.stsReplicas(clusterName) == 2, nil
	})
	if got := strings.Join(phasesOf(published.since(down[len(down)-1].Version)), " "); got != "" {
		t.Errorf("versions published after the transition: %s", got)
	}
}

// A template change of a Warm cluster restarts one member at a time, each after its keys moved
// to the other members and before they move back: every key written before the update is still
// a hit with its value afterwards, though every memcached process was replaced.
func TestWarmRollingUpdateKeepsEveryKey(t *testing.T) {
	bin := clientconfigBinary(t)
	e := newEnv(t)
	e.startOperator()
	ep2, text2, published := e.warmCluster(2, 2, "  memcached:\n    memoryMB: 64\n")
	podUIDs := map[string]string{}
	for _, n := range []string{"cache-0", "cache-1"} {
		p, ok := e.pod(n)
		if !ok {
			t.Fatalf("pod %s not found", n)
		}
		podUIDs[n] = string(p.UID)
	}

	var keys []string
	for i := 0; i < 400; i++ {
		keys = append(keys, fmt.Sprintf("cart:%d", i))
	}
	own := owners(t, bin, text2, keys)
	for _, k := range keys {
		mcSet(t, own[k].addr, k, "v1")
	}

	started := time.Now()
	e.kubectlOK("patch", "mcc/"+clusterName, "--type=merge", "-p", `{"spec":{"memcached":{"memoryMB":80}}}`)
	var textAfter string
	var versionAfter int64
	e.waitFor(240*time.Second, "both members restarted and the stable ring of 2 published", func() (bool, error) {
		for n, uid := range podUIDs {
			p, ok := e.pod(n)
			if !ok || string(p.UID) == uid || p.DeletionTimestamp != nil {
				return false, fmt.Errorf("%s not replaced yet", n)
			}
		}
		st := e.mcc(clusterName).Object["status"].(map[string]any)
		if st["rollout"] != nil || st["transition"] != nil {
			return false, fmt.Errorf("rollout %v, transition %v", st["rollout"] != nil, st["transition"] != nil)
		}
		ep, cm, ok := e.endpointsOf(cmName)
		if !ok {
			return false, fmt.Errorf("no ConfigMap")
		}
		textAfter, versionAfter = cm.Data["endpoints.json"], ep.Version
		return len(ep.Servers) == 2 && ep.Phase == "", fmt.Errorf("published %s%v", ep.Phase, ep.Names())
	})
	published.upTo(t, versionAfter)
	t.Logf("figure: Warm rolling update of 2 members (propagation 2 s, window 2 s) in %s", time.Since(started).Round(100*time.Millisecond))
	t.Logf("published: %s", strings.Join(phasesOf(published.since(ep2.Version)), " "))

	// Each member: out (a transition to the ring without it) and back (one to the ring with it).
	var rings []string
	for _, ep := range published.since(ep2.Version) {
		if ep.Phase == "" {
			rings = append(rings, fmt.Sprint(ep.Names()))
		}
	}
	if want := []string{"[cache-0]", "[cache-0 cache-1]", "[cache-1]", "[cache-0 cache-1]"}; !slices.Equal(rings, want) {
		t.Errorf("stable rings published during the update: %v; want %v", rings, want)
	}
	after := owners(t, bin, textAfter, keys)
	lost := 0
	for _, k := range keys {
		if v, hit := mcGet(t, after[k].addr, k); !hit || v != "v1" {
			lost++
			if lost <= 5 {
				t.Errorf("%s on %s after the update: %q, %v; want v1", k, after[k].name, v, hit)
			}
		}
	}
	t.Logf("%d of %d keys kept through the rolling update", len(keys)-lost, len(keys))
	// Done means done: an OnDelete StatefulSet never moves currentRevision on, which must not
	// leave Progressing claiming a rolling update.
	e.waitFor(20*time.Second, "Progressing False after the rolling update", func() (bool, error) {
		c := statusOf(e.mcc(clusterName)).condition("Progressing")
		return c.Status == "False", fmt.Errorf("Progressing %s %s: %s", c.Status, c.Reason, c.Message)
	})
	if n := len(e.eventsWithReason(clusterName, "MemberRestarted")); n != 2 {
		t.Errorf("%d MemberRestarted events, want 2", n)
	}
}

// The operator is killed (SIGKILL) as soon as each phase of a Warm 2 -> 3 is published, and a new
// one started: it resumes from status.transition, so every phase is still published once and in
// order, no version is skipped or repeated, and the moved keys are still copied.
func TestWarmTransitionResumesAfterAKillInEveryPhase(t *testing.T) {
	bin := clientconfigBinary(t)
	e := newEnv(t)
	op := e.startOperator()
	ep2, text2, published := e.warmCluster(3, 3, "")
	var keys []string
	for i := 0; i < 300; i++ {
		keys = append(keys, fmt.Sprintf("order:%d", i))
	}
	first := owners(t, bin, text2, keys)
	for _, k := range keys {
		mcSet(t, first[k].addr, k, "v1")
	}

	e.kubectlOK("scale", "mcc/"+clusterName, "--replicas=3")
	killed := map[string]bool{}
	deadline := time.Now().Add(120 * time.Second)
	for time.Now().Before(deadline) {
		eps := published.since(ep2.Version)
		if len(eps) > 0 {
			last := eps[len(eps)-1]
			if last.Phase == "" && len(last.Servers) == 3 {
				break
			}
			if last.Phase != "" && !killed[last.Phase] {
				killed[last.Phase] = true
				op.kill()
				t.Logf("killed the operator in phase %s (version %d)", last.Phase, last.Version)
				op = e.startOperator()
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	for _, ph := range []string{"prepare", "copy", "switch", "finalize"} {
		if !killed[ph] {
			t.Errorf("the operator was not killed in phase %s", ph)
		}
	}
	ep3, text3 := e.waitStable(3, 60*time.Second)
	published.upTo(t, ep3.Version)
	checkPhases(t, published.since(ep2.Version), ep2.Version, []string{"cache-0", "cache-1"}, []string{"cache-0", "cache-1", "cache-2"})
	second := owners(t, bin, text3, keys)
	moved, cold := 0, 0
	for _, k := range keys {
		if second[k].name == first[k].name {
			continue
		}
		moved++
		if v, hit := mcGet(t, second[k].addr, k); !hit {
			cold++
		} else if v != "v1" {
			t.Errorf("%s on %s: %q, want v1", k, second[k].name, v)
		}
	}
	t.Logf("%d keys moved to cache-2, %d of them cold after the kills", moved, cold)
	if moved == 0 || cold > 0 {
		t.Errorf("%d of %d moved keys were not copied", cold, moved)
	}
}

// A scale during a Warm transition waits for it: 2 -> 3 is in its prepare phase when
// spec.replicas becomes 4; the transition to 3 runs to its end and the one to 4 starts from there. Two transitions
// never interleave: every version published is a phase of one of them, in order.
func TestWarmScaleDuringATransitionIsQueued(t *testing.T) {
	e := newEnv(t)
	e.startOperator()
	ep2, _, published := e.warmCluster(2, 2, "")

	e.kubectlOK("scale", "mcc/"+clusterName, "--replicas=3")
	e.waitFor(60*time.Second, "the transition to 3 under way", func() (bool, error) {
		eps := published.since(ep2.Version)
		return len(eps) > 0 && eps[len(eps)-1].Phase == "prepare", fmt.Errorf("published %v", phasesOf(eps))
	})
	e.kubectlOK("scale", "mcc/"+clusterName, "--replicas=4")
	ep4, _ := e.waitStable(4, 120*time.Second)
	published.upTo(t, ep4.Version)

	got := phasesOf(published.since(ep2.Version))
	two, three, four := "[cache-0 cache-1]", "[cache-0 cache-1 cache-2]", "[cache-0 cache-1 cache-2 cache-3]"
	want := []string{"prepare" + two, "copy" + two, "switch" + three, "finalize" + three,
		"prepare" + three, "copy" + three, "switch" + four, "finalize" + four, "stable" + four}
	// The member may join only after the first transition ended: then its stable ring is
	// published in between.
	wantGap := append(append(append([]string{}, want[:4]...), "stable"+three), want[4:]...)
	if !slices.Equal(got, want) && !slices.Equal(got, wantGap) {
		t.Fatalf("published after version %d: %v; want %v (or with stable%s after the first)", ep2.Version, got, want, three)
	}
	for i, ep := range published.since(ep2.Version) {
		if ep.Version != ep2.Version+int64(i)+1 {
			t.Errorf("version %d published as #%d: versions must rise by one", ep.Version, i+1)
		}
		if ep.Phase == "prepare" || ep.Phase == "copy" {
			if ep.Next == nil || len(ep.Next.Servers) != len(ep.Servers)+1 {
				t.Errorf("%s of version %d: next %v beside %v; want one member more", ep.Phase, ep.Version, ep.Next, ep.Names())
			}
		}
	}
}
