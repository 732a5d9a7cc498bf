package main

import (
	"context"
	"encoding/json"
	"fmt"
	"sort"
	"strconv"
	"strings"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller/controllerutil"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"
)

// reconciler is the controller's Reconcile; controller-runtime calls it from up to
// MaxConcurrentReconciles workers, never twice at once for one cluster. It holds no state of
// its own: everything is read from the manager's cache.
type reconciler struct {
	client        client.Client
	scheme        *runtime.Scheme
	clusterDomain string
}

func podToCluster(_ context.Context, o client.Object) []reconcile.Request {
	name := o.GetLabels()["memcached.operator.io/cluster"]
	if name == "" {
		return nil
	}
	return []reconcile.Request{{NamespacedName: types.NamespacedName{Namespace: o.GetNamespace(), Name: name}}}
}

func (r *reconciler) Reconcile(ctx context.Context, req ctrl.Request) (ctrl.Result, error) {
	mc := &MemcachedCluster{}
	if err := r.client.Get(ctx, req.NamespacedName, mc); err != nil {
		return ctrl.Result{}, client.IgnoreNotFound(err) // deleted: garbage collection does the rest
	}
	if !mc.DeletionTimestamp.IsZero() {
		return ctrl.Result{}, nil
	}
	sts, err := r.ensureChildren(ctx, mc)
	if err != nil {
		return ctrl.Result{}, err
	}
	ready, err := r.readyPods(ctx, mc)
	if err != nil {
		return ctrl.Result{}, err
	}
	version, err := r.publish(ctx, mc, ready)
	if err != nil {
		return ctrl.Result{}, err
	}
	return ctrl.Result{}, r.updateStatus(ctx, mc, sts, int32(len(ready)), version)
}

// ensureChildren creates or updates the Services, PDB and StatefulSet; CreateOrUpdate reads
// from the cache and writes only when the mutated object differs from the stored one.
func (r *reconciler) ensureChildren(ctx context.Context, mc *MemcachedCluster) (*appsv1.StatefulSet, error) {
	meta := func(name string) metav1.ObjectMeta { return metav1.ObjectMeta{Name: name, Namespace: mc.Namespace} }
	headless := &corev1.Service{ObjectMeta: meta(mc.Name)}
	clientSvc := &corev1.Service{ObjectMeta: meta(mc.Name + "-client")}
	pdb := &policyv1.PodDisruptionBudget{ObjectMeta: meta(mc.Name)}
	sts := &appsv1.StatefulSet{ObjectMeta: meta(mc.Name)}
	children := []struct {
		obj    client.Object
		mutate func()
	}{
		{headless, func() { mutateService(mc, headless, true) }},
		{clientSvc, func() { mutateService(mc, clientSvc, false) }},
		{pdb, func() { mutatePDB(mc, pdb) }},
		{sts, func() { mutateStatefulSet(mc, sts) }},
	}
	for _, c := range children {
		if c.obj == pdb && mc.Spec.PodDisruptionBudget.Enabled != nil && !*mc.Spec.PodDisruptionBudget.Enabled {
			continue
		}
		_, err := controllerutil.CreateOrUpdate(ctx, r.client, c.obj, func() error {
			c.mutate()
			return controllerutil.SetControllerReference(mc, c.obj, r.scheme)
		})
		if err != nil {
			return nil, fmt.Errorf("%T %s: %w", c.obj, c.obj.GetName(), err)
		}
	}
	return sts, nil
}

type member struct {
	ordinal int
	name    string
	address string
}

// readyPods are the cluster's Ready pods with an IP, in ordinal order.
func (r *reconciler) readyPods(ctx context.Context, mc *MemcachedCluster) ([]member, error) {
	pods := &corev1.PodList{}
	err := r.client.List(ctx, pods, client.InNamespace(mc.Namespace),
		client.MatchingLabelsSelector{Selector: labels.SelectorFromSet(selectorLabels(mc.Name))})
	if err != nil {
		return nil, err
	}
	var out []member
	for _, p := range pods.Items {
		ordinal, err := strconv.Atoi(strings.TrimPrefix(p.Name, mc.Name+"-"))
		if err != nil || p.DeletionTimestamp != nil || p.Status.PodIP == "" || !podReady(&p) {
			continue
		}
		out = append(out, member{ordinal: ordinal, name: p.Name, address: p.Status.PodIP})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ordinal < out[j].ordinal })
	return out, nil
}

