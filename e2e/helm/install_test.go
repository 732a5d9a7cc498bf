// The chart on the local cluster: helm install into a fresh namespace; the
// loopback kubelet runs the chart's two operator pods from the locally built
// binary with the chart's ServiceAccount token, so everything the operator
// does goes through the chart's RBAC alone. The test checks that one replica
// leads, that a MemcachedCluster becomes Available, that killing the leader's
// process and deleting the leader's pod both hand over the Lease (and prints
// how long that took), that reconciling goes on after each, that helm upgrade
// and helm uninstall behave, and what the ServiceAccount may and may not do.
package helm

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/util/rand"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"

	"memcached-operator/e2e/framework"
)

const (
	fullName       = releaseName + "-memcached-operator" // the chart's fullname for this release
	leaseDuration  = 15 * time.Second                    // the chart's defaults
	retryPeriod    = 2 * time.Second
	metricsPort    = 8080
	healthPort     = 8081
	leaderMetric   = "memcached_operator_leader"
	crdName        = "memcachedclusters.memcached.operator.io"
	clusterName    = "cache"
	operatorLabels = "app.kubernetes.io/name=memcached-operator,app.kubernetes.io/instance=" + releaseName
)

var mccGVR = schema.GroupVersionResource{Group: "memcached.operator.io", Version: "v1alpha1", Resource: "memcachedclusters"}

// env is what the local cluster's tests need: clients, and the environment
// for helm, kubectl and e2e/cluster.
type env struct {
	t       *testing.T
	kube    kubernetes.Interface
	dyn     dynamic.Interface
	cmdEnv  []string
	ns      string
	kubectl string
}

// operatorBinary is what the loopback kubelet runs for the chart's image:
// the running cluster's choice (its cluster.env), else the default build.
func operatorBinary(t *testing.T) string {
	if state := os.Getenv("MCOP_E2E_STATE"); state != "" {
		if b, err := os.ReadFile(filepath.Join(state, "cluster.env")); err == nil {
			for _, line := range strings.Split(string(b), "\n") {
				if v, ok := strings.CutPrefix(line, "MCOP_OPERATOR_BINARY="); ok && v != "" {
					return v
				}
			}
		}
	}
	if b := os.Getenv("MCOP_OPERATOR_BINARY"); b != "" {
		return b
	}
	return filepath.Join(repoRoot(t), "build", "bin", "memcached-operator")
}

// needOperator fails (with the reason) when the binary cannot run the chart: the chart's pods
// need leader election and the health endpoints. It fails rather than skips, so a run that
// tests less than it should (a stale MCOP_OPERATOR_BINARY, a missing build) never looks green.
func needOperator(t *testing.T) {
	t.Helper()
	bin := operatorBinary(t)
	if !isExecutable(bin) {
		t.Fatalf("%s is not built (make build); the chart's pods run that binary", bin)
	}
	r := run(t, nil, 30*time.Second, bin, "--help")
	help := r.stdout + r.stderr
	for _, flag := range []string{"--leader-elect", "--health-probe-bind-address", "--metrics-bind-address"} {
		if !strings.Contains(help, flag[1:]) { // "-flag" too, as Go's flag package prints it
			t.Fatalf("%s --help shows no %s: the chart's operator pods need leader election and the health/metrics server", bin, flag)
		}
	}
}

func newEnv(t *testing.T) *env {
	t.Helper()
	cfg := framework.Config(t)
	e := &env{t: t, kube: kubernetes.NewForConfigOrDie(cfg), dyn: dynamic.NewForConfigOrDie(cfg), kubectl: kubectlBin(t)}
	// helm and kubectl from the harness first on PATH, whatever the caller's PATH holds.
	e.cmdEnv = []string{
		"KUBECONFIG=" + os.Getenv("KUBECONFIG"), // framework.Config checked it is set
		"PATH=" + filepath.Dir(helmBin(t)) + ":" + filepath.Dir(e.kubectl) + ":" + os.Getenv("PATH"),
	}
	return e
}

func (e *env) helm(args ...string) string { e.t.Helper(); return helm(e.t, e.cmdEnv, args...) }

func (e *env) kubectlRun(args ...string) result {
	e.t.Helper()
	return run(e.t, e.cmdEnv, 2*time.Minute, e.kubectl, args...)
}

func (e *env) kubectlOK(args ...string) string {
	e.t.Helper()
	r := e.kubectlRun(args...)
	if r.err != nil {
		e.t.Fatalf("kubectl %s:\n%s", strings.Join(args, " "), r)
	}
	return r.stdout
}

