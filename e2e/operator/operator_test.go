// Package operator runs the memcached-operator binary against the local cluster's real API
// server and loopback kubelet (real memcached processes), and checks what a user sees: the
// CRD's validation, a cluster becoming Available, kubectl scale up and down with the drain in
// between (clients holding connections, an operator killed mid-drain), garbage collection, and a
// quiet steady state.
//
// This file holds the shared pieces: the CRDs, the operator subprocess, clients, and readers
// for the MemcachedCluster and its endpoints ConfigMap.
package operator

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"

	"memcached-operator/e2e/framework"
)

var mccGVR = schema.GroupVersionResource{Group: "memcached.operator.io", Version: "v1alpha1", Resource: "memcachedclusters"}

const crdName = "memcachedclusters.memcached.operator.io"

// repoRoot is two levels above this package: go test runs in the package directory, and
// runtime.Caller cannot be used because run-tests builds with -trimpath.
func repoRoot(t testing.TB) string {
	wd, err := os.Getwd()
	if err != nil {
		t.Fatalf("getwd: %v", err)
	}
	return filepath.Clean(filepath.Join(wd, "..", ".."))
}

// env is one test's view of the cluster.
type env struct {
	t    *testing.T
	kube kubernetes.Interface
	dyn  dynamic.Interface
	ns   string
}

func newEnv(t *testing.T) *env {
	t.Helper()
	cfg := framework.Config(t)
	e := &env{t: t, kube: kubernetes.NewForConfigOrDie(cfg), dyn: dynamic.NewForConfigOrDie(cfg)}
	applyCRDs(t)
	e.ns = framework.NewNamespace(t, e.kube, "mcop")
	return e
}

var crdOnce sync.Once

// applyCRDs applies crds/ with kubectl, as a user would, and waits until it is served.
func applyCRDs(t *testing.T) {
	t.Helper()
	var err error
	var out string
	crdOnce.Do(func() {
		out, err = kubectl("apply", "-f", filepath.Join(repoRoot(t), "crds"))
		// On a fresh cluster the CRD can have no status yet, and kubectl wait then fails at
		// once (".status.conditions accessor error") instead of waiting: try again.
		for i := 0; err == nil; i++ {
			out, err = kubectl("wait", "--for=condition=Established", "--timeout=60s", "crd/"+crdName)
			if err == nil || !strings.Contains(out, "accessor error") || i == 20 {
				break
			}
			err = nil
			time.Sleep(500 * time.Millisecond)
		}
	})
	if err != nil {
		t.Fatalf("applying CRDs: %v\n%s", err, out)
	}
}

func kubectl(args ...string) (string, error) {
	var stdout, stderr bytes.Buffer
	cmd := exec.Command("kubectl", args...)
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	return strings.TrimSpace(stdout.String() + stderr.String()), err
}

