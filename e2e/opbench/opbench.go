// Package opbench is the operator benchmark (issue 13, e2e/bench/README.md): it runs the C++
// operator and the controller-runtime reference (e2e/cmd/reference-operator) side by side on a
// local cluster, alternating, and measures cold start, CPU, memory, threads, API requests,
// scale latency and deletion for N clusters. e2e/cmd/bench-operator is its command line; the
// smoke test runs it small.
package opbench

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"
)

// Config is what one benchmark does.
type Config struct {
	Ns        []int         // cluster counts
	Replicas  []int         // spec.replicas of every cluster, one set of runs per value
	Runs      int           // runs per operator, N and replicas (medians over them)
	Scales    int           // scale-ups and scale-downs per operator in total (each way)
	ScaleAt   int           // the N whose runs scale (default: the smallest)
	Steady    time.Duration // steady-state window, once per operator at the largest N
	Idle      time.Duration // from the operator's start to the idle RSS and threads sample
	Timeout   time.Duration // for each wait (cold start, deletion)
	Out       string        // result directory
	Ours      string        // the C++ operator binary
	Reference string        // the reference-operator binary
	// The local cluster's state directory (e2e/cluster's MCOP_E2E_STATE): its run/*.pid name the
	// control-plane processes whose CPU each cold start also reports. "" = not measured.
	StateDir   string
	Kubeconfig string
	AuditLog   string // the API server's audit log
	Log        io.Writer
}

// Run is one operator's figures for one run.
type Run struct {
	Operator      string  `json:"operator"`
	N             int     `json:"n"`
	Replicas      int     `json:"replicas"`
	Index         int     `json:"run"`
	Namespace     string  `json:"namespace"`
	ChildrenS     float64 `json:"cold_start_children_s"`
	AvailableS    float64 `json:"cold_start_available_s"`
	CPUChildrenS  float64 `json:"cpu_children_s"`
	CPUAvailableS float64 `json:"cpu_available_s"`
	// CPU of etcd, the API server and the controller manager from the operator's start until
	// every child exists: the work the operator's requests caused on the control plane.
	ControlPlaneCPUChildrenS float64    `json:"control_plane_cpu_children_s,omitempty"`
	PeakRSSMB                float64    `json:"peak_rss_available_mb"`
	Idle                     procSample `json:"idle"`
	ReadsColdStart           requests   `json:"reads_cold_start"`
	WritesColdStart          requests   `json:"writes_cold_start"`
	ReadsIdle                requests   `json:"reads_to_idle_sample"`
	WritesIdle               requests   `json:"writes_to_idle_sample"`
	SteadyS                  float64    `json:"steady_s,omitempty"`
	ReadsSteady              requests   `json:"reads_steady,omitempty"`
	WritesSteady             requests   `json:"writes_steady,omitempty"`
	ScaleUpMS                []float64  `json:"scale_up_ready_to_configmap_ms,omitempty"`
	ScaleDownMS              []float64  `json:"scale_down_patch_to_configmap_ms,omitempty"`
	DeleteS                  float64    `json:"delete_children_gone_s"`
	Error                    string     `json:"error,omitempty"`
	Log                      string     `json:"operator_log"`
}

type bench struct {
	cfg  Config
	cs   kubernetes.Interface
	dyn  dynamic.Interface
	ops  []operatorKind
	runs []*Run
}

func (b *bench) logf(format string, args ...any) {
	fmt.Fprintf(b.cfg.Log, "bench: %s "+format+"\n", append([]any{time.Now().UTC().Format("15:04:05.0")}, args...)...)
}