// waitFor polls cond every 100ms; on timeout it fails with what and the last error.
func (e *env) waitFor(timeout time.Duration, what string, cond func() (bool, error)) {
	e.t.Helper()
	deadline := time.Now().Add(timeout)
	var lastErr error
	for {
		ok, err := cond()
		if ok {
			return
		}
		lastErr = err
		if time.Now().After(deadline) {
			e.dumpOperator()
			e.t.Fatalf("timed out after %s waiting for %s (last error: %v)", timeout, what, lastErr)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// dumpOperator logs the operator pods and the tails of their logs, for a failure.
func (e *env) dumpOperator() {
	ctx := context.Background()
	pods, err := e.kube.CoreV1().Pods(e.ns).List(ctx, metav1.ListOptions{LabelSelector: operatorLabels})
	if err != nil {
		return
	}
	for _, p := range pods.Items {
		e.t.Logf("operator pod %s phase=%s ready=%v ip=%s restarts=%d", p.Name, p.Status.Phase, podReady(&p), p.Status.PodIP, restarts(&p))
		r := run(e.t, e.cmdEnv, 30*time.Second, filepath.Join(repoRoot(e.t), "e2e", "cluster"), "logs", e.ns+"/"+p.Name)
		out := r.stdout
		if lines := strings.Split(out, "\n"); len(lines) > 40 {
			out = strings.Join(lines[len(lines)-40:], "\n")
		}
		e.t.Logf("logs of %s:\n%s", p.Name, out)
	}
	if l, err := e.lease(); err == nil {
		e.t.Logf("lease holder=%q renew=%v transitions=%d", holder(l), renewTime(l), transitions(l))
	}
}

func podReady(p *corev1.Pod) bool {
	for _, c := range p.Status.Conditions {
		if c.Type == corev1.PodReady {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}

func restarts(p *corev1.Pod) int32 {
	var n int32
	for _, s := range p.Status.ContainerStatuses {
		n += s.RestartCount
	}
	return n
}

func (e *env) lease() (*coordinationv1.Lease, error) {
	return e.kube.CoordinationV1().Leases(e.ns).Get(context.Background(), fullName, metav1.GetOptions{})
}

func holder(l *coordinationv1.Lease) string {
	if l.Spec.HolderIdentity == nil {
		return ""
	}
	return *l.Spec.HolderIdentity
}

func renewTime(l *coordinationv1.Lease) time.Time {
	if l.Spec.RenewTime == nil {
		return time.Time{}
	}
	return l.Spec.RenewTime.Time
}

func transitions(l *coordinationv1.Lease) int32 {
	if l.Spec.LeaseTransitions == nil {
		return 0
	}
	return *l.Spec.LeaseTransitions
}

// operatorPods are the running operator pods (not being deleted).
func (e *env) operatorPods() []corev1.Pod {
	e.t.Helper()
	pods, err := e.kube.CoreV1().Pods(e.ns).List(context.Background(), metav1.ListOptions{LabelSelector: operatorLabels})
	if err != nil {
		e.t.Fatalf("listing operator pods: %v", err)
	}
	var out []corev1.Pod
	for _, p := range pods.Items {
		if p.DeletionTimestamp == nil {
			out = append(out, p)
		}
	}
	return out
}

// podOf is the operator pod whose name the Lease holder identity starts with
// (in a real pod the hostname is the pod name).
func podOf(pods []corev1.Pod, identity string) *corev1.Pod {
	for i := range pods {
		if identity != "" && (identity == pods[i].Name || strings.HasPrefix(identity, pods[i].Name+"_") || strings.HasPrefix(identity, pods[i].Name+"-")) {
			return &pods[i]
		}
	}
	return nil
}

// actingLeader is the operator pod that acts as leader: the one the Lease
// holder identity names or, where the identity does not name a pod (the
// loopback kubelet's processes all see the machine's hostname), the only pod
// whose /metrics reports memcached_operator_leader 1.
func (e *env) actingLeader(identity string) (*corev1.Pod, error) {
	pods := e.operatorPods()
	if p := podOf(pods, identity); p != nil {
		return p, nil
	}
	var leaders []*corev1.Pod
	for i := range pods {
		if pods[i].Status.PodIP == "" {
			continue
		}
		_, body, err := scrape(pods[i].Status.PodIP, metricsPort, "/metrics")
		if err != nil {
			continue
		}
		if metricValue(body, leaderMetric) == "1" {
			leaders = append(leaders, &pods[i])
		}
	}
	if len(leaders) != 1 {
		return nil, fmt.Errorf("%d pods report %s 1 (lease holder %q)", len(leaders), leaderMetric, identity)
	}
	return leaders[0], nil
}

// metricValue is the value of an unlabelled sample in Prometheus text.
func metricValue(text, name string) string {
	for _, line := range strings.Split(text, "\n") {
		if f := strings.Fields(line); len(f) == 2 && f[0] == name {
			return f[1]
		}
	}
	return ""
}

// waitDeploymentReady waits until the Deployment has rolled out: all replicas
// updated and Ready (the standby too: it is Ready once its caches are synced).
func (e *env) waitDeploymentReady(timeout time.Duration) {
	e.t.Helper()
	e.waitFor(timeout, "deployment "+fullName+" rolled out with 2 Ready replicas", func() (bool, error) {
		d, err := e.kube.AppsV1().Deployments(e.ns).Get(context.Background(), fullName, metav1.GetOptions{})
		if err != nil {
			return false, err
		}
		s := d.Status
		if s.ObservedGeneration < d.Generation || s.UpdatedReplicas != 2 || s.ReadyReplicas != 2 || s.Replicas != 2 {
			return false, fmt.Errorf("observed=%d/%d updated=%d ready=%d replicas=%d", s.ObservedGeneration, d.Generation, s.UpdatedReplicas, s.ReadyReplicas, s.Replicas)
		}
		return true, nil
	})
}

// waitLeader waits for a live holder of the Lease among the running pods.
func (e *env) waitLeader(timeout time.Duration) (*coordinationv1.Lease, *corev1.Pod) {
	e.t.Helper()
	var l *coordinationv1.Lease
	var p *corev1.Pod
	e.waitFor(timeout, "a leader among the operator pods", func() (bool, error) {
		var err error
		if l, err = e.lease(); err != nil {
			return false, err
		}
		if holder(l) == "" || time.Since(renewTime(l)) > leaseDuration {
			return false, fmt.Errorf("lease held by %q, renewed %s ago", holder(l), time.Since(renewTime(l)))
		}
		p, err = e.actingLeader(holder(l))
		return p != nil, err
	})
	return l, p
}

func (e *env) mcc(name string) (*unstructured.Unstructured, error) {
	return e.dyn.Resource(mccGVR).Namespace(e.ns).Get(context.Background(), name, metav1.GetOptions{})
}

// waitAvailable waits until the cluster has observed its spec and reports
// Available=True with want Ready replicas.
func (e *env) waitAvailable(name string, want int64, timeout time.Duration) {
	e.t.Helper()
	e.waitFor(timeout, fmt.Sprintf("MemcachedCluster %s/%s Available with %d ready replicas", e.ns, name, want), func() (bool, error) {
		u, err := e.mcc(name)
		if err != nil {
			return false, err
		}
		gen := u.GetGeneration()
		observed, _, _ := unstructured.NestedInt64(u.Object, "status", "observedGeneration")
		ready, _, _ := unstructured.NestedInt64(u.Object, "status", "readyReplicas")
		conds, _, _ := unstructured.NestedSlice(u.Object, "status", "conditions")
		available := ""
		for _, c := range conds {
			m, _ := c.(map[string]any)
			if m["type"] == "Available" {
				available = fmt.Sprint(m["status"])
			}
		}
		if observed != gen || ready != want || available != "True" {
			return false, fmt.Errorf("generation=%d observed=%d readyReplicas=%d Available=%q", gen, observed, ready, available)
		}
		return true, nil
	})
}

// canI asks the API server what the chart's ServiceAccount may do.
func (e *env) canI(want bool, args ...string) {
	e.t.Helper()
	sa := "system:serviceaccount:" + e.ns + ":" + fullName
	r := e.kubectlRun(append([]string{"auth", "can-i", "--as=" + sa}, args...)...)
	got := strings.TrimSpace(r.stdout) == "yes"
	if got != want {
		e.t.Errorf("kubectl auth can-i %s as the operator: %q, want %v (%s)", strings.Join(args, " "), strings.TrimSpace(r.stdout), want, strings.TrimSpace(r.stderr))
	}
}

// figures are appended to $MCOP_E2E_STATE/results/helm-handover.txt (go test
// shows a passing test's output only with -v).
func (e *env) report(format string, args ...any) {
	line := fmt.Sprintf(format, args...)
	e.t.Log(line)
	fmt.Println("helm e2e: " + line)
	if dir := os.Getenv("MCOP_E2E_STATE"); dir != "" {
		_ = os.MkdirAll(filepath.Join(dir, "results"), 0o755)
		if f, err := os.OpenFile(filepath.Join(dir, "results", "helm-handover.txt"), os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644); err == nil {
			fmt.Fprintf(f, "%s %s\n", time.Now().UTC().Format(time.RFC3339), line)
			f.Close()
		}
	}
}

// scrape GETs http://podIP:port/path from this machine (pod IPs are local).
func scrape(ip string, port int, path string) (int, string, error) {
	c := &http.Client{Timeout: 5 * time.Second}
	resp, err := c.Get("http://" + net.JoinHostPort(ip, fmt.Sprint(port)) + path)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b), nil
}

func TestHelmInstallLeaderElectionUpgradeUninstall(t *testing.T) {
	needOperator(t)
	e := newEnv(t)
	ctx := context.Background()
	e.ns = "mcop-helm-" + rand.String(5)
	// Helm installs the chart's crds/ only where the CRD is missing.
	crdExisted := e.kubectlRun("get", "crd", crdName).err == nil
	t.Cleanup(func() {
		if t.Failed() {
			e.dumpOperator()
		}
		_ = run(t, e.cmdEnv, 2*time.Minute, helmBin(t), "uninstall", releaseName, "-n", e.ns, "--ignore-not-found", "--wait")
		_ = e.kube.CoreV1().Namespaces().Delete(context.Background(), e.ns, metav1.DeleteOptions{})
	})

	// The namespace enforces the Restricted Pod Security Standard, as every test namespace
	// does: the operator's pods must pass it. Created here with its labels (helm's
	// --create-namespace below then finds it), since helm cannot label what it creates.
	if _, err := e.kube.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{
		ObjectMeta: metav1.ObjectMeta{Name: e.ns, Labels: framework.RestrictedNamespaceLabels()}}, metav1.CreateOptions{}); err != nil {
		t.Fatalf("namespace %s: %v", e.ns, err)
	}

	// 1. Install, as the README says, with the one setting this cluster needs:
	// all pods share the host's network, so each listens on its own pod IP.
	start := time.Now()
	e.helm("install", releaseName, chartDir, "--namespace", e.ns, "--create-namespace",
		"--set", "listenOnPodIP=true", "--set", "image.pullPolicy=Never", "--set", "logFormat=text")
	e.waitDeploymentReady(3 * time.Minute)
	e.report("install: helm install to 2 Ready operator pods in %s", time.Since(start).Round(10*time.Millisecond))
	if r := e.kubectlRun("get", "crd", crdName); r.err != nil {
		t.Fatalf("CRD %s not installed by the chart (existed before: %v):\n%s", crdName, crdExisted, r)
	}

	// 2. One leader among the two replicas.
	l, leader := e.waitLeader(leaseDuration + 10*time.Second)
	pods := e.operatorPods()
	if len(pods) != 2 {
		t.Fatalf("want 2 operator pods, have %d", len(pods))
	}
	e.report("leader: %s (lease holder %q) of %d pods", leader.Name, holder(l), len(pods))
	for _, p := range pods {
		for _, path := range []string{"/healthz", "/readyz"} {
			if code, body, err := scrape(p.Status.PodIP, healthPort, path); err != nil || code != 200 {
				t.Errorf("pod %s %s: code=%d err=%v body=%q", p.Name, path, code, err, body)
			}
		}
		code, body, err := scrape(p.Status.PodIP, metricsPort, "/metrics")
		if err != nil || code != 200 || !strings.Contains(body, "# TYPE ") {
			t.Errorf("pod %s /metrics: code=%d err=%v, want Prometheus text", p.Name, code, err)
		}
		want := map[bool]string{true: "1", false: "0"}[p.Name == leader.Name]
		if got := metricValue(body, leaderMetric); got != want {
			t.Errorf("pod %s (leader: %v) reports %s %q, want %s", p.Name, p.Name == leader.Name, leaderMetric, got, want)
		}
	}

	// 3. What the ServiceAccount may do (all-namespaces mode: a ClusterRole).
	e.canI(true, "list", "memcachedclusters.memcached.operator.io", "--all-namespaces")
	e.canI(true, "watch", "memcachedclusters.memcached.operator.io", "-n", "default")
	e.canI(true, "patch", "memcachedclusters.memcached.operator.io", "--subresource=status", "-n", e.ns)
	e.canI(true, "update", "memcachedclusters.memcached.operator.io", "--subresource=status", "-n", e.ns)
	e.canI(true, "update", "memcachedclusters.memcached.operator.io", "--subresource=finalizers", "-n", e.ns)
	e.canI(true, "patch", "statefulsets.apps", "-n", e.ns)
	e.canI(true, "delete", "poddisruptionbudgets.policy", "-n", e.ns)
	e.canI(true, "create", "configmaps", "-n", e.ns)
	// Nothing beyond that: the spec is the user's, children are applied (a
	// patch) and deleted by the garbage collector, not by the operator.
	e.canI(false, "patch", "memcachedclusters.memcached.operator.io", "-n", e.ns)
	e.canI(false, "update", "memcachedclusters.memcached.operator.io", "-n", e.ns)
	e.canI(false, "create", "memcachedclusters.memcached.operator.io", "-n", e.ns)
	e.canI(false, "delete", "configmaps", "-n", e.ns)
	e.canI(false, "delete", "services", "-n", e.ns)
	e.canI(false, "delete", "statefulsets.apps", "-n", e.ns)
	e.canI(false, "update", "configmaps", "-n", e.ns)
	e.canI(false, "update", "statefulsets.apps", "-n", e.ns)
	e.canI(false, "deletecollection", "poddisruptionbudgets.policy", "-n", e.ns)
	e.canI(true, "watch", "pods", "-n", e.ns)
	e.canI(true, "create", "events", "-n", e.ns)
	e.canI(true, "update", "leases.coordination.k8s.io/"+fullName, "-n", e.ns)
	e.canI(false, "update", "leases.coordination.k8s.io/someone-elses-lease", "-n", e.ns)
	e.canI(false, "create", "leases.coordination.k8s.io", "-n", "kube-system")
	// Secrets (issue 11): the operator reads the TLS and auth Secrets a cluster names, one
	// by one; it may not list or watch them (every Secret of the cluster would flow through
	// it), nor write or delete any.
	e.canI(true, "get", "secrets", "-n", e.ns)
	e.canI(true, "get", "secrets", "-n", "default")
	for _, verb := range []string{"list", "watch", "create", "update", "patch", "delete", "deletecollection"} {
		e.canI(false, verb, "secrets", "-n", e.ns)
	}
	e.canI(false, "list", "secrets", "--all-namespaces")
	e.canI(false, "watch", "secrets", "--all-namespaces")
	e.canI(true, "delete", "pods", "-n", e.ns) // a Warm rolling update; the owned-objects policy narrows it
	e.canI(false, "deletecollection", "pods", "-n", e.ns)
	e.canI(false, "create", "pods/exec", "-n", e.ns)
	e.canI(false, "create", "clusterroles.rbac.authorization.k8s.io")
	e.canI(false, "create", "rolebindings.rbac.authorization.k8s.io", "-n", e.ns)
	e.canI(false, "delete", "memcachedclusters.memcached.operator.io", "-n", e.ns)
	e.canI(false, "delete", "customresourcedefinitions.apiextensions.k8s.io")
	e.canI(false, "impersonate", "serviceaccounts", "-n", e.ns)

	// 4. A MemcachedCluster reconciled by the chart's operator under its RBAC alone.
	mcc := &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": "memcached.operator.io/v1alpha1",
		"kind":       "MemcachedCluster",
		"metadata":   map[string]any{"name": clusterName, "namespace": e.ns},
		// A short drain so that the scale-down at the end does not wait the default minute.
		"spec": map[string]any{"replicas": int64(2), "drain": map[string]any{"minSeconds": int64(1), "timeoutSeconds": int64(60)}},
	}}
	start = time.Now()
	if _, err := e.dyn.Resource(mccGVR).Namespace(e.ns).Create(ctx, mcc, metav1.CreateOptions{}); err != nil {
		t.Fatalf("creating MemcachedCluster: %v", err)
	}
	e.waitAvailable(clusterName, 2, 3*time.Minute)
	e.report("reconcile: MemcachedCluster with 2 replicas Available in %s", time.Since(start).Round(10*time.Millisecond))

	// GitOps: another manager's annotation on the StatefulSet stays (the
	// operator applies only its own fields), and nothing is rewritten in
	// steady state.
	e.kubectlOK("annotate", "-n", e.ns, "statefulset/"+clusterName, "--field-manager=gitops-tool", "example.com/owned-by=gitops")
	e.steadyState(10 * time.Second)
	sts, err := e.kube.AppsV1().StatefulSets(e.ns).Get(ctx, clusterName, metav1.GetOptions{})
	if err != nil || sts.Annotations["example.com/owned-by"] != "gitops" {
		t.Errorf("another manager's annotation on StatefulSet %s is gone (err=%v, annotations %v)", clusterName, err, sts.GetAnnotations())
	}

	// The one delete the operator makes itself, under the chart's RBAC:
	// podDisruptionBudget.enabled=false removes the cluster's PDB.
	if _, err := e.kube.PolicyV1().PodDisruptionBudgets(e.ns).Get(ctx, clusterName, metav1.GetOptions{}); err != nil {
		t.Errorf("PodDisruptionBudget %s of an Available cluster: %v", clusterName, err)
	}
	e.kubectlOK("patch", "-n", e.ns, "memcachedclusters.memcached.operator.io/"+clusterName, "--type=merge",
		"-p", `{"spec":{"podDisruptionBudget":{"enabled":false}}}`)
	e.waitFor(time.Minute, "the PodDisruptionBudget deleted after podDisruptionBudget.enabled=false", func() (bool, error) {
		_, err := e.kube.PolicyV1().PodDisruptionBudgets(e.ns).Get(ctx, clusterName, metav1.GetOptions{})
		if apierrors.IsNotFound(err) {
			return true, nil
		}
		return false, err
	})

	// What RBAC cannot say, the chart's ValidatingAdmissionPolicy does: as the
	// operator's ServiceAccount, a write to an object no MemcachedCluster
	// controls is refused by the API server, a write to its own child is not
	// (server-side dry runs: admission runs, nothing is stored).
	sa := "system:serviceaccount:" + e.ns + ":" + fullName
	e.kubectlOK("create", "configmap", "someone-elses", "-n", e.ns, "--from-literal=k=v")
	e.kubectlOK("create", "poddisruptionbudget", "someone-elses", "-n", e.ns, "--selector=app=other", "--max-unavailable=1")
	for _, args := range [][]string{
		{"patch", "configmap", "someone-elses", "--type=merge", "-p", `{"data":{"k":"taken over"}}`},
		{"create", "configmap", "not-owned", "--from-literal=k=v"},
		{"delete", "poddisruptionbudget", "someone-elses"},
	} {
		r := e.kubectlRun(append(args, "-n", e.ns, "--dry-run=server", "--as="+sa)...)
		if r.err == nil || !strings.Contains(r.stderr, "controlled by a MemcachedCluster") {
			t.Errorf("kubectl %s as the operator: want the owned-objects policy to refuse it:\n%s", strings.Join(args, " "), r)
		}
	}
	if r := e.kubectlRun("patch", "configmap", clusterName+"-endpoints", "-n", e.ns, "--type=merge", "--dry-run=server", "--as="+sa,
		"-p", `{"metadata":{"annotations":{"example.com/x":"y"}}}`); r.err != nil {
		t.Errorf("patching its own endpoints ConfigMap as the operator:\n%s", r)
	}
	// Pods: the one pod write, the deletion that restarts a member in a Warm
	// rolling update, only for a member of a MemcachedCluster's StatefulSet.
	if r := e.kubectlRun("delete", "pod", leader.Name, "-n", e.ns, "--dry-run=server", "--as="+sa); r.err == nil ||
		!strings.Contains(r.stderr, "may only delete pods of the StatefulSet of a MemcachedCluster") {
		t.Errorf("deleting an operator pod as the operator: want the owned-objects policy to refuse it:\n%s", r)
	}
	if r := e.kubectlRun("delete", "pod", clusterName+"-0", "-n", e.ns, "--dry-run=server", "--as="+sa); r.err != nil {
		t.Errorf("deleting a member pod as the operator (a Warm rolling update):\n%s", r)
	}

	// 5. Kill the leader's process: the Lease is renewed by a live process
	// within the lease duration (plus a retry period), and reconciling goes on.
	e.handover(leader, "kill", func() {
		r := run(t, e.cmdEnv, time.Minute, filepath.Join(repoRoot(t), "e2e", "cluster"), "fault", "pod-kill", e.ns+"/"+leader.Name)
		if r.err != nil {
			t.Fatalf("e2e/cluster fault pod-kill %s/%s:\n%s", e.ns, leader.Name, r)
		}
	})
	e.scale(3)

	// 6. Delete the leader's pod (SIGTERM): it releases the Lease and the
	// standby takes over at once, well within a lease duration.
	_, leader = e.waitLeader(leaseDuration + 10*time.Second)
	e.handover(leader, "graceful", func() {
		if err := e.kube.CoreV1().Pods(e.ns).Delete(ctx, leader.Name, metav1.DeleteOptions{}); err != nil {
			t.Fatalf("deleting leader pod %s: %v", leader.Name, err)
		}
	})
	e.scale(4)
	e.waitDeploymentReady(3 * time.Minute)

	// 7. helm upgrade: a new log level and one watched namespace. The pods
	// roll with the new flags, RBAC turns into a namespaced Role, and the
	// operator goes on reconciling.
	start = time.Now()
	e.helm("upgrade", releaseName, chartDir, "--namespace", e.ns, "--reuse-values",
		"--set", "logLevel=debug", "--set", "watchNamespace="+e.ns)
	e.waitDeploymentReady(3 * time.Minute)
	e.report("upgrade: helm upgrade (logLevel, watchNamespace) to 2 Ready pods in %s", time.Since(start).Round(10*time.Millisecond))
	for _, p := range e.operatorPods() {
		args := p.Spec.Containers[0].Args
		if !slices.Contains(args, "--log-level=debug") || !slices.Contains(args, "--namespace="+e.ns) {
			t.Errorf("pod %s after upgrade runs with %v", p.Name, args)
		}
	}
	if _, err := e.kube.RbacV1().ClusterRoles().Get(ctx, fullName, metav1.GetOptions{}); !apierrors.IsNotFound(err) {
		t.Errorf("ClusterRole %s still there after switching to watchNamespace (err=%v)", fullName, err)
	}
	if _, err := e.kube.RbacV1().Roles(e.ns).Get(ctx, fullName, metav1.GetOptions{}); err != nil {
		t.Errorf("Role %s/%s after upgrade: %v", e.ns, fullName, err)
	}
	e.canI(true, "list", "memcachedclusters.memcached.operator.io", "-n", e.ns)
	e.canI(false, "list", "memcachedclusters.memcached.operator.io", "--all-namespaces")
	e.canI(false, "patch", "statefulsets.apps", "-n", "default")
	e.canI(true, "get", "secrets", "-n", e.ns)
	e.canI(false, "get", "secrets", "-n", "default")
	for _, verb := range []string{"list", "watch", "create", "update", "delete"} {
		e.canI(false, verb, "secrets", "-n", e.ns)
	}
	e.waitLeader(leaseDuration + 10*time.Second)
	e.scale(3)
	var history []map[string]any
	if err := json.Unmarshal([]byte(e.helm("history", releaseName, "-n", e.ns, "-o", "json")), &history); err != nil || len(history) != 2 {
		t.Errorf("helm history after one upgrade: %d revisions (err=%v), want 2", len(history), err)
	} else if history[1]["status"] != "deployed" || history[0]["status"] != "superseded" {
		t.Errorf("helm history after one upgrade: %v", history)
	}

	// 8. helm uninstall: the release's objects go, the CRD and the user's
	// MemcachedCluster stay (Helm never deletes CRDs from crds/).
	e.helm("uninstall", releaseName, "--namespace", e.ns, "--wait")
	e.waitFor(2*time.Minute, "operator pods gone after uninstall", func() (bool, error) {
		return len(e.operatorPods()) == 0, nil
	})
	if _, err := e.kube.AppsV1().Deployments(e.ns).Get(ctx, fullName, metav1.GetOptions{}); !apierrors.IsNotFound(err) {
		t.Errorf("Deployment after uninstall: %v", err)
	}
	if _, err := e.kube.CoreV1().ServiceAccounts(e.ns).Get(ctx, fullName, metav1.GetOptions{}); !apierrors.IsNotFound(err) {
		t.Errorf("ServiceAccount after uninstall: %v", err)
	}
	if _, err := e.kube.RbacV1().Roles(e.ns).Get(ctx, fullName, metav1.GetOptions{}); !apierrors.IsNotFound(err) {
		t.Errorf("Role after uninstall: %v", err)
	}
	if r := e.kubectlRun("get", "crd", crdName); r.err != nil {
		t.Errorf("CRD %s gone after helm uninstall:\n%s", crdName, r)
	}
	if _, err := e.mcc(clusterName); err != nil {
		t.Errorf("MemcachedCluster after helm uninstall: %v", err)
	}
}

// handover runs act (which stops the leader), then measures how long until
// a live process holds the Lease again: the first renewal stamped after act
// began. A standby may take over only when the lease has expired, so after a
// kill that is up to leaseDuration after the dead leader's last renewal, plus
// one retry period (client-go style jitter makes that up to 2.2 of them); on a
// graceful stop the leader releases the Lease and a standby takes it at once.
func (e *env) handover(leader *corev1.Pod, how string, act func()) {
	e.t.Helper()
	before, err := e.lease()
	if err != nil {
		e.t.Fatalf("lease: %v", err)
	}
	oldHolder := holder(before)
	lastRenew := renewTime(before) // the old leader's last renewal, as seen
	t0 := time.Now()
	act()
	var l *coordinationv1.Lease
	released := time.Duration(-1)
	limit := leaseDuration + 3*retryPeriod
	e.waitFor(limit+15*time.Second, "a new Lease holder after the leader's "+how, func() (bool, error) {
		var err error
		if l, err = e.lease(); err != nil {
			return false, err
		}
		h := holder(l)
		if h == oldHolder && renewTime(l).After(lastRenew) {
			lastRenew = renewTime(l)
		}
		if h == "" && released < 0 {
			released = time.Since(t0)
		}
		if h == "" || h == oldHolder {
			return false, fmt.Errorf("holder %q renewed %v", h, renewTime(l))
		}
		return true, nil
	})
	took := time.Since(t0)
	gap := renewTime(l).Sub(lastRenew)
	who := "a pod not identified"
	var p *corev1.Pod
	for deadline := time.Now().Add(10 * time.Second); p == nil && time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
		p, _ = e.actingLeader(holder(l))
	}
	if p != nil {
		who = p.Name
		switch {
		case p.Name == leader.Name:
			who += " (the same pod, its container restarted)"
		case !p.CreationTimestamp.Time.Before(t0.Truncate(time.Second)):
			who += " (the Deployment's replacement pod)"
		default:
			who += " (the standby)"
		}
	}
	rel := ""
	if released >= 0 {
		rel = fmt.Sprintf("; Lease released %s after the stop", released.Round(time.Millisecond))
	}
	e.report("handover on %s of leader %s: new holder %s after %s (%s after the old leader's last renewal)%s; lease %s, retry %s, transitions %d->%d",
		how, leader.Name, who, took.Round(time.Millisecond), gap.Round(time.Millisecond), rel, leaseDuration, retryPeriod, transitions(before), transitions(l))
	if took > limit {
		e.t.Errorf("handover on %s took %s, more than lease duration + 3 retry periods (%s)", how, took, limit)
	}
	if how == "graceful" && took > leaseDuration {
		e.t.Errorf("graceful handover took %s: the leader should release the Lease on SIGTERM so a standby need not wait out the lease (%s)", took, leaseDuration)
	}
}