func (e *env) kubectlOK(args ...string) string {
	e.t.Helper()
	out, err := kubectl(append(args, "-n", e.ns)...)
	if err != nil {
		e.t.Fatalf("kubectl %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return out
}

// applyYAML applies a manifest with kubectl and returns kubectl's output and error.
// createCluster applies a MemcachedCluster with the given spec (YAML, indented as under
// "spec:") and fails the test if the API server refuses it.
func (e *env) createCluster(name, spec string) {
	e.t.Helper()
	manifest := "apiVersion: memcached.operator.io/v1alpha1\nkind: MemcachedCluster\nmetadata:\n  name: " +
		name + "\nspec:\n" + spec
	if out, err := e.applyYAML(manifest); err != nil {
		e.t.Fatalf("creating MemcachedCluster %s: %v\n%s", name, err, out)
	}
}

func (e *env) applyYAML(manifest string) (string, error) {
	cmd := exec.Command("kubectl", "apply", "-n", e.ns, "-f", "-")
	cmd.Stdin = strings.NewReader(manifest)
	out, err := cmd.CombinedOutput()
	return strings.TrimSpace(string(out)), err
}

// ---------------------------------------------------------------------------------------------
// The operator as a subprocess.

func operatorBinary(t testing.TB) string {
	if b := os.Getenv("MCOP_OPERATOR_BINARY"); b != "" {
		return b
	}
	return filepath.Join(repoRoot(t), "build", "bin", "memcached-operator")
}

func (p *operatorProc) pid() int { return p.cmd.Process.Pid }

type operatorProc struct {
	t    *testing.T
	cmd  *exec.Cmd
	log  string
	done chan struct{}
}

// startOperator runs build/bin/memcached-operator with the cluster's KUBECONFIG, watching only
// the test's namespace when the binary supports --namespace.
// startOperatorWithMetrics starts the operator with its metrics on a free port and returns the
// operator and the /metrics URL.
func (e *env) startOperatorWithMetrics(extra ...string) (*operatorProc, string) {
	port := freePort(e.t)
	op := e.startOperator(append([]string{fmt.Sprintf("--metrics-bind-address=127.0.0.1:%d", port)}, extra...)...)
	return op, fmt.Sprintf("http://127.0.0.1:%d/metrics", port)
}

// createAvailableClusters creates clusters prefix0..prefix<n-1> with spec and waits until each
// is Available.
func (e *env) createAvailableClusters(prefix string, n int, spec string) {
	for i := 0; i < n; i++ {
		e.createCluster(fmt.Sprintf("%s%d", prefix, i), spec)
	}
	for i := 0; i < n; i++ {
		e.waitAvailable(fmt.Sprintf("%s%d", prefix, i), 120*time.Second)
	}
}

func (e *env) startOperator(extra ...string) *operatorProc {
	e.t.Helper()
	return e.startOperatorWith(os.Getenv("KUBECONFIG"), extra...)
}

// startOperatorWith is startOperator with another kubeconfig (e.g. one through an apiProxy).
func (e *env) startOperatorWith(kubeconfig string, extra ...string) *operatorProc {
	e.t.Helper()
	bin := operatorBinary(e.t)
	if _, err := os.Stat(bin); err != nil {
		e.t.Fatalf("%s is not built (make build)", bin)
	}
	help, _ := exec.Command(bin, "--help").CombinedOutput()
	args := []string{"--kubeconfig", kubeconfig}
	if bytes.Contains(help, []byte("--namespace")) {
		args = append(args, "--namespace", e.ns)
	}
	// No fixed ports: a restarted operator (or another test's) must not collide ("0" disables).
	for _, flag := range []string{"--metrics-bind-address", "--health-probe-bind-address"} {
		if bytes.Contains(help, []byte(flag)) && !slices.ContainsFunc(extra, func(a string) bool { return strings.HasPrefix(a, flag) }) {
			args = append(args, flag+"=0")
		}
	}
	args = append(args, extra...)
	logPath := filepath.Join(e.t.TempDir(), fmt.Sprintf("operator-%d.log", time.Now().UnixNano()))
	f, err := os.Create(logPath)
	if err != nil {
		e.t.Fatal(err)
	}
	cmd := exec.Command(bin, args...)
	cmd.Stdout, cmd.Stderr = f, f
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		e.t.Fatalf("starting %s: %v", bin, err)
	}
	p := &operatorProc{t: e.t, cmd: cmd, log: logPath, done: make(chan struct{})}
	go func() { _ = cmd.Wait(); f.Close(); close(p.done) }()
	e.t.Cleanup(func() {
		p.stop()
		if e.t.Failed() {
			b, _ := os.ReadFile(logPath)
			lines := strings.Split(strings.TrimSpace(string(b)), "\n")
			if len(lines) > 80 {
				lines = lines[len(lines)-80:]
			}
			e.t.Logf("operator log tail (%s):\n%s", logPath, strings.Join(lines, "\n"))
		}
	})
	e.t.Logf("operator started: %s %s (log %s)", bin, strings.Join(args, " "), logPath)
	return p
}

// exitCode is the process's exit status once it has ended (-1 when killed by a signal).
func (p *operatorProc) exitCode() int {
	<-p.done
	return p.cmd.ProcessState.ExitCode()
}

// logText is what the operator has logged so far.
func (p *operatorProc) logText() string {
	b, _ := os.ReadFile(p.log)
	return string(b)
}

func (p *operatorProc) running() bool {
	select {
	case <-p.done:
		return false
	default:
		return true
	}
}

// stop sends SIGTERM and waits (then SIGKILL): a clean shutdown.
func (p *operatorProc) stop() {
	if !p.running() {
		return
	}
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(10 * time.Second):
		p.t.Errorf("operator did not exit within 10s of SIGTERM")
		_ = syscall.Kill(-p.cmd.Process.Pid, syscall.SIGKILL)
		<-p.done
	}
}

// kill is an operator crash: SIGKILL, no chance to clean up.
func (p *operatorProc) kill() {
	if !p.running() {
		return
	}
	_ = syscall.Kill(-p.cmd.Process.Pid, syscall.SIGKILL)
	<-p.done
}

