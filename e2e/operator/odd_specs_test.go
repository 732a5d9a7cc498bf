// Valid but odd specs and hands on the operator's objects, against the real API server: the
// operator never crashes and each case ends in a condition that says what is going on.
//
//   - replicas 0: Available (ScaledToZero), nothing progressing, an empty list published;
//   - the StatefulSet edited by hand: replicas put back with the list untouched; the image put
//     back (the member may restart meanwhile, new versions, the same list);
//   - the endpoints ConfigMap deleted by hand, or its content replaced: put back with the same
//     list as the next version (one bump, never an old version), then quiet;
//   - replicas 1000 on a node that takes no pods: the pods stay Pending and the status says so
//     (Available False NoMembers, Progressing True WaitingForPods naming them), then scaled to 0.
//
// Covered elsewhere: a ConfigMap name taken by another object (ownership_test.go,
// TestNeverTakesOverObjectsItDoesNotControl), the version and labels of the ConfigMap edited by
// hand (TestPublishedVersionIsTheOperators).
package operator

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"memcached-operator/e2e/framework"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
)

// waitConditions waits until the cluster's status has each condition type at the given
// status and reason, for the current generation, and returns the status.
func (e *env) waitConditions(name string, timeout time.Duration, want map[string][2]string) clusterStatus {
	e.t.Helper()
	var s clusterStatus
	e.waitFor(timeout, fmt.Sprintf("MemcachedCluster %s conditions %v", name, want), func() (bool, error) {
		u := e.mcc(name)
		s = statusOf(u)
		for typ, sr := range want {
			c := s.condition(typ)
			if c.Status != sr[0] || c.Reason != sr[1] || c.ObservedGeneration != u.GetGeneration() {
				return false, fmt.Errorf("phase %q, %s=%+v", s.Phase, typ, c)
			}
		}
		return true, nil
	})
	return s
}