func podReady(p *corev1.Pod) bool {
	for _, c := range p.Status.Conditions {
		if c.Type == corev1.PodReady {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}

// publish writes the endpoints ConfigMap when its server list changed, with the next version.
func (r *reconciler) publish(ctx context.Context, mc *MemcachedCluster, ready []member) (int64, error) {
	cm := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: configMapName(mc), Namespace: mc.Namespace}}
	version := mc.Status.ConfigVersion
	_, err := controllerutil.CreateOrUpdate(ctx, r.client, cm, func() error {
		cm.Labels = commonLabels(mc.Name)
		var published struct {
			Version int64 `json:"version"`
		}
		_ = json.Unmarshal([]byte(cm.Data["endpoints.json"]), &published)
		version = max(version, published.Version)
		servers := r.serversText(mc, ready)
		if cm.Data == nil || cm.Data["servers"] != servers {
			version++
			cm.Data = map[string]string{
				"endpoints.json":    r.endpointsJSON(mc, ready, version),
				"servers":           servers,
				"libmemcached.conf": r.libmemcachedConf(mc, ready),
			}
		}
		return controllerutil.SetControllerReference(mc, cm, r.scheme)
	})
	return version, err
}

func (r *reconciler) host(mc *MemcachedCluster, m member) string {
	return fmt.Sprintf("%s.%s.%s.svc.%s", m.name, mc.Name, mc.Namespace, r.clusterDomain)
}

func (r *reconciler) serversText(mc *MemcachedCluster, ready []member) string {
	var b strings.Builder
	for _, m := range ready {
		fmt.Fprintf(&b, "%s:%d\n", r.host(mc, m), port(mc))
	}
	return b.String()
}

func (r *reconciler) libmemcachedConf(mc *MemcachedCluster, ready []member) string {
	var b strings.Builder
	b.WriteString("# libmemcached cannot select weighted ketama here: call memcached_behavior_set(m, MEMCACHED_BEHAVIOR_KETAMA_WEIGHTED, 1) after memcached(conf).\n")
	for _, m := range ready {
		fmt.Fprintf(&b, " --SERVER=%s:%d/?1\n", r.host(mc, m), port(mc))
	}
	return b.String()
}

// endpointsJSON renders docs/configmap-contract.md's layout (one server a line).
func (r *reconciler) endpointsJSON(mc *MemcachedCluster, ready []member, version int64) string {
	var b strings.Builder
	fmt.Fprintf(&b, "{\n  \"schema\": \"memcached.operator.io/endpoints/v1\",\n  \"cluster\": %q,\n  \"version\": %d,\n  \"hashing\": \"ketama-libmemcached\",\n  \"servers\": [",
		mc.Namespace+"/"+mc.Name, version)
	for i, m := range ready {
		if i > 0 {
			b.WriteString(",")
		}
		fmt.Fprintf(&b, "\n    {\"name\": %q, \"host\": %q, \"address\": %q, \"port\": %d, \"weight\": 1, \"state\": \"active\"}",
			m.name, r.host(mc, m), m.address, port(mc))
	}
	if len(ready) > 0 {
		b.WriteString("\n  ")
	}
	b.WriteString("],\n  \"previous\": null\n}\n")
	return b.String()
}

// updateStatus writes status through the subresource, only when it changed.
func (r *reconciler) updateStatus(ctx context.Context, mc *MemcachedCluster, sts *appsv1.StatefulSet, ready int32, version int64) error {
	want := *mc.Status.DeepCopyStatus()
	want.ObservedGeneration = mc.Generation
	want.Replicas = sts.Status.Replicas
	want.ReadyReplicas = ready
	want.Selector = labels.SelectorFromSet(selectorLabels(mc.Name)).String()
	want.ConfigVersion = version
	want.ConfigMapName = configMapName(mc)
	cond := metav1.Condition{Type: "Available", Status: metav1.ConditionTrue, Reason: "MembersReady",
		ObservedGeneration: mc.Generation, Message: fmt.Sprintf("%d of %d members Ready", ready, replicas(mc))}
	want.Phase = "Available"
	if ready < replicas(mc) {
		cond.Status, cond.Reason, want.Phase = metav1.ConditionFalse, "MembersNotReady", "Progressing"
	}
	meta.SetStatusCondition(&want.Conditions, cond)
	if equality.Semantic.DeepEqual(want, mc.Status) {
		return nil
	}
	mc.Status = want
	err := r.client.Status().Update(ctx, mc)
	if apierrors.IsConflict(err) {
		return nil // a newer cluster is already queued: its reconcile writes the status
	}
	return err
}
