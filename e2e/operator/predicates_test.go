// Which events wake a cluster, measured with the operator's own
// memcached_operator_reconcile_total{controller,result}: a status write to a cluster does not
// reconcile it again (controller-runtime's GenerationChangedPredicate and friends), a change its
// owner makes does, and a deleted cluster leaves no per-cluster metric behind.
package operator

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
)

func scrape(t *testing.T, url string) string {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatalf("scraping %s: %v", url, err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return string(body)
}

// reconciles sums memcached_operator_reconcile_total over results for one controller, and
// fails the test if the family carries any label but controller and result.
func reconciles(t *testing.T, url, controller string) float64 {
	t.Helper()
	total, seen := 0.0, false
	for _, s := range samples(t, url, "memcached_operator_reconcile_total") {
		for k := range s.labels {
			if k != "controller" && k != "result" {
				t.Fatalf("reconcile_total has a label other than controller and result: %v", s.labels)
			}
		}
		if s.labels["controller"] != controller {
			continue
		}
		total += s.value
		seen = true
	}
	if !seen {
		t.Fatalf("%s has no memcached_operator_reconcile_total for controller %q", url, controller)
	}
	return total
}

// settled waits until the reconcile count has not moved for `quiet`, and returns it.
func (e *env) settled(url string, quiet, limit time.Duration) float64 {
	e.t.Helper()
	last, since, until := reconciles(e.t, url, "memcachedcluster"), time.Now(), time.Now().Add(limit)
	for time.Now().Before(until) {
		time.Sleep(250 * time.Millisecond)
		n := reconciles(e.t, url, "memcachedcluster")
		if n != last {
			last, since = n, time.Now()
		} else if time.Since(since) >= quiet {
			return n
		}
	}
	e.t.Fatalf("reconciles did not settle within %v (still %v)", limit, last)
	return 0
}

func TestStatusWritesDoNotWakeTheirCluster(t *testing.T) {
	e := newEnv(t)
	_, url := e.startOperatorWithMetrics()
	const clusters = 3
	e.createAvailableClusters("p", clusters, "  replicas: 1\n")
	before := e.settled(url, 3*time.Second, 60*time.Second)

	// Status written by someone else, as the operator's own status writes are: without
	// predicates each write would reconcile its cluster, which would rewrite the phase (another
	// write, another wake).
	for i := 0; i < clusters; i++ {
		u := e.mcc(fmt.Sprintf("p%d", i))
		if err := unstructured.SetNestedField(u.Object, "Progressing", "status", "phase"); err != nil {
			t.Fatal(err)
		}
		if _, err := e.dyn.Resource(mccGVR).Namespace(e.ns).UpdateStatus(context.Background(), u, metav1.UpdateOptions{}); err != nil {
			t.Fatalf("writing the status of %s: %v", u.GetName(), err)
		}
	}
	time.Sleep(5 * time.Second)
	after := reconciles(t, url, "memcachedcluster")
	t.Logf("figure: reconciles in 5 s after %d status writes on %d idle clusters: %.0f", clusters, clusters, after-before)
	if after != before {
		t.Errorf("%d status writes caused %.0f reconciles; want none", clusters, after-before)
	}
	if phase := statusOf(e.mcc("p0")).Phase; phase != "Progressing" {
		t.Errorf("p0's phase is %q: something reconciled it after the status write", phase)
	}

	// What the owner changes does wake it: an annotation (no generation change) reconciles p0,
	// which puts its phase right again.
	e.kubectlOK("annotate", "mcc", "p0", "example.com/touched=yes")
	e.waitAvailable("p0", 30*time.Second)
	// The pass is counted once it returns, a moment after its status write is visible.
	e.waitFor(10*time.Second, "the annotation's reconcile counted", func() (bool, error) {
		n := reconciles(t, url, "memcachedcluster")
		return n > after, fmt.Errorf("reconciles %v -> %v", after, n)
	})
	if phase := statusOf(e.mcc("p1")).Phase; phase != "Progressing" {
		t.Errorf("p1's phase is %q: the annotation of p0 reconciled p1 too", phase)
	}

	// A deleted cluster's series go with it.
	series := `cluster="` + e.ns + `/p1"`
	if !strings.Contains(scrape(t, url), series) {
		t.Fatalf("no metric carries %s before the deletion", series)
	}
	e.kubectlOK("delete", "mcc", "p1", "--wait=false")
	e.waitFor(30*time.Second, "p1's metrics removed", func() (bool, error) {
		for _, line := range strings.Split(scrape(t, url), "\n") {
			if strings.Contains(line, series) {
				return false, fmt.Errorf("still there: %s", line)
			}
		}
		return true, nil
	})
}
