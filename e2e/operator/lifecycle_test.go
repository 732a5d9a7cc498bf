// The life of one MemcachedCluster under the real operator binary: create (Available, children
// owned and labelled), kubectl scale up (new member published in ordinal order, one version),
// a quiet steady state, kubectl scale down with clients holding connections to the outgoing pod
// (unpublished first, deleted only after the clients leave, the operator killed and restarted
// in between), a drain that times out, and deletion (children garbage-collected).
package operator

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"slices"
	"strings"
	"testing"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"memcached-operator/e2e/framework"
)

const (
	clusterName = "cache"
	cmName      = clusterName + "-endpoints"
	minSeconds  = 3
)

// holdConnections opens n client connections to a memcached and checks each is served.
func holdConnections(t *testing.T, addr string, n int) []net.Conn {
	t.Helper()
	var conns []net.Conn
	for i := 0; i < n; i++ {
		c, err := net.DialTimeout("tcp", addr, 3*time.Second)
		if err != nil {
			t.Fatalf("connecting to %s: %v", addr, err)
		}
		_ = c.SetDeadline(time.Now().Add(3 * time.Second))
		if _, err := c.Write([]byte("version\r\n")); err != nil {
			t.Fatalf("write to %s: %v", addr, err)
		}
		line, err := bufio.NewReader(c).ReadString('\n')
		if err != nil || !strings.HasPrefix(line, "VERSION") {
			t.Fatalf("memcached at %s answered %q, %v", addr, line, err)
		}
		_ = c.SetDeadline(time.Time{})
		conns = append(conns, c)
	}
	return conns
}

func closeAll(conns []net.Conn) {
	for _, c := range conns {
		_ = c.Close()
	}
}

// resourceVersions of everything the operator owns or writes in the namespace.
func (e *env) resourceVersions() map[string]string {
	e.t.Helper()
	ctx := context.Background()
	out := map[string]string{}
	u := e.mcc(clusterName)
	out["mcc/"+u.GetName()] = u.GetResourceVersion()
	sts, err := e.kube.AppsV1().StatefulSets(e.ns).List(ctx, metav1.ListOptions{})
	if err != nil {
		e.t.Fatal(err)
	}
	for _, o := range sts.Items {
		out["sts/"+o.Name] = o.ResourceVersion
	}
	svcs, _ := e.kube.CoreV1().Services(e.ns).List(ctx, metav1.ListOptions{})
	for _, o := range svcs.Items {
		out["svc/"+o.Name] = o.ResourceVersion
	}
	cms, _ := e.kube.CoreV1().ConfigMaps(e.ns).List(ctx, metav1.ListOptions{})
	for _, o := range cms.Items {
		out["cm/"+o.Name] = o.ResourceVersion
	}
	pdbs, _ := e.kube.PolicyV1().PodDisruptionBudgets(e.ns).List(ctx, metav1.ListOptions{})
	for _, o := range pdbs.Items {
		out["pdb/"+o.Name] = o.ResourceVersion
	}
	evs, _ := e.kube.CoreV1().Events(e.ns).List(ctx, metav1.ListOptions{})
	for _, o := range evs.Items {
		if o.Source.Component == "memcached-operator" || o.ReportingController == "memcached-operator" {
			out["event/"+o.Name] = o.ResourceVersion
		}
	}
	return out
}

