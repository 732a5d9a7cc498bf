// reference-operator is a yardstick, not a product: a minimal controller-runtime controller for
// the MemcachedCluster CRD (crds/) that the operator benchmark (e2e/cmd/bench-operator) runs
// beside the C++ operator, so that both are measured doing equal work on the same resources.
//
// For each MemcachedCluster it creates the children the C++ operator creates (a StatefulSet,
// a headless and a client Service, a PodDisruptionBudget and the endpoints ConfigMap, all
// controlled by the cluster so that garbage collection deletes them), publishes its Ready pods
// into the ConfigMap under the same keys and format, and sets status (observedGeneration,
// replicas, readyReplicas, selector, configVersion, an Available condition) through the status
// subresource. It does none of what makes the real operator safe to run: no drain before a
// scale-down, no stale-copy sweep, no version-ordering guarantee beyond a counter, no events.
//
// It is written the way a careful controller-runtime user would write it: the default manager
// (shared informer cache, rate-limited work queue), typed clients, Owns() on every child kind,
// 4 concurrent reconciles like the C++ operator's default, a cache transform that strips
// managedFields, and controller-runtime's default client settings (client-side rate limiting
// off, relying on the API server's priority and fairness). Leader election is off.
package main

import (
	"flag"
	"fmt"
	"net/http"
	"os"
	"strings"

	"github.com/prometheus/client_golang/prometheus"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	"k8s.io/apimachinery/pkg/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/controller"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"
	crmetrics "sigs.k8s.io/controller-runtime/pkg/metrics"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"
)

// userAgent tells the yardstick's requests from the C++ operator's in the API server's audit log.
const userAgent = "reference-operator/0.1"

func main() {
	metricsAddr := flag.String("metrics-bind-address", "0", `address of /metrics ("0" disables)`)
	namespace := flag.String("namespace", "", "watch only this namespace (default: all)")
	workers := flag.Int("workers", 4, "concurrent reconciles")
	clusterDomain := flag.String("cluster-domain", "cluster.local", "cluster DNS domain in published host names")
	opts := zap.Options{}
	opts.BindFlags(flag.CommandLine)
	flag.Parse() // --kubeconfig is registered by controller-runtime's config package
	ctrl.SetLogger(zap.New(zap.UseFlagOptions(&opts)))

	if err := run(*metricsAddr, *namespace, *workers, *clusterDomain); err != nil {
		fmt.Fprintln(os.Stderr, "reference-operator:", err)
		os.Exit(1)
	}
}

func run(metricsAddr, namespace string, workers int, clusterDomain string) error {
	scheme := runtime.NewScheme()
	if err := clientgoscheme.AddToScheme(scheme); err != nil {
		return err
	}
	if err := addToScheme(scheme); err != nil {
		return err
	}
	cfg, err := ctrl.GetConfig() // controller-runtime's defaults: QPS -1 (no client-side limit)
	if err != nil {
		return err
	}
	cfg.UserAgent = userAgent
	cfg.Wrap(countRequests)

	cacheOpts := cache.Options{DefaultTransform: cache.TransformStripManagedFields()}
	if namespace != "" {
		cacheOpts.DefaultNamespaces = map[string]cache.Config{namespace: {}}
	}
	mgr, err := ctrl.NewManager(cfg, ctrl.Options{
		Scheme:                 scheme,
		Cache:                  cacheOpts,
		Metrics:                metricsserver.Options{BindAddress: metricsAddr},
		HealthProbeBindAddress: "0",
		LeaderElection:         false,
	})
	if err != nil {
		return err
	}
	r := &reconciler{client: mgr.GetClient(), scheme: scheme, clusterDomain: clusterDomain}
	err = ctrl.NewControllerManagedBy(mgr).
		For(&MemcachedCluster{}).
		Owns(&appsv1.StatefulSet{}).
		Owns(&corev1.Service{}).
		Owns(&policyv1.PodDisruptionBudget{}).
		Owns(&corev1.ConfigMap{}).
		// Pods are the StatefulSet's, not the cluster's: map them by their cluster label.
		Watches(&corev1.Pod{}, handler.EnqueueRequestsFromMapFunc(podToCluster)).
		WithOptions(controller.Options{MaxConcurrentReconciles: workers}).
		Complete(r)
	if err != nil {
		return err
	}
	return mgr.Start(ctrl.SetupSignalHandler())
}

// apiRequests counts requests by verb and resource like the C++ operator's
// memcached_operator_api_requests_total, so the benchmark reads both the same way
// (controller-runtime's own rest_client_requests_total has only the HTTP method).
var apiRequests = prometheus.NewCounterVec(prometheus.CounterOpts{
	Name: "reference_operator_api_requests_total",
	Help: "Kubernetes API requests by verb, resource and HTTP code (0: no response).",
}, []string{"verb", "resource", "code"})

func init() { crmetrics.Registry.MustRegister(apiRequests) }

type countingTransport struct{ next http.RoundTripper }

func countRequests(next http.RoundTripper) http.RoundTripper { return countingTransport{next} }

func (c countingTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	resp, err := c.next.RoundTrip(req)
	code := "0"
	if resp != nil {
		code = fmt.Sprint(resp.StatusCode)
	}
	verb, resource := classify(req)
	apiRequests.WithLabelValues(verb, resource, code).Inc()
	return resp, err
}

// classify names a request's verb and resource from its method and path
// (/api/v1/namespaces/NS/RESOURCE/NAME/SUB or /apis/GROUP/VERSION/...).
func classify(req *http.Request) (verb, resource string) {
	parts := strings.Split(strings.Trim(req.URL.Path, "/"), "/")
	switch {
	case len(parts) >= 2 && parts[0] == "api":
		parts = parts[2:]
	case len(parts) >= 3 && parts[0] == "apis":
		parts = parts[3:]
	default:
		return strings.ToLower(req.Method), "other"
	}
	if len(parts) >= 3 && parts[0] == "namespaces" {
		parts = parts[2:]
	}
	if len(parts) == 0 {
		return strings.ToLower(req.Method), "other"
	}
	resource = parts[0]
	named := len(parts) >= 2
	switch req.Method {
	case http.MethodGet:
		switch {
		case req.URL.Query().Get("watch") == "true" || req.URL.Query().Get("watch") == "1":
			verb = "watch"
		case named:
			verb = "get"
		default:
			verb = "list"
		}
	case http.MethodPost:
		verb = "create"
	case http.MethodPut:
		verb = "update"
	case http.MethodPatch:
		verb = "patch"
		if strings.HasPrefix(req.Header.Get("Content-Type"), "application/apply-patch") {
			verb = "apply"
		}
	case http.MethodDelete:
		verb = "delete"
	default:
		verb = strings.ToLower(req.Method)
	}
	return verb, resource
}