// Execute runs the whole benchmark and writes results.json into cfg.Out.
func Execute(ctx context.Context, cfg Config) (*Results, error) {
	if cfg.Log == nil {
		cfg.Log = os.Stderr
	}
	if cfg.ScaleAt == 0 { // the smallest N with a cluster to scale
		for _, n := range cfg.Ns {
			if n > 0 && (cfg.ScaleAt == 0 || n < cfg.ScaleAt) {
				cfg.ScaleAt = n
			}
		}
	}
	rc, err := clientcmd.BuildConfigFromFlags("", cfg.Kubeconfig)
	if err != nil {
		return nil, err
	}
	// The benchmark's own client must never be what limits the operators.
	rc.QPS, rc.Burst, rc.UserAgent = 500, 1000, "bench-operator"
	b := &bench{cfg: cfg}
	if b.cs, err = kubernetes.NewForConfig(rc); err != nil {
		return nil, err
	}
	if b.dyn, err = dynamic.NewForConfig(rc); err != nil {
		return nil, err
	}
	b.ops = []operatorKind{
		{Name: "ours", Binary: cfg.Ours, UserAgent: "memcached-operator/", Metric: "memcached_operator_api_requests_total"},
		{Name: "reference", Binary: cfg.Reference, UserAgent: "reference-operator/", Metric: "reference_operator_api_requests_total"},
	}
	if err := os.MkdirAll(cfg.Out, 0o755); err != nil {
		return nil, err
	}
	if err := b.waitGarbageCollector(ctx, 2*time.Minute); err != nil {
		return nil, err
	}
	maxN := slices.Max(cfg.Ns)
	for ri, replicas := range cfg.Replicas {
		for _, n := range cfg.Ns {
			for i := 0; i < cfg.Runs; i++ {
				order := b.ops
				if i%2 == 1 { // alternate which operator goes first
					order = []operatorKind{b.ops[1], b.ops[0]}
				}
				for _, op := range order {
					steady := ri == 0 && i == 0 && n == maxN && cfg.Steady > 0
					r := b.runOne(ctx, op, n, replicas, i, steady)
					b.runs = append(b.runs, r)
					if ctx.Err() != nil {
						return nil, ctx.Err()
					}
				}
			}
		}
	}
	res := summarize(cfg, b.runs)
	return res, res.write(cfg.Out)
}

func (b *bench) runOne(ctx context.Context, op operatorKind, n, replicas, index int, steady bool) *Run {
	r := &Run{Operator: op.Name, N: n, Replicas: replicas, Index: index,
		Namespace: fmt.Sprintf("opbench-%s-n%d-r%d-%d-%d", op.Name, n, replicas, index, time.Now().Unix()%100000)}
	r.Log = filepath.Join(b.cfg.Out, r.Namespace+".log")
	b.logf("%s: N=%d replicas=%d run %d (namespace %s)", op.Name, n, replicas, index+1, r.Namespace)
	if err := b.measure(ctx, op, r, steady); err != nil {
		r.Error = err.Error()
		b.logf("%s: N=%d run %d failed: %v", op.Name, n, index+1, err)
	}
	// Leftovers (events, or objects of a failed run) go with the namespace.
	_ = b.cs.CoreV1().Namespaces().Delete(context.Background(), r.Namespace, metav1.DeleteOptions{})
	return r
}

func clusterNames(n int) []string {
	names := make([]string, n)
	for i := range names {
		names[i] = fmt.Sprintf("c%04d", i)
	}
	return names
}

// parallel runs f for every name with a few workers and returns the first error.
func parallel(names []string, f func(string) error) error {
	var mu sync.Mutex
	var first error
	ch := make(chan string)
	var wg sync.WaitGroup
	for w := 0; w < 16; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for name := range ch {
				if err := f(name); err != nil {
					mu.Lock()
					if first == nil {
						first = err
					}
					mu.Unlock()
				}
			}
		}()
	}
	for _, n := range names {
		ch <- n
	}
	close(ch)
	wg.Wait()
	return first
}

func (b *bench) createClusters(ctx context.Context, ns string, names []string, replicas int) error {
	_, err := b.cs.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}, metav1.CreateOptions{})
	if err != nil {
		return err
	}
	return parallel(names, func(name string) error {
		u := &unstructured.Unstructured{Object: map[string]any{
			"apiVersion": "memcached.operator.io/v1alpha1", "kind": "MemcachedCluster",
			"metadata": map[string]any{"name": name, "namespace": ns},
			// No minimum drain: the C++ operator would otherwise keep a scaled-down member 60 s
			// (the reference has no drain at all, so it ignores this).
			"spec": map[string]any{"replicas": int64(replicas), "drain": map[string]any{"minSeconds": int64(0)}},
		}}
		_, err := b.dyn.Resource(clusterGVR).Namespace(ns).Create(ctx, u, metav1.CreateOptions{})
		return err
	})
}

func (b *bench) deleteClusters(ctx context.Context, ns string, names []string) error {
	return parallel(names, func(name string) error {
		err := b.dyn.Resource(clusterGVR).Namespace(ns).Delete(ctx, name, metav1.DeleteOptions{})
		if apierrors.IsNotFound(err) {
			return nil
		}
		return err
	})
}

func (b *bench) scaleCluster(ctx context.Context, ns, name string, replicas int) error {
	patch := fmt.Sprintf(`{"spec":{"replicas":%d}}`, replicas)
	_, err := b.dyn.Resource(clusterGVR).Namespace(ns).Patch(ctx, name, types.MergePatchType, []byte(patch), metav1.PatchOptions{}, "scale")
	return err
}