// steadyState fails if the cluster, its StatefulSet, Services or ConfigMap
// change during d (the operator must not rewrite what already matches).
func (e *env) steadyState(d time.Duration) {
	e.t.Helper()
	ctx := context.Background()
	snapshot := func() map[string]string {
		m := map[string]string{}
		if u, err := e.mcc(clusterName); err == nil {
			m["MemcachedCluster/"+u.GetName()] = u.GetResourceVersion()
		}
		if l, err := e.kube.AppsV1().StatefulSets(e.ns).List(ctx, metav1.ListOptions{}); err == nil {
			for _, o := range l.Items {
				m["StatefulSet/"+o.Name] = o.ResourceVersion
			}
		}
		if l, err := e.kube.CoreV1().Services(e.ns).List(ctx, metav1.ListOptions{}); err == nil {
			for _, o := range l.Items {
				m["Service/"+o.Name] = o.ResourceVersion
			}
		}
		if l, err := e.kube.CoreV1().ConfigMaps(e.ns).List(ctx, metav1.ListOptions{}); err == nil {
			for _, o := range l.Items {
				m["ConfigMap/"+o.Name] = o.ResourceVersion
			}
		}
		return m
	}
	// Let the annotation's own watch event be reconciled first.
	time.Sleep(2 * time.Second)
	before := snapshot()
	time.Sleep(d)
	after := snapshot()
	for k, v := range before {
		if after[k] != v {
			e.t.Errorf("%s changed in steady state (resourceVersion %s -> %s)", k, v, after[k])
		}
	}
	e.report("steady state: %d objects unchanged for %s", len(before), d)
}