func TestClusterLifecycle(t *testing.T) {
	e := newEnv(t)
	op := e.startOperator()
	ctx := context.Background()

	// --- create: 2 replicas -> Available, children owned and labelled.
	start := time.Now()
	e.createCluster(clusterName, fmt.Sprintf("  replicas: 2\n  drain:\n    minSeconds: %d\n    timeoutSeconds: 120\n", minSeconds))
	s := e.waitAvailable(clusterName, 90*time.Second)
	// Available is minimum availability: the second member may still be joining.
	e.waitServers(2, 60*time.Second)
	s = statusOf(e.mcc(clusterName))
	t.Logf("figure: create -> Available with 2 members in %s", time.Since(start).Round(10*time.Millisecond))
	ep, cm, ok := e.endpointsOf(cmName)
	if !ok {
		t.Fatalf("no ConfigMap %s", cmName)
	}
	if got := ep.Names(); !slices.Equal(got, []string{"cache-0", "cache-1"}) {
		t.Fatalf("published %v, want [cache-0 cache-1]", got)
	}
	if ep.Schema != "memcached.operator.io/endpoints/v1" || ep.Cluster != e.ns+"/"+clusterName ||
		ep.Hashing != "ketama-libmemcached" || ep.Version != s.ConfigVersion {
		t.Errorf("endpoints.json header: %+v (status.configVersion %d)", ep, s.ConfigVersion)
	}
	for i, srv := range ep.Servers {
		want := fmt.Sprintf("cache-%d.cache.%s.svc.cluster.local", i, e.ns)
		if srv.Host != want || srv.Port != 11211 || srv.State != "active" || srv.Address == "" {
			t.Errorf("server %d: %+v, want host %s port 11211 active with an address", i, srv, want)
		}
		if v, err := versionOf(fmt.Sprintf("%s:%d", srv.Address, srv.Port)); err != nil {
			t.Errorf("memcached %s at %s: %v", srv.Name, srv.Address, err)
		} else if i == 0 {
			t.Logf("memcached %s answers version %s", srv.Name, v)
		}
	}
	if !strings.Contains(cm.Data["libmemcached.conf"], "--SERVER=cache-1.cache."+e.ns+".svc.cluster.local:11211/?1") ||
		!strings.Contains(cm.Data["libmemcached.conf"], "MEMCACHED_BEHAVIOR_KETAMA_WEIGHTED") {
		t.Errorf("libmemcached.conf:\n%s", cm.Data["libmemcached.conf"])
	}
	if want := fmt.Sprintf("cache-0.cache.%s.svc.cluster.local:11211\ncache-1.cache.%[1]s.svc.cluster.local:11211\n", e.ns); cm.Data["servers"] != want {
		t.Errorf("servers = %q, want %q", cm.Data["servers"], want)
	}
	if s.Selector == "" || s.ReadyReplicas != 2 || s.ObservedGeneration != e.mcc(clusterName).GetGeneration() {
		t.Errorf("status: %+v", s)
	}
	uid := e.mcc(clusterName).GetUID()
	checkOwned := func(kind, name string, refs []metav1.OwnerReference, labels map[string]string) {
		t.Helper()
		if len(refs) != 1 || refs[0].UID != uid || refs[0].Controller == nil || !*refs[0].Controller ||
			refs[0].BlockOwnerDeletion == nil || !*refs[0].BlockOwnerDeletion {
			t.Errorf("%s %s: ownerReferences %+v", kind, name, refs)
		}
		if labels["app.kubernetes.io/managed-by"] != "memcached-operator" || labels["memcached.operator.io/cluster"] != clusterName {
			t.Errorf("%s %s: labels %v", kind, name, labels)
		}
	}
	sts, err := e.kube.AppsV1().StatefulSets(e.ns).Get(ctx, clusterName, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	checkOwned("StatefulSet", sts.Name, sts.OwnerReferences, sts.Labels)
	for _, name := range []string{clusterName, clusterName + "-client"} {
		svc, err := e.kube.CoreV1().Services(e.ns).Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		checkOwned("Service", name, svc.OwnerReferences, svc.Labels)
	}
	pdb, err := e.kube.PolicyV1().PodDisruptionBudgets(e.ns).Get(ctx, clusterName, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	checkOwned("PodDisruptionBudget", pdb.Name, pdb.OwnerReferences, pdb.Labels)
	checkOwned("ConfigMap", cm.Name, cm.OwnerReferences, cm.Labels)
	if out := e.kubectlOK("get", "mcc", clusterName); !strings.Contains(out, "Available") {
		t.Errorf("kubectl get mcc:\n%s", out)
	} else {
		t.Logf("kubectl get mcc:\n%s", out)
	}

	// --- kubectl scale up: the StatefulSet at once, the new member once Ready, one new version.
	v0 := ep.Version
	e.kubectlOK("scale", "mcc/"+clusterName, "--replicas=3")
	e.waitFor(20*time.Second, "StatefulSet scaled to 3", func() (bool, error) {
		return e.stsReplicas(clusterName) == 3, nil
	})
	var readyAt time.Time
	e.waitFor(60*time.Second, "cache-2 Ready", func() (bool, error) {
		p, ok := e.pod("cache-2")
		if ok && framework.PodReady(p) {
			readyAt = time.Now()
			return true, nil
		}
		return false, nil
	})
	e.waitFor(30*time.Second, "3 servers published", func() (bool, error) {
		ep, _, _ = e.endpointsOf(cmName)
		return len(ep.Servers) == 3, fmt.Errorf("published %v", ep.Names())
	})
	t.Logf("figure: scale-up, pod Ready -> ConfigMap version %d in %s (polled every 100ms)", ep.Version, time.Since(readyAt).Round(10*time.Millisecond))
	if got := ep.Names(); !slices.Equal(got, []string{"cache-0", "cache-1", "cache-2"}) {
		t.Fatalf("published %v, want ordinal order", got)
	}
	if ep.Version != v0+1 {
		t.Errorf("version %d after scale-up, want %d", ep.Version, v0+1)
	}
	s = e.waitAvailable(clusterName, 30*time.Second)
	if s.Replicas != 3 || s.ReadyReplicas != 3 {
		t.Errorf("status replicas=%d ready=%d", s.Replicas, s.ReadyReplicas)
	}
	e.waitEvent(clusterName, "ScalingUp", 15*time.Second)
	e.waitEvent(clusterName, "EndpointsPublished", 15*time.Second)

	// --- steady state: nothing is written for 30 s.
	time.Sleep(3 * time.Second) // let the last status write and events settle
	before := e.resourceVersions()
	time.Sleep(30 * time.Second)
	after := e.resourceVersions()
	for k, v := range after {
		if before[k] != v {
			t.Errorf("steady state: %s changed resourceVersion %s -> %s", k, before[k], v)
		}
	}
	for k := range before {
		if _, ok := after[k]; !ok {
			t.Errorf("steady state: %s disappeared", k)
		}
	}
	t.Logf("figure: steady state 30 s: %d objects, resourceVersions unchanged: %v", len(after), !t.Failed())

	// --- kubectl scale down with clients on the outgoing pod.
	ep, _, _ = e.endpointsOf(cmName)
	v1 := ep.Version
	outgoing := ep.Servers[2]
	conns := holdConnections(t, fmt.Sprintf("%s:%d", outgoing.Address, outgoing.Port), 3)
	defer closeAll(conns)
	scaled := time.Now()
	e.kubectlOK("scale", "mcc/"+clusterName, "--replicas=2")
	e.waitFor(20*time.Second, "cache-2 unpublished", func() (bool, error) {
		ep, _, _ = e.endpointsOf(cmName)
		return len(ep.Servers) == 2, fmt.Errorf("published %v", ep.Names())
	})
	t.Logf("figure: kubectl scale (down) -> ConfigMap version %d in %s (no pod start involved)", ep.Version, time.Since(scaled).Round(10*time.Millisecond))
	if ep.Version != v1+1 || !slices.Equal(ep.Names(), []string{"cache-0", "cache-1"}) {
		t.Errorf("after scale-down: version %d (want %d), %v", ep.Version, v1+1, ep.Names())
	}
	if p, ok := e.pod("cache-2"); !ok || p.DeletionTimestamp != nil {
		t.Fatalf("cache-2 was deleted before (or as) it was unpublished")
	}
	s = statusOf(e.mcc(clusterName))
	if s.Drain == nil || s.Drain.TargetReplicas != 2 || !slices.Equal(s.Drain.Members, []string{"cache-2"}) {
		t.Fatalf("status.drain = %+v", s.Drain)
	}

	// Past minSeconds with clients still connected: the pod stays.
	time.Sleep((minSeconds + 3) * time.Second)
	if p, ok := e.pod("cache-2"); !ok || p.DeletionTimestamp != nil {
		t.Fatalf("cache-2 deleted while 3 clients were still connected")
	}
	if r := e.stsReplicas(clusterName); r != 3 {
		t.Fatalf("StatefulSet replicas %d while draining, want 3", r)
	}
	s = statusOf(e.mcc(clusterName))
	if c := s.condition("Progressing"); c.Reason != "Draining" || !strings.Contains(c.Message, "cache-2") {
		t.Errorf("Progressing during drain: %+v", c)
	} else {
		t.Logf("Progressing: %s: %s", c.Reason, c.Message)
	}
	publishedAt := s.Drain.PublishedAt
	if publishedAt == "" {
		t.Errorf("status.drain.publishedAt is empty after the ConfigMap changed")
	}

	// The operator crashes mid-drain and comes back: it resumes from status.
	op.kill()
	op = e.startOperator()
	time.Sleep(3 * time.Second)
	if p, ok := e.pod("cache-2"); !ok || p.DeletionTimestamp != nil {
		t.Fatalf("cache-2 deleted after the operator restarted, with clients still connected")
	}
	s = statusOf(e.mcc(clusterName))
	if s.Drain == nil || s.Drain.PublishedAt != publishedAt {
		t.Fatalf("after restart status.drain = %+v, want publishedAt %s kept", s.Drain, publishedAt)
	}

	// The clients leave: now the pod goes.
	closeAll(conns)
	closed := time.Now()
	e.waitFor(30*time.Second, "StatefulSet scaled to 2", func() (bool, error) {
		return e.stsReplicas(clusterName) == 2, nil
	})
	e.waitFor(60*time.Second, "cache-2 gone", func() (bool, error) {
		_, ok := e.pod("cache-2")
		return !ok, nil
	})
	t.Logf("figure: clients closed -> StatefulSet lowered and cache-2 gone in %s", time.Since(closed).Round(10*time.Millisecond))
	e.waitFor(20*time.Second, "drain cleared", func() (bool, error) {
		s = statusOf(e.mcc(clusterName))
		return s.Drain == nil && len(s.Members) == 2, fmt.Errorf("drain=%+v members=%d", s.Drain, len(s.Members))
	})
	ep, _, _ = e.endpointsOf(cmName)
	if ep.Version != v1+1 {
		t.Errorf("version %d after the pod left, want %d (nothing changed)", ep.Version, v1+1)
	}
	for _, reason := range []string{"ScalingDown", "DrainStarted", "DrainCompleted"} {
		e.waitEvent(clusterName, reason, 15*time.Second)
	}

	// --- a drain that times out: clients never leave.
	e.kubectlOK("patch", "mcc/"+clusterName, "--type=merge", "-p", `{"spec":{"drain":{"minSeconds":1,"timeoutSeconds":4}}}`)
	ep, _, _ = e.endpointsOf(cmName)
	conns = holdConnections(t, fmt.Sprintf("%s:%d", ep.Servers[1].Address, ep.Servers[1].Port), 2)
	defer closeAll(conns)
	scaled = time.Now()
	e.kubectlOK("scale", "mcc/"+clusterName, "--replicas=1")
	e.waitFor(30*time.Second, "cache-1 deleted after the drain timeout", func() (bool, error) {
		p, ok := e.pod("cache-1")
		return !ok || p.DeletionTimestamp != nil, nil
	})
	if took := time.Since(scaled); took < 4*time.Second {
		t.Errorf("cache-1 deleted %s after the scale, before timeoutSeconds (4s)", took)
	}
	e.waitFor(10*time.Second, "DrainTimeout warning", func() (bool, error) {
		evs := e.eventsWithReason(clusterName, "DrainTimeout")
		return len(evs) > 0 && evs[0].Type == "Warning", nil
	})
	e.waitFor(30*time.Second, "Degraded DrainTimeout", func() (bool, error) {
		c := statusOf(e.mcc(clusterName)).condition("Degraded")
		return c.Status == "True" && c.Reason == "DrainTimeout", fmt.Errorf("%+v", c)
	})

	// --- delete the cluster: the garbage collector removes every child.
	if err := e.dyn.Resource(mccGVR).Namespace(e.ns).Delete(ctx, clusterName, metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	e.waitFor(60*time.Second, "children garbage-collected", func() (bool, error) {
		if _, err := e.kube.AppsV1().StatefulSets(e.ns).Get(ctx, clusterName, metav1.GetOptions{}); !apierrors.IsNotFound(err) {
			return false, fmt.Errorf("statefulset still there")
		}
		for _, name := range []string{clusterName, clusterName + "-client"} {
			if _, err := e.kube.CoreV1().Services(e.ns).Get(ctx, name, metav1.GetOptions{}); !apierrors.IsNotFound(err) {
				return false, fmt.Errorf("service %s still there", name)
			}
		}
		if _, err := e.kube.CoreV1().ConfigMaps(e.ns).Get(ctx, cmName, metav1.GetOptions{}); !apierrors.IsNotFound(err) {
			return false, fmt.Errorf("configmap still there")
		}
		if _, err := e.kube.PolicyV1().PodDisruptionBudgets(e.ns).Get(ctx, clusterName, metav1.GetOptions{}); !apierrors.IsNotFound(err) {
			return false, fmt.Errorf("pdb still there")
		}
		return true, nil
	})
	if !op.running() {
		t.Errorf("the operator exited during the test")
	}
}

func versionOf(addr string) (string, error) {
	c, err := net.DialTimeout("tcp", addr, 2*time.Second)
	if err != nil {
		return "", err
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(2 * time.Second))
	if _, err := c.Write([]byte("version\r\n")); err != nil {
		return "", err
	}
	line, err := bufio.NewReader(c).ReadString('\n')
	return strings.TrimSpace(strings.TrimPrefix(line, "VERSION ")), err
}