func TestOddSpecsEndInAClearCondition(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	op := e.startOperator()
	alive := func(when string) {
		t.Helper()
		if !op.running() {
			t.Fatalf("the operator exited %s (code %d):\n%s", when, op.exitCode(), op.logText())
		}
	}

	// --- replicas 0.
	e.createCluster("zero", "  replicas: 0\n")
	s := e.waitConditions("zero", 60*time.Second, map[string][2]string{
		"Available": {"True", "ScaledToZero"}, "Progressing": {"False", "Stable"}, "Degraded": {"False", "AsExpected"}})
	if s.Phase != "Available" {
		t.Errorf("replicas 0: phase %q, want Available", s.Phase)
	}
	e.waitFor(30*time.Second, "zero-endpoints published, empty", func() (bool, error) {
		ep, _, ok := e.endpointsOf("zero-endpoints")
		return ok && len(ep.Servers) == 0, fmt.Errorf("exists=%v servers %v", ok, ep.Names())
	})
	// No StatefulSet at all (-1) or one at 0: either way no pod.
	if n := e.stsReplicas("zero"); n > 0 {
		t.Errorf("replicas 0: StatefulSet has %d replicas", n)
	}
	alive("with replicas 0")

	// --- hands on a running cluster's objects.
	e.createCluster("hand", "  replicas: 1\n  drain: {minSeconds: 2, timeoutSeconds: 30}\n")
	e.waitAvailable("hand", 90*time.Second)
	var v int64
	e.waitFor(30*time.Second, "hand-0 published at the recorded version", func() (bool, error) {
		ep, _, _ := e.endpointsOf("hand-endpoints")
		v = ep.Version
		return len(ep.Servers) == 1 && v == statusOf(e.mcc("hand")).ConfigVersion, fmt.Errorf("published %v at %d", ep.Names(), v)
	})
	published, _, _ := e.endpointsOf("hand-endpoints")
	// samePublished fails the test if the list or its version moved: nothing the operator owns
	// changed in the spec, so nothing may be published.
	samePublished := func(what string) {
		t.Helper()
		ep, _, ok := e.endpointsOf("hand-endpoints")
		if ok && (ep.Version != v || strings.Join(ep.Names(), ",") != strings.Join(published.Names(), ",")) {
			t.Errorf("%s: published %v at version %d, want %v at %d", what, ep.Names(), ep.Version, published.Names(), v)
		}
	}

	// The StatefulSet scaled by hand: lowered back, the extra pods never published.
	if _, err := e.kube.AppsV1().StatefulSets(e.ns).Patch(ctx, "hand", types.MergePatchType,
		[]byte(`{"spec":{"replicas":3}}`), metav1.PatchOptions{}); err != nil {
		t.Fatal(err)
	}
	e.waitFor(30*time.Second, "StatefulSet replicas put back to 1", func() (bool, error) {
		samePublished("StatefulSet scaled to 3 by hand")
		return e.stsReplicas("hand") == 1, fmt.Errorf("replicas %d", e.stsReplicas("hand"))
	})
	// Its image changed by hand: put back (a JSON patch on the one container).
	if _, err := e.kube.AppsV1().StatefulSets(e.ns).Patch(ctx, "hand", types.JSONPatchType,
		[]byte(`[{"op":"replace","path":"/spec/template/spec/containers/0/image","value":"memcached:1.6.99"}]`),
		metav1.PatchOptions{}); err != nil {
		t.Fatal(err)
	}
	// The StatefulSet controller may roll hand-0 onto the edited template before the operator
	// puts it back: the member restarts (its state in the list changes, a new version each
	// time), but the list names hand-0 only and no version goes backwards.
	sameMembers := func(what string) {
		t.Helper()
		ep, _, ok := e.endpointsOf("hand-endpoints")
		if ok && (ep.Version < v || strings.Join(ep.Names(), ",") != strings.Join(published.Names(), ",")) {
			t.Errorf("%s: published %v at version %d, want %v at >= %d", what, ep.Names(), ep.Version, published.Names(), v)
		}
	}
	e.waitFor(30*time.Second, "StatefulSet image put back", func() (bool, error) {
		sameMembers("image edited by hand")
		sts, err := e.kube.AppsV1().StatefulSets(e.ns).Get(ctx, "hand", metav1.GetOptions{})
		if err != nil {
			return false, err
		}
		img := sts.Spec.Template.Spec.Containers[0].Image
		return img == "memcached:1.6.18", fmt.Errorf("image %q", img)
	})
	alive("after the StatefulSet was edited by hand")
	e.waitAvailable("hand", 60*time.Second)
	sameMembers("after the StatefulSet edits settled")
	e.waitFor(30*time.Second, "the list settled, status agreeing", func() (bool, error) {
		ep, _, _ := e.endpointsOf("hand-endpoints")
		st := statusOf(e.mcc("hand"))
		v = ep.Version
		return st.ConfigVersion == v && st.Phase == "Available", fmt.Errorf("published %d, status %d %s", v, st.ConfigVersion, st.Phase)
	})
	published, _, _ = e.endpointsOf("hand-endpoints")
	time.Sleep(3 * time.Second)
	samePublished("settled after the StatefulSet edits")

	// The ConfigMap deleted by hand: recreated with the same list. Not at the same version: the
	// operator keeps no copy of the content it published, only its version (status), so it
	// cannot prove the list unchanged and publishes it as the next version (never an old one).
	// republished checks that: one bump, the list unchanged, status agreeing, then quiet.
	republished := func(what string) {
		t.Helper()
		e.waitFor(30*time.Second, what, func() (bool, error) {
			ep, _, ok := e.endpointsOf("hand-endpoints")
			return ok && ep.Version > v, fmt.Errorf("exists=%v version %d", ok, ep.Version)
		})
		e.waitAvailable("hand", 60*time.Second)
		time.Sleep(3 * time.Second)
		ep, _, _ := e.endpointsOf("hand-endpoints")
		st := statusOf(e.mcc("hand"))
		if ep.Version != v+1 || st.ConfigVersion != v+1 || strings.Join(ep.Names(), ",") != strings.Join(published.Names(), ",") {
			t.Errorf("%s: published %v at version %d (status %d), want %v at %d", what, ep.Names(), ep.Version, st.ConfigVersion, published.Names(), v+1)
		}
		v = ep.Version
	}
	if err := e.kube.CoreV1().ConfigMaps(e.ns).Delete(ctx, "hand-endpoints", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	republished("ConfigMap deleted by hand is recreated")
	// Its content replaced by hand with something that is not an endpoints document.
	cm, err := e.kube.CoreV1().ConfigMaps(e.ns).Get(ctx, "hand-endpoints", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	cm.Data = map[string]string{"endpoints.json": "{}", "injected": "x"}
	if _, err := e.kube.CoreV1().ConfigMaps(e.ns).Update(ctx, cm, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	// endpoints.json is put back; the hand-added key stays (server-side apply removes only
	// fields the operator's field manager owns) and clients never read it.
	republished("ConfigMap content replaced by hand is put back")
	alive("after the ConfigMap was deleted and edited by hand")

	// --- replicas 1000 on the one node, which takes no new pods while NotReady (as a full node
	// would leave them Pending).
	if out, err := framework.ClusterCmd(t, "fault", "node-notready"); err != nil {
		t.Fatalf("node-notready: %v\n%s", err, out)
	}
	nodeBack := false
	defer func() {
		if !nodeBack {
			framework.ClusterCmd(t, "fault", "node-ready")
		}
	}()
	e.createCluster("many", "  replicas: 1000\n  memcached: {threads: 1, memoryMB: 8, maxItemSize: 1m, maxConnections: 64}\n")
	e.waitFor(120*time.Second, "1000 pods Pending", func() (bool, error) {
		pods, err := e.kube.CoreV1().Pods(e.ns).List(ctx, metav1.ListOptions{LabelSelector: "app.kubernetes.io/instance=many"})
		if err != nil {
			return false, err
		}
		pending := 0
		for _, p := range pods.Items {
			if p.Status.Phase == corev1.PodPending || p.Status.Phase == "" {
				pending++
			}
		}
		return pending == 1000, fmt.Errorf("%d pods, %d Pending", len(pods.Items), pending)
	})
	s = e.waitConditions("many", 60*time.Second, map[string][2]string{
		"Available": {"False", "NoMembers"}, "Progressing": {"True", "WaitingForPods"}})
	c := s.condition("Progressing")
	t.Logf("replicas 1000, pods Pending: phase %s, Progressing %s: %.300s (%d bytes)", s.Phase, c.Reason, c.Message, len(c.Message))
	if !strings.Contains(c.Message, "many-0") || !strings.Contains(c.Message, "become Ready") {
		t.Errorf("Progressing message does not say what it waits for: %.300s", c.Message)
	}
	alive("with 1000 pods Pending")
	// Scaled back to 0 before the node takes pods again, so 1000 memcacheds never start.
	e.kubectlOK("scale", "mcc/many", "--replicas=0")
	e.waitConditions("many", 120*time.Second, map[string][2]string{"Available": {"True", "ScaledToZero"}})
	e.waitFor(120*time.Second, "many's pods gone", func() (bool, error) {
		pods, err := e.kube.CoreV1().Pods(e.ns).List(ctx, metav1.ListOptions{LabelSelector: "app.kubernetes.io/instance=many"})
		return err == nil && len(pods.Items) == 0, fmt.Errorf("%d pods", len(pods.Items))
	})
	if out, err := framework.ClusterCmd(t, "fault", "node-ready"); err != nil {
		t.Fatalf("node-ready: %v\n%s", err, out)
	}
	nodeBack = true
	alive("at the end")
	if _, err := e.kube.CoreV1().ConfigMaps(e.ns).Get(ctx, "many-endpoints", metav1.GetOptions{}); apierrors.IsNotFound(err) {
		t.Errorf("many-endpoints was never published")
	}
}
