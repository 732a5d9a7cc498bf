// What the operator must never do to objects it does not control, and what it must not let
// anyone else do to what it publishes, against the real API server and real memcached:
//
//   - a cluster naming a ConfigMap or a Service that already exists (an application's, another
//     cluster's, an orphan) reports a conflict and writes nothing, and deleting the cluster
//     leaves those objects alone;
//   - Kubernetes' own kube-root-ca.crt is refused at admission;
//   - a version edited by hand is put back, never adopted;
//   - a StatefulSet the API server rejects shows as Degraded with the API's message, once;
//   - a member that comes back from a cancelled drain does not serve its old values;
//   - a waiting drain does not rewrite status on every poll, and integer quantities do not
//     re-apply the StatefulSet on every pass.
package operator

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/watch"
)

// waitDegraded waits for Degraded=True with the given reason and returns the status.
func (e *env) waitDegraded(name, reason string, timeout time.Duration) clusterStatus {
	e.t.Helper()
	var s clusterStatus
	e.waitFor(timeout, "MemcachedCluster "+name+" Degraded "+reason, func() (bool, error) {
		s = statusOf(e.mcc(name))
		c := s.condition("Degraded")
		return c.Status == "True" && c.Reason == reason && s.Phase == "Degraded", fmt.Errorf("degraded=%+v", c)
	})
	return s
}

// eventCount sums the count of the Events with this reason about this object: the operator
// aggregates repeats into one Event, so a failure retried every few seconds shows as a count.
func (e *env) eventCount(object, reason string) int32 {
	var n int32
	for _, ev := range e.eventsWithReason(object, reason) {
		n += max(ev.Count, 1)
	}
	return n
}

// waitPublished waits until the endpoints ConfigMap cm lists n servers.
func (e *env) waitPublished(cm string, n int, what string) {
	e.t.Helper()
	e.waitFor(60*time.Second, what, func() (bool, error) {
		ep, _, _ := e.endpointsOf(cm)
		return len(ep.Servers) == n, fmt.Errorf("published %v", ep.Names())
	})
}

func (e *env) configMapRV(name string) string {
	e.t.Helper()
	cm, err := e.kube.CoreV1().ConfigMaps(e.ns).Get(context.Background(), name, metav1.GetOptions{})
	if err != nil {
		e.t.Fatalf("get configmap %s: %v", name, err)
	}
	return cm.ResourceVersion
}

func (e *env) deleteCluster(name string, policy metav1.DeletionPropagation) {
	e.t.Helper()
	err := e.dyn.Resource(mccGVR).Namespace(e.ns).Delete(context.Background(), name,
		metav1.DeleteOptions{PropagationPolicy: &policy})
	if err != nil {
		e.t.Fatalf("delete mcc %s: %v", name, err)
	}
	e.waitFor(60*time.Second, "MemcachedCluster "+name+" gone", func() (bool, error) {
		_, err := e.dyn.Resource(mccGVR).Namespace(e.ns).Get(context.Background(), name, metav1.GetOptions{})
		return apierrors.IsNotFound(err), err
	})
}

