package opbench

import (
	"context"
	"strings"
	"sync"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/dynamic/dynamicinformer"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/cache"
)

var clusterGVR = schema.GroupVersionResource{Group: "memcached.operator.io", Version: "v1alpha1", Resource: "memcachedclusters"}

// childKey names a child object "kind/name" as the tracker stores it.
func childKeys(cluster string) []string {
	return []string{"statefulset/" + cluster, "service/" + cluster, "service/" + cluster + "-client",
		"pdb/" + cluster, "configmap/" + cluster + "-endpoints"}
}

// cmChange is one observed content of a cluster's endpoints ConfigMap.
type cmChange struct {
	at      time.Time
	servers string
}

// tracker watches one namespace and records when each thing was first seen, by the time its
// watch event arrived here. Safe for concurrent use: informer handlers write under mu, the
// benchmark reads under mu and waits on changed.
type tracker struct {
	mu        sync.Mutex
	changed   chan struct{} // closed and replaced on every change
	children  map[string]time.Time
	clusters  map[string]bool
	available map[string]time.Time
	podReady  map[string]time.Time // by pod uid
	podName   map[string]string    // uid -> name, for pods present now
	cms       map[string][]cmChange
	stop      chan struct{}
	// The cold start's progress, kept as events arrive so that a wait at N = 1000 does not
	// rescan 5,000 children on every event (the benchmark shares the CPU with the operator).
	expected               map[string]bool // child keys of the clusters under test
	childCount, availCount int
	lastChild, lastAvail   time.Time
}

func newTracker() *tracker {
	return &tracker{changed: make(chan struct{}), children: map[string]time.Time{}, clusters: map[string]bool{},
		available: map[string]time.Time{}, podReady: map[string]time.Time{}, podName: map[string]string{},
		cms: map[string][]cmChange{}, stop: make(chan struct{}), expected: map[string]bool{}}
}

// expect names the clusters whose children and availability the cold start waits for.
func (t *tracker) expect(clusters []string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	for _, c := range clusters {
		for _, k := range childKeys(c) {
			t.expected[k] = true
		}
	}
}

func (t *tracker) notify() {
	close(t.changed)
	t.changed = make(chan struct{})
}

// start runs the informers for ns and returns once their caches are filled.
func (t *tracker) start(ctx context.Context, cs kubernetes.Interface, dyn dynamic.Interface, ns string) {
	f := informers.NewSharedInformerFactoryWithOptions(cs, 0, informers.WithNamespace(ns))
	add := func(inf cache.SharedIndexInformer, kind string) {
		_, _ = inf.AddEventHandler(cache.ResourceEventHandlerFuncs{
			AddFunc:    func(o any) { t.onObject(kind, o, false) },
			UpdateFunc: func(_, o any) { t.onObject(kind, o, false) },
			DeleteFunc: func(o any) { t.onObject(kind, o, true) },
		})
	}
	add(f.Apps().V1().StatefulSets().Informer(), "statefulset")
	add(f.Core().V1().Services().Informer(), "service")
	add(f.Policy().V1().PodDisruptionBudgets().Informer(), "pdb")
	add(f.Core().V1().ConfigMaps().Informer(), "configmap")
	add(f.Core().V1().Pods().Informer(), "pod")
	df := dynamicinformer.NewFilteredDynamicSharedInformerFactory(dyn, 0, ns, nil)
	add(df.ForResource(clusterGVR).Informer(), "cluster")
	f.Start(t.stop)
	df.Start(t.stop)
	f.WaitForCacheSync(t.stop)
	df.WaitForCacheSync(t.stop)
}

func (t *tracker) close() { close(t.stop) }