// scale changes spec.replicas through the scale subresource (as kubectl
// scale and an HPA do) and waits for the operator to converge: the cluster
// Available with n ready replicas, its StatefulSet at n, and n pods left.
func (e *env) scale(n int64) {
	e.t.Helper()
	ctx := context.Background()
	start := time.Now()
	e.kubectlOK("scale", "-n", e.ns, "memcachedclusters.memcached.operator.io/"+clusterName, fmt.Sprintf("--replicas=%d", n))
	e.waitAvailable(clusterName, n, 3*time.Minute)
	e.waitFor(3*time.Minute, fmt.Sprintf("StatefulSet %s at %d replicas with %d pods", clusterName, n, n), func() (bool, error) {
		sts, err := e.kube.AppsV1().StatefulSets(e.ns).Get(ctx, clusterName, metav1.GetOptions{})
		if err != nil {
			return false, err
		}
		pods, err := e.kube.CoreV1().Pods(e.ns).List(ctx, metav1.ListOptions{LabelSelector: metav1.FormatLabelSelector(sts.Spec.Selector)})
		if err != nil {
			return false, err
		}
		if sts.Spec.Replicas == nil || int64(*sts.Spec.Replicas) != n || int64(sts.Status.ReadyReplicas) != n || int64(len(pods.Items)) != n {
			return false, fmt.Errorf("spec.replicas=%v ready=%d pods=%d", ptrVal(sts.Spec.Replicas), sts.Status.ReadyReplicas, len(pods.Items))
		}
		return true, nil
	})
	version := ""
	if u, err := e.mcc(clusterName); err == nil {
		v, _, _ := unstructured.NestedInt64(u.Object, "status", "configVersion")
		version = fmt.Sprint(v)
	}
	e.report("reconcile: scaled to %d, converged in %s (config version %s)", n, time.Since(start).Round(10*time.Millisecond), version)
}

func ptrVal(p *int32) any {
	if p == nil {
		return nil
	}
	return *p
}
