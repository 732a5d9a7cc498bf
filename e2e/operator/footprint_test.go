// What the operator costs at rest: resident memory and threads with 10 clusters, and API
// writes and reconciles over 60 s of steady state (from the operator's own
// memcached_operator_api_requests_total and memcached_operator_reconcile_total counters, so
// other components' writes do not count); and the reads of child objects that creating
// clusters costs. All are printed as "figure:" lines.
package operator

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// sample is one series of a metric family in the operator's /metrics text.
type sample struct {
	labels map[string]string
	value  float64
}

// samples returns the labelled series of one family ("name{...} value" lines).
func samples(t *testing.T, url, family string) []sample {
	t.Helper()
	var out []sample
	sc := bufio.NewScanner(strings.NewReader(scrape(t, url)))
	for sc.Scan() {
		line := sc.Text()
		if !strings.HasPrefix(line, family+"{") {
			continue
		}
		s := sample{labels: map[string]string{}}
		for _, kv := range strings.Split(line[strings.Index(line, "{")+1:strings.LastIndex(line, "}")], ",") {
			if k, v, ok := strings.Cut(kv, "="); ok {
				s.labels[k] = strings.Trim(v, `"`)
			}
		}
		s.value, _ = strconv.ParseFloat(line[strings.LastIndex(line, " ")+1:], 64)
		out = append(out, s)
	}
	return out
}

// apiRequests sums memcached_operator_api_requests_total by verb.
func apiRequests(t *testing.T, url string) map[string]float64 {
	t.Helper()
	out := map[string]float64{}
	for _, s := range samples(t, url, "memcached_operator_api_requests_total") {
		out[strings.ToUpper(s.labels["verb"])] += s.value
	}
	return out
}

// reconcileTotal sums memcached_operator_reconcile_total over all its series.
func reconcileTotal(t *testing.T, url string) float64 {
	t.Helper()
	n := 0.0
	for _, s := range samples(t, url, "memcached_operator_reconcile_total") {
		n += s.value
	}
	return n
}

func writes(m map[string]float64) float64 {
	n := 0.0
	for verb, v := range m {
		switch verb {
		case "GET", "LIST", "WATCH":
		default:
			n += v
		}
	}
	return n
}

// procStatus reads one numeric field of /proc/PID/status ("VmRSS", "Threads"; a "kB" unit is
// dropped).
func procStatus(t *testing.T, pid int, field string) int {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, field+":"); ok {
			n, err := strconv.Atoi(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")))
			if err != nil {
				t.Fatalf("/proc/%d/status %s: %v", pid, field, err)
			}
			return n
		}
	}
	t.Fatalf("no %s for pid %d", field, pid)
	return 0
}

func rssKiB(t *testing.T, pid int) int { return procStatus(t, pid, "VmRSS") }

// maxIdleThreads bounds the operator's threads at rest: the reconcile workers (4), one per
// informer, the HTTP pool (2), the main thread and a few fixed ones. It is part of the
// behaviour, not a speed: threads that grow with clusters, connections or past work (a pool
// at a library's default size, per-object threads, workers kept after their work) break it.
const maxIdleThreads = 16

func TestIdleFootprintWithTenClusters(t *testing.T) {
	e := newEnv(t)
	op, metricsURL := e.startOperatorWithMetrics()
	const clusters = 10
	e.createAvailableClusters("c", clusters, "  replicas: 2\n")
	time.Sleep(5 * time.Second)
	before := apiRequests(t, metricsURL)
	if len(before) == 0 {
		t.Fatalf("%s has no memcached_operator_api_requests_total", metricsURL)
	}
	reconciles0 := reconcileTotal(t, metricsURL)
	rss0 := rssKiB(t, op.pid())
	time.Sleep(60 * time.Second)
	after := apiRequests(t, metricsURL)
	reconciles1 := reconcileTotal(t, metricsURL)
	rss1 := rssKiB(t, op.pid())
	threads := procStatus(t, op.pid(), "Threads")
	w := writes(after) - writes(before)
	t.Logf("figure: %d clusters x 2 replicas idle: operator VmRSS %d KiB at the start and %d KiB at the end of 60 s", clusters, rss0, rss1)
	t.Logf("figure: %d clusters x 2 replicas idle: operator threads %d (bound %d)", clusters, threads, maxIdleThreads)
	t.Logf("figure: API writes by the operator in 60 s of steady state: %.0f (requests by verb before %v, after %v)", w, before, after)
	t.Logf("figure: reconciles to bring %d clusters to Available (+5 s): %.0f; in 60 s of steady state after: %.0f", clusters, reconciles0, reconciles1-reconciles0)
	if w != 0 {
		t.Errorf("the operator wrote %.0f times in 60 s of steady state", w)
	}
	if threads > maxIdleThreads {
		t.Errorf("the operator runs %d threads at rest, more than %d", threads, maxIdleThreads)
	}
	if reconciles1 != reconciles0 {
		t.Errorf("%.0f reconciles in 60 s of steady state; nothing changed, so none was needed", reconciles1-reconciles0)
	}
}

// childResources are the kinds a cluster creates by name (the plural is the metric's resource).
var childResources = map[string]bool{
	"statefulsets": true, "services": true, "configmaps": true, "poddisruptionbudgets": true,
	"networkpolicies": true, "servicemonitors": true,
}

// childGets sums memcached_operator_api_requests_total{verb="get"} over the child kinds, by kind.
func childGets(t *testing.T, url string) map[string]float64 {
	t.Helper()
	out := map[string]float64{}
	for _, s := range samples(t, url, "memcached_operator_api_requests_total") {
		if strings.EqualFold(s.labels["verb"], "get") && childResources[s.labels["resource"]] {
			out[s.labels["resource"]] += s.value
		}
	}
	return out
}

// New clusters read none of their children from the API server: the child caches hold every
// object of those kinds (others' as stubs), so a name they do not hold is free. Objects that are
// not the operator's share the namespace (an application's Service and ConfigMap,
// kube-root-ca.crt) and must not change that.
func TestFootprintNewClustersMakeNoChildReads(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	if _, err := e.kube.CoreV1().ConfigMaps(e.ns).Create(ctx, &corev1.ConfigMap{
		ObjectMeta: metav1.ObjectMeta{Name: "app-settings", Labels: map[string]string{"app": "web"}},
		Data:       map[string]string{"k": "v"}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := e.kube.CoreV1().Services(e.ns).Create(ctx, &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Name: "web"},
		Spec:       corev1.ServiceSpec{Selector: map[string]string{"app": "web"}, Ports: []corev1.ServicePort{{Port: 80}}}},
		metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	_, metricsURL := e.startOperatorWithMetrics()
	const clusters = 20
	e.createAvailableClusters("c", clusters, "  replicas: 0\n")
	time.Sleep(3 * time.Second) // the passes the last children's events start
	gets := childGets(t, metricsURL)
	n := 0.0
	for _, v := range gets {
		n += v
	}
	t.Logf("figure: API GETs of child kinds to create %d clusters: %.0f %v", clusters, n, gets)
	if n != 0 {
		t.Errorf("%.0f GETs of child kinds to create %d clusters (%v); the caches should answer", n, clusters, gets)
	}
}
