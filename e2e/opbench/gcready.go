package opbench

import (
	"context"
	"fmt"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
)

// waitGarbageCollector returns once the cluster's garbage collector deletes the dependents of a
// MemcachedCluster. It learns of a new CRD's kind only at a later discovery pass (every 30 s),
// so on a cluster whose CRD was just applied the first deletion measured waited for that pass,
// whichever operator ran first: one 36 s "delete all" at N = 1 in smoke runs, against
// 0.03-0.1 s in every other; this probe itself took 41 s on a fresh e2e cluster. A throwaway
// cluster with an owned ConfigMap (no operator runs meanwhile) is deleted, and the ConfigMap
// must go.
func (b *bench) waitGarbageCollector(ctx context.Context, timeout time.Duration) error {
	ns := fmt.Sprintf("opbench-gc-probe-%d", time.Now().Unix()%100000)
	if _, err := b.cs.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}, metav1.CreateOptions{}); err != nil {
		return err
	}
	defer b.cs.CoreV1().Namespaces().Delete(context.Background(), ns, metav1.DeleteOptions{})
	owner := &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": "memcached.operator.io/v1alpha1", "kind": "MemcachedCluster",
		"metadata": map[string]any{"name": "gc-probe", "namespace": ns},
		"spec":     map[string]any{"replicas": int64(0)},
	}}
	owner, err := b.dyn.Resource(clusterGVR).Namespace(ns).Create(ctx, owner, metav1.CreateOptions{})
	if err != nil {
		return err
	}
	cm := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "gc-probe", Namespace: ns,
		OwnerReferences: []metav1.OwnerReference{{APIVersion: "memcached.operator.io/v1alpha1",
			Kind: "MemcachedCluster", Name: owner.GetName(), UID: owner.GetUID()}}}}
	if _, err := b.cs.CoreV1().ConfigMaps(ns).Create(ctx, cm, metav1.CreateOptions{}); err != nil {
		return err
	}
	start := time.Now()
	if err := b.dyn.Resource(clusterGVR).Namespace(ns).Delete(ctx, owner.GetName(), metav1.DeleteOptions{}); err != nil {
		return err
	}
	for time.Since(start) < timeout {
		_, err := b.cs.CoreV1().ConfigMaps(ns).Get(ctx, cm.Name, metav1.GetOptions{})
		if apierrors.IsNotFound(err) {
			b.logf("garbage collector ready: an owned object went %.2f s after its owner", time.Since(start).Seconds())
			return nil
		}
		if err := sleepCtx(ctx, 200*time.Millisecond); err != nil {
			return err
		}
	}
	return fmt.Errorf("the garbage collector did not delete a MemcachedCluster's dependent within %s", timeout)
}