// ---------------------------------------------------------------------------------------------
// Reading the cluster.

func (e *env) mcc(name string) *unstructured.Unstructured {
	e.t.Helper()
	u, err := e.dyn.Resource(mccGVR).Namespace(e.ns).Get(context.Background(), name, metav1.GetOptions{})
	if err != nil {
		e.t.Fatalf("get mcc %s: %v", name, err)
	}
	return u
}

type condition struct {
	Type, Status, Reason, Message string
	ObservedGeneration            int64
	LastTransitionTime            string
}

type member struct {
	Name, Host, Address, State string
	Ordinal                    int64
	BaselineConnections        *int64
}

type drainStatus struct {
	TargetReplicas int64
	Members        []string
	StartedAt      string
	PublishedAt    string
	Outcome        string
}

type clusterStatus struct {
	ObservedGeneration int64
	Replicas           int64
	ReadyReplicas      int64
	Selector           string
	ConfigVersion      int64
	Phase              string
	Members            []member
	Drain              *drainStatus
	Conditions         []condition
}

func statusOf(u *unstructured.Unstructured) clusterStatus {
	var s clusterStatus
	raw, ok := u.Object["status"]
	if !ok {
		return s
	}
	b, _ := json.Marshal(raw)
	_ = json.Unmarshal(b, &s)
	return s
}

func (s clusterStatus) condition(t string) condition {
	for _, c := range s.Conditions {
		if c.Type == t {
			return c
		}
	}
	return condition{}
}

type endpoints = framework.Endpoints

// endpointsOf reads the endpoints ConfigMap; ok is false when it does not exist yet.
func (e *env) endpointsOf(cmName string) (endpoints, *corev1.ConfigMap, bool) {
	e.t.Helper()
	cm, err := e.kube.CoreV1().ConfigMaps(e.ns).Get(context.Background(), cmName, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		return endpoints{}, nil, false
	}
	if err != nil {
		e.t.Fatalf("get configmap %s: %v", cmName, err)
	}
	var ep endpoints
	if err := json.Unmarshal([]byte(cm.Data["endpoints.json"]), &ep); err != nil {
		e.t.Fatalf("configmap %s: endpoints.json does not parse: %v\n%s", cmName, err, cm.Data["endpoints.json"])
	}
	return ep, cm, true
}

func (e *env) waitFor(timeout time.Duration, what string, cond func() (bool, error)) {
	e.t.Helper()
	framework.WaitFor(e.t, timeout, what, cond)
}

func (e *env) pod(name string) (*corev1.Pod, bool) {
	p, err := e.kube.CoreV1().Pods(e.ns).Get(context.Background(), name, metav1.GetOptions{})
	if err != nil {
		return nil, false
	}
	return p, true
}

func (e *env) stsReplicas(name string) int32 {
	e.t.Helper()
	s, err := e.kube.AppsV1().StatefulSets(e.ns).Get(context.Background(), name, metav1.GetOptions{})
	if err != nil || s.Spec.Replicas == nil {
		return -1
	}
	return *s.Spec.Replicas
}

// waitEvent waits for an event with this reason on the object. A pass sends its events after
// the writes they describe, so an event trails by a few milliseconds the ConfigMap or status a
// test has just seen: checking at once raced with it (a missing MemberFlushed event once).
func (e *env) waitEvent(object, reason string, timeout time.Duration) {
	e.t.Helper()
	e.waitFor(timeout, "a "+reason+" event on "+object, func() (bool, error) {
		return len(e.eventsWithReason(object, reason)) > 0, nil
	})
}

func (e *env) eventsWithReason(object, reason string) []corev1.Event {
	e.t.Helper()
	list, err := e.kube.CoreV1().Events(e.ns).List(context.Background(), metav1.ListOptions{})
	if err != nil {
		e.t.Fatalf("list events: %v", err)
	}
	var out []corev1.Event
	for _, ev := range list.Items {
		if ev.InvolvedObject.Name == object && ev.Reason == reason {
			out = append(out, ev)
		}
	}
	return out
}

// waitAvailable waits for the Available condition and returns the status.
func (e *env) waitAvailable(name string, timeout time.Duration) clusterStatus {
	e.t.Helper()
	var s clusterStatus
	e.waitFor(timeout, "MemcachedCluster "+name+" Available", func() (bool, error) {
		s = statusOf(e.mcc(name))
		c := s.condition("Available")
		return c.Status == "True" && s.Phase == "Available", fmt.Errorf("phase=%q available=%+v", s.Phase, c)
	})
	return s
}