func TestNeverTakesOverObjectsItDoesNotControl(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	e.startOperator()

	// Kubernetes' own CA bundle cannot even be named.
	out, err := e.applyYAML("apiVersion: memcached.operator.io/v1alpha1\nkind: MemcachedCluster\nmetadata:\n  name: rootca\n" +
		"spec:\n  replicas: 1\n  clientConfig:\n    configMapName: kube-root-ca.crt\n")
	if err == nil || !strings.Contains(out, "kube-root-ca.crt is Kubernetes' own CA bundle") {
		t.Errorf("naming kube-root-ca.crt: err=%v, want a rejection naming it:\n%s", err, out)
	}

	// An application's ConfigMap.
	appCM := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "app-settings"}, Data: map[string]string{"db": "payments"}}
	if _, err := e.kube.CoreV1().ConfigMaps(e.ns).Create(ctx, appCM, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	// An application's Service with the name a cluster called "web" would give its client Service.
	appSvc := &corev1.Service{ObjectMeta: metav1.ObjectMeta{Name: "web-client"}, Spec: corev1.ServiceSpec{
		Selector: map[string]string{"app": "web"}, Ports: []corev1.ServicePort{{Port: 80}}}}
	if _, err := e.kube.CoreV1().Services(e.ns).Create(ctx, appSvc, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	cmRV := e.configMapRV("app-settings")

	e.createCluster("grabber", "  replicas: 1\n  clientConfig:\n    configMapName: app-settings\n")
	e.createCluster("web", "  replicas: 1\n")
	s := e.waitDegraded("grabber", "ConfigMapConflict", 60*time.Second)
	if c := s.condition("Degraded"); !strings.Contains(c.Message, "ConfigMap "+e.ns+"/app-settings already exists") {
		t.Errorf("Degraded message does not name the object: %q", c.Message)
	}
	e.waitDegraded("web", "ServiceConflict", 60*time.Second)

	// Settled: nothing rewritten, no event storm, no hot loop (the status stays put).
	grabberRV := e.mcc("grabber").GetResourceVersion()
	time.Sleep(8 * time.Second)
	if rv := e.configMapRV("app-settings"); rv != cmRV {
		t.Errorf("app-settings was written (resourceVersion %s -> %s)", cmRV, rv)
	}
	if rv := e.mcc("grabber").GetResourceVersion(); rv != grabberRV {
		t.Errorf("grabber's status keeps changing (resourceVersion %s -> %s)", grabberRV, rv)
	}
	if n := e.eventCount("grabber", "ConfigMapConflict"); n != 1 {
		t.Errorf("%d ConfigMapConflict events, want 1", n)
	}
	svc, err := e.kube.CoreV1().Services(e.ns).Get(ctx, "web-client", metav1.GetOptions{})
	if err != nil || svc.Spec.Selector["app"] != "web" || len(svc.OwnerReferences) != 0 {
		t.Errorf("web-client was taken over: %v %+v", err, svc)
	}
	if e.stsReplicas("grabber") != -1 || e.stsReplicas("web") != -1 {
		t.Errorf("a conflicted cluster created its StatefulSet")
	}

	// Deleting the clusters (the garbage collector runs) leaves the applications' objects.
	e.deleteCluster("grabber", metav1.DeletePropagationForeground)
	e.deleteCluster("web", metav1.DeletePropagationForeground)
	time.Sleep(3 * time.Second)
	if cm, err := e.kube.CoreV1().ConfigMaps(e.ns).Get(ctx, "app-settings", metav1.GetOptions{}); err != nil || cm.Data["db"] != "payments" {
		t.Errorf("app-settings after deleting the cluster: %v %+v", err, cm)
	}
	if _, err := e.kube.CoreV1().Services(e.ns).Get(ctx, "web-client", metav1.GetOptions{}); err != nil {
		t.Errorf("web-client after deleting the cluster: %v", err)
	}

	// Another cluster's ConfigMap: the first keeps publishing its own list, undisturbed.
	e.createCluster("first", "  replicas: 1\n")
	e.waitAvailable("first", 90*time.Second)
	// Status records a version before the ConfigMap carries it: read the list once published.
	e.waitPublished("first-endpoints", 1, "first's member published")
	firstEp, _, _ := e.endpointsOf("first-endpoints")
	e.createCluster("second", "  replicas: 1\n  clientConfig:\n    configMapName: first-endpoints\n")
	s = e.waitDegraded("second", "ConfigMapConflict", 60*time.Second)
	if c := s.condition("Degraded"); !strings.Contains(c.Message, "controlled by MemcachedCluster first") {
		t.Errorf("Degraded message does not name the owner: %q", c.Message)
	}
	time.Sleep(5 * time.Second)
	ep, _, _ := e.endpointsOf("first-endpoints")
	if ep.Version != firstEp.Version || ep.Cluster != e.ns+"/first" {
		t.Errorf("first-endpoints changed: version %d -> %d, cluster %q", firstEp.Version, ep.Version, ep.Cluster)
	}

	// An orphan left by `kubectl delete --cascade=orphan` is neither adopted nor lowered.
	e.deleteCluster("first", metav1.DeletePropagationOrphan)
	e.waitFor(30*time.Second, "orphaned StatefulSet without owner", func() (bool, error) {
		sts, err := e.kube.AppsV1().StatefulSets(e.ns).Get(ctx, "first", metav1.GetOptions{})
		return err == nil && len(sts.OwnerReferences) == 0, err
	})
	e.createCluster("first", "  replicas: 0\n")
	s = e.waitDegraded("first", "ServiceConflict", 60*time.Second)
	if c := s.condition("Degraded"); !strings.Contains(c.Message, "StatefulSet "+e.ns+"/first already exists") {
		t.Errorf("Degraded message does not name the orphaned StatefulSet: %q", c.Message)
	}
	time.Sleep(3 * time.Second)
	if n := e.stsReplicas("first"); n != 1 {
		t.Errorf("orphaned StatefulSet has %d replicas, want 1 (untouched)", n)
	}
}

func TestPublishedVersionIsTheOperators(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	e.startOperator()
	e.createCluster("ver", "  replicas: 1\n")
	e.waitAvailable("ver", 90*time.Second)
	// Status records a version before the ConfigMap carries it: wait until both agree.
	var v int64
	e.waitFor(30*time.Second, "one member published at the recorded version", func() (bool, error) {
		ep, _, _ := e.endpointsOf("ver-endpoints")
		v = ep.Version
		return len(ep.Servers) == 1 && v == statusOf(e.mcc("ver")).ConfigVersion, fmt.Errorf("published %v at %d", ep.Names(), v)
	})

	setVersion := func(to string) {
		t.Helper()
		cm, err := e.kube.CoreV1().ConfigMaps(e.ns).Get(ctx, "ver-endpoints", metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		old := fmt.Sprintf(`"version": %d,`, v)
		if !strings.Contains(cm.Data["endpoints.json"], old) {
			t.Fatalf("endpoints.json has no %q:\n%s", old, cm.Data["endpoints.json"])
		}
		cm.Data["endpoints.json"] = strings.Replace(cm.Data["endpoints.json"], old, `"version": `+to+",", 1)
		if _, err := e.kube.CoreV1().ConfigMaps(e.ns).Update(ctx, cm, metav1.UpdateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	restored := func(what string) {
		t.Helper()
		e.waitFor(30*time.Second, what, func() (bool, error) {
			ep, _, _ := e.endpointsOf("ver-endpoints")
			return ep.Version == v, fmt.Errorf("version %d, want %d", ep.Version, v)
		})
		time.Sleep(2 * time.Second)
		if got := statusOf(e.mcc("ver")).ConfigVersion; got != v {
			t.Errorf("%s: status.configVersion %d, want %d", what, got, v)
		}
		if ep, _, _ := e.endpointsOf("ver-endpoints"); ep.Version != v {
			t.Errorf("%s: version %d, want %d", what, ep.Version, v)
		}
	}
	setVersion("5")
	restored("version edited down to 5 is put back")
	setVersion("9223372036854775807")
	restored("version edited up to 2^63-1 is put back")

	// Labels removed by hand come back without a new version.
	patch := []byte(`{"metadata":{"labels":null}}`)
	if _, err := e.kube.CoreV1().ConfigMaps(e.ns).Patch(ctx, "ver-endpoints", types.MergePatchType, patch, metav1.PatchOptions{}); err != nil {
		t.Fatal(err)
	}
	e.waitFor(30*time.Second, "labels restored", func() (bool, error) {
		_, cm, _ := e.endpointsOf("ver-endpoints")
		return cm.Labels["app.kubernetes.io/managed-by"] == "memcached-operator", nil
	})
	if ep, _, _ := e.endpointsOf("ver-endpoints"); ep.Version != v {
		t.Errorf("restoring labels changed the version: %d, want %d", ep.Version, v)
	}
}

func TestRejectedStatefulSetIsDegradedOnce(t *testing.T) {
	e := newEnv(t)
	e.startOperator()
	// Accepted by the CRD (resources are passed through), refused by the API server for the
	// StatefulSet: requests above limits.
	e.createCluster("greedy", "  replicas: 1\n  resources:\n    requests:\n      cpu: \"2\"\n      memory: 128Mi\n    limits:\n      cpu: \"1\"\n      memory: 128Mi\n")
	s := e.waitDegraded("greedy", "ApplyFailed", 60*time.Second)
	if c := s.condition("Degraded"); !strings.Contains(c.Message, "StatefulSet") || !strings.Contains(c.Message, "must be less than or equal to cpu limit") {
		t.Errorf("Degraded message is not the API's: %q", c.Message)
	}
	time.Sleep(10 * time.Second) // the workqueue retries with backoff meanwhile
	if n := e.eventCount("greedy", "ApplyFailed"); n != 1 {
		t.Errorf("%d ApplyFailed events, want 1 (one per distinct failure)", n)
	}
	if n := e.eventCount("greedy", "ScalingUp"); n != 0 {
		t.Errorf("%d ScalingUp events for a StatefulSet that was never created", n)
	}
	if n := e.eventCount("greedy", "ReconcileError"); n != 0 {
		t.Errorf("%d ReconcileError events besides the ApplyFailed condition", n)
	}
	// Fixed by the user: Degraded clears.
	out, err := kubectl("patch", "mcc", "greedy", "-n", e.ns, "--type=merge", "-p", `{"spec":{"resources":{"requests":{"cpu":"1"}}}}`)
	if err != nil {
		t.Fatalf("kubectl patch: %v\n%s", err, out)
	}
	e.waitAvailable("greedy", 90*time.Second)
}

// A member that left the published list and comes back (the scale-down cancelled before the
// StatefulSet was lowered) must not serve what it held: clients overwrote its keys elsewhere.
func TestCancelledDrainDoesNotServeOldValues(t *testing.T) {
	bin := filepath.Join(repoRoot(t), "build", "bin", "clientconfig")
	if _, err := os.Stat(bin); err != nil {
		t.Fatalf("%s is not built (make build)", bin)
	}
	e := newEnv(t)
	e.startOperator()
	e.createCluster("back", "  replicas: 3\n  drain:\n    minSeconds: 300\n    timeoutSeconds: 600\n")
	e.waitAvailable("back", 90*time.Second)
	e.waitPublished("back-endpoints", 3, "three members published")
	ep3, cm3, _ := e.endpointsOf("back-endpoints")
	// Keys that back-2 owns in the ring of three, written there.
	var keys []string
	for i := 0; len(keys) < 20 && i < 2000; i++ {
		k := fmt.Sprintf("session:%d", i)
		if owners(t, bin, cm3.Data["endpoints.json"], []string{k})[k].name == "back-2" {
			keys = append(keys, k)
		}
	}
	addr2 := ep3.Servers[2].Address + ":11211"
	for _, k := range keys {
		mcSet(t, addr2, k, "old")
	}

	out, err := kubectl("scale", "mcc", "back", "-n", e.ns, "--replicas=2")
	if err != nil {
		t.Fatalf("kubectl scale: %v\n%s", err, out)
	}
	e.waitPublished("back-endpoints", 2, "back-2 unpublished")
	// Clients now write those keys to their new owners.
	_, cm2, _ := e.endpointsOf("back-endpoints")
	for k, o := range owners(t, bin, cm2.Data["endpoints.json"], keys) {
		mcSet(t, o.addr, k, "new")
	}
	out, err = kubectl("scale", "mcc", "back", "-n", e.ns, "--replicas=3")
	if err != nil {
		t.Fatalf("kubectl scale: %v\n%s", err, out)
	}
	e.waitPublished("back-endpoints", 3, "back-2 published again")
	// Routed by the ring of three again, the keys are on back-2: a miss is fine, "old" is not.
	stale := 0
	for _, k := range keys {
		if v, ok := mcGet(t, addr2, k); ok && v == "old" {
			stale++
		}
	}
	if stale > 0 {
		t.Errorf("back-2 served %d of %d keys with values overwritten while it was out of the list", stale, len(keys))
	}
	e.waitEvent("back", "MemberFlushed", 15*time.Second)
}

// A drain waiting for clients (minSeconds passed, a connection held) polls memcached every
// couple of seconds; none of those polls may rewrite status.
func TestWaitingDrainDoesNotRewriteStatus(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	e.startOperator()
	e.createCluster("poll", "  replicas: 2\n  drain:\n    minSeconds: 1\n    timeoutSeconds: 120\n")
	e.waitAvailable("poll", 90*time.Second)
	// Available means minimum availability: the second member may not be published yet.
	e.waitPublished("poll-endpoints", 2, "two members published")
	ep, _, _ := e.endpointsOf("poll-endpoints")
	conns := holdConnections(t, ep.Servers[1].Address+":11211", 2)
	defer closeAll(conns)
	out, err := kubectl("scale", "mcc", "poll", "-n", e.ns, "--replicas=1")
	if err != nil {
		t.Fatalf("kubectl scale: %v\n%s", err, out)
	}
	e.waitFor(30*time.Second, "waiting for clients", func() (bool, error) {
		c := statusOf(e.mcc("poll")).condition("Progressing")
		return strings.Contains(c.Message, "waiting for clients to leave poll-1"), fmt.Errorf("%+v", c)
	})
	w, err := e.dyn.Resource(mccGVR).Namespace(e.ns).Watch(ctx, metav1.ListOptions{
		FieldSelector: "metadata.name=poll", ResourceVersion: e.mcc("poll").GetResourceVersion()})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Stop()
	updates := 0
	deadline := time.After(15 * time.Second)
loop:
	for {
		select {
		case ev := <-w.ResultChan():
			if ev.Type == watch.Modified {
				updates++
				b, _ := json.Marshal(ev.Object)
				t.Logf("status update during the wait: %.300s", b)
			}
		case <-deadline:
			break loop
		}
	}
	if updates > 0 {
		t.Errorf("%d status writes in 15 s of waiting for clients, want 0", updates)
	}
	if n := e.stsReplicas("poll"); n != 2 {
		t.Errorf("StatefulSet lowered to %d while clients are connected", n)
	}
}

// `cpu: 1` is a number in the spec and "1" on the API server; comparing them as text made every
// pass re-apply the StatefulSet.
func TestIntegerQuantitiesDoNotReapply(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	port := freePort(t)
	e.startOperator(fmt.Sprintf("--metrics-bind-address=127.0.0.1:%d", port))
	url := fmt.Sprintf("http://127.0.0.1:%d/metrics", port)
	e.createCluster("ints", "  replicas: 1\n  resources:\n    requests:\n      cpu: 1\n      memory: 128Mi\n    limits:\n      cpu: 2\n      memory: 128Mi\n")
	e.waitAvailable("ints", 90*time.Second)
	time.Sleep(2 * time.Second)
	before := writes(apiRequests(t, url))
	// Wake the reconciler a few times without changing the spec.
	for i := 0; i < 5; i++ {
		patch := fmt.Sprintf(`{"metadata":{"annotations":{"test/nudge":"%d"}}}`, i)
		if _, err := e.dyn.Resource(mccGVR).Namespace(e.ns).Patch(ctx, "ints", types.MergePatchType, []byte(patch), metav1.PatchOptions{}); err != nil {
			t.Fatal(err)
		}
		time.Sleep(500 * time.Millisecond)
	}
	time.Sleep(2 * time.Second)
	if after := writes(apiRequests(t, url)); after != before {
		t.Errorf("%v API writes while nothing changed, want 0", after-before)
	}
}

// An operator restarted in the middle of a scale-down resumes it from status: the events that
// describe the decision (ScalingDown, DrainStarted) are recorded once, not again by the new
// process. Counted over every Event object (a repeat after a restart is a new object, since the
// old process's aggregation is gone).
func TestRestartMidDrainRecordsEachEventOnce(t *testing.T) {
	e := newEnv(t)
	op := e.startOperator()
	e.createCluster("again", "  replicas: 2\n  drain:\n    minSeconds: 1\n    timeoutSeconds: 120\n")
	e.waitAvailable("again", 90*time.Second)
	e.waitPublished("again-endpoints", 2, "two members published")
	ep, _, _ := e.endpointsOf("again-endpoints")
	conns := holdConnections(t, ep.Servers[1].Address+":11211", 2)
	out, err := kubectl("scale", "mcc", "again", "-n", e.ns, "--replicas=1")
	if err != nil {
		t.Fatalf("kubectl scale: %v\n%s", err, out)
	}
	e.waitFor(30*time.Second, "waiting for clients", func() (bool, error) {
		c := statusOf(e.mcc("again")).condition("Progressing")
		return strings.Contains(c.Message, "waiting for clients to leave again-1"), fmt.Errorf("%+v", c)
	})
	for i := 0; i < 2; i++ {
		op.kill()
		op = e.startOperator()
		time.Sleep(3 * time.Second)
	}
	closeAll(conns)
	e.waitFor(60*time.Second, "StatefulSet lowered", func() (bool, error) {
		return e.stsReplicas("again") == 1, nil
	})
	time.Sleep(2 * time.Second)
	for reason, want := range map[string]int32{"DrainStarted": 1, "ScalingDown": 2, "DrainCompleted": 1} {
		if n := e.eventCount("again", reason); n != want {
			for _, ev := range e.eventsWithReason("again", reason) {
				t.Logf("%s x%d: %s", ev.Reason, ev.Count, ev.Message)
			}
			t.Errorf("%d %s events, want %d", n, reason, want)
		}
	}
}
