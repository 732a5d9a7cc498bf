// A watch whose connection died silently (the apiProxy drops everything on the streams open at
// one instant, while the API server and new connections work) must be noticed within the
// operator's --watch-idle-timeout and replaced from the last resourceVersion, so that a
// MemcachedCluster created after the watch went dead is reconciled. Without idle detection the
// operator would wait for its 15-minute connection timeout.
package operator

import (
	"bytes"
	"context"
	"fmt"
	"maps"
	"os/exec"
	"slices"
	"testing"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

func TestSilentWatchIsReplacedWithinTheIdleBound(t *testing.T) {
	e := newEnv(t)
	px := newAPIProxy(t)
	const idle = 5 * time.Second
	started := time.Now()
	var flags []string
	if help, _ := exec.Command(operatorBinary(t), "--help").CombinedOutput(); bytes.Contains(help, []byte("--watch-idle-timeout")) {
		flags = append(flags, fmt.Sprintf("--watch-idle-timeout=%s", idle))
	} else {
		t.Logf("%s has no --watch-idle-timeout", operatorBinary(t)) // and fails below
	}
	op := e.startOperatorWith(px.kubeconfig, flags...)

	// Every informer watching, and the operator working through the proxy. NetworkPolicies
	// too (spec.networkPolicy); ServiceMonitors only where their CRD is served, not here.
	want := []string{"configmaps", "memcachedclusters", "networkpolicies", "poddisruptionbudgets", "pods", "services", "statefulsets"}
	e.waitFor(60*time.Second, "the operator's watches through the proxy", func() (bool, error) {
		w := px.watchedResources(started)
		got := slices.Sorted(maps.Keys(w))
		return slices.Equal(got, want), fmt.Errorf("watching %v, want %v", got, want)
	})
	e.createCluster("warmup", "  replicas: 1\n")
	e.waitStatefulSet("warmup", 60*time.Second)

	silencedAt := px.silenceWatches()
	e.createCluster("late", "  replicas: 1\n")
	e.waitStatefulSet("late", idle+60*time.Second)
	seenAfter := time.Since(silencedAt)

	// The MemcachedCluster watch was replaced after about the idle bound: not before (a quiet
	// watch is not a dead one), and not much later.
	var rewatch time.Duration
	for _, r := range px.requestsSince(silencedAt) {
		if r.watch() && r.Path == "/apis/memcached.operator.io/v1alpha1/namespaces/"+e.ns+"/memcachedclusters" {
			rewatch = r.At.Sub(silencedAt)
			if r.Query.Get("resourceVersion") == "" {
				t.Errorf("the new watch does not resume from a resourceVersion: %s", r)
			}
			break
		}
	}
	t.Logf("figure: silent watch replaced %.1f s after it went silent (--watch-idle-timeout=%s); the cluster created meanwhile got its StatefulSet after %.1f s",
		rewatch.Seconds(), idle, seenAfter.Seconds())
	if rewatch == 0 {
		t.Fatalf("no new memcachedclusters watch after the streams went silent")
	}
	if rewatch < idle-time.Second {
		t.Errorf("watch replaced after %s, before the %s idle bound", rewatch, idle)
	}
	if rewatch > idle+10*time.Second {
		t.Errorf("watch replaced only after %s (idle bound %s)", rewatch, idle)
	}
	lists := 0
	for _, r := range px.requestsSince(silencedAt) {
		if !r.watch() && r.Method == "GET" && r.Path == "/apis/memcached.operator.io/v1alpha1/namespaces/"+e.ns+"/memcachedclusters" {
			lists++
		}
	}
	if lists != 0 {
		t.Errorf("%d relists of memcachedclusters: a silent watch resumes from its resourceVersion", lists)
	}
	if !op.running() {
		t.Errorf("the operator exited")
	}
}

// waitStatefulSet waits until the operator has created the StatefulSet of a cluster.
func (e *env) waitStatefulSet(name string, timeout time.Duration) {
	e.t.Helper()
	e.waitFor(timeout, "StatefulSet "+name, func() (bool, error) {
		_, err := e.kube.AppsV1().StatefulSets(e.ns).Get(context.Background(), name, metav1.GetOptions{})
		if apierrors.IsNotFound(err) {
			return false, err
		}
		return err == nil, err
	})
}