func (t *tracker) onObject(kind string, o any, deleted bool) {
	now := time.Now()
	if d, ok := o.(cache.DeletedFinalStateUnknown); ok {
		o = d.Obj
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	defer t.notify()
	switch obj := o.(type) {
	case *appsv1.StatefulSet, *policyv1.PodDisruptionBudget, *corev1.Service:
		t.onChild(kind+"/"+objectName(obj), now, deleted)
	case *corev1.ConfigMap:
		if obj.Name == "kube-root-ca.crt" {
			return
		}
		t.onChild("configmap/"+obj.Name, now, deleted)
		if !deleted {
			c := strings.TrimSuffix(obj.Name, "-endpoints")
			h := t.cms[c]
			if len(h) == 0 || h[len(h)-1].servers != obj.Data["servers"] {
				t.cms[c] = append(h, cmChange{at: now, servers: obj.Data["servers"]})
			}
		}
	case *corev1.Pod:
		t.onPod(obj, now, deleted)
	case *unstructured.Unstructured:
		t.onCluster(obj, now, deleted)
	}
}

func objectName(o any) string {
	if m, ok := o.(interface{ GetName() string }); ok {
		return m.GetName()
	}
	return ""
}

func (t *tracker) onChild(key string, now time.Time, deleted bool) {
	if deleted {
		delete(t.children, key)
	} else if _, ok := t.children[key]; !ok {
		t.children[key] = now
		if t.expected[key] {
			t.childCount++
			t.lastChild = now
		}
	}
}

func (t *tracker) onPod(p *corev1.Pod, now time.Time, deleted bool) {
	uid := string(p.UID)
	if deleted {
		delete(t.podName, uid)
		return
	}
	t.podName[uid] = p.Name
	for _, c := range p.Status.Conditions {
		if c.Type == corev1.PodReady && c.Status == corev1.ConditionTrue {
			if _, ok := t.podReady[uid]; !ok {
				t.podReady[uid] = now
			}
		}
	}
}

func (t *tracker) onCluster(u *unstructured.Unstructured, now time.Time, deleted bool) {
	name := u.GetName()
	if deleted {
		delete(t.clusters, name)
		return
	}
	t.clusters[name] = true
	conds, _, _ := unstructured.NestedSlice(u.Object, "status", "conditions")
	for _, c := range conds {
		m, _ := c.(map[string]any)
		if m["type"] == "Available" && m["status"] == "True" {
			if _, ok := t.available[name]; !ok {
				t.available[name] = now
				t.availCount++
				t.lastAvail = now
			}
		}
	}
}

// waitFor calls cond under the lock until it returns true or the timeout passes.
func (t *tracker) waitFor(ctx context.Context, timeout time.Duration, cond func() bool) bool {
	deadline := time.After(timeout)
	tick := time.NewTicker(time.Second) // conditions may also look outside the tracker
	defer tick.Stop()
	for {
		t.mu.Lock()
		ok, ch := cond(), t.changed
		t.mu.Unlock()
		if ok {
			return true
		}
		select {
		case <-ch:
		case <-tick.C:
		case <-deadline:
			return false
		case <-ctx.Done():
			return false
		}
	}
}

// allChildren is the time the last expected child was first seen, once all of them were.
// Callers hold mu.
func (t *tracker) allChildren() (time.Time, bool) {
	return t.lastChild, t.childCount == len(t.expected)
}

// allAvailable is the time the last cluster was first seen Available, once all of them were
// (n clusters). Callers hold mu.
func (t *tracker) allAvailable(n int) (time.Time, bool) {
	return t.lastAvail, t.availCount == n
}

// readyPod is when the pod named name, created after since, was first seen Ready (zero if
// not yet). Callers hold mu.
func (t *tracker) readyPod(name string, since time.Time) time.Time {
	for uid, n := range t.podName {
		if at, ok := t.podReady[uid]; ok && n == name && !at.Before(since) {
			return at
		}
	}
	return time.Time{}
}

func (t *tracker) podExists(name string) bool {
	for _, n := range t.podName {
		if n == name {
			return true
		}
	}
	return false
}
