// Package framework is what e2e test packages (e2e/harness, e2e/operator, ...)
// share: a client for the local cluster, namespaces that clean up after
// themselves, polling, and views of what the loopback kubelet runs on this
// machine (memcached processes, projected volume directories).
//
// Tests run with KUBECONFIG and MCOP_E2E_STATE set by e2e/run-tests (or by
// `eval "$(e2e/cluster env)"`).
package framework

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	"k8s.io/utils/ptr"
)

// MemcachedArgs is the memcached command line the operator's StatefulSet uses.
var MemcachedArgs = []string{"-p", "11211", "-U", "0", "-m", "64", "-c", "1024", "-t", "4"}

// Config returns the REST config of the local cluster (from KUBECONFIG).
func Config(t testing.TB) *rest.Config {
	t.Helper()
	kc := os.Getenv("KUBECONFIG")
	if kc == "" {
		t.Fatal("KUBECONFIG is not set: run through e2e/run-tests, or `e2e/cluster up && eval \"$(e2e/cluster env)\"`")
	}
	cfg, err := clientcmd.BuildConfigFromFlags("", kc)
	if err != nil {
		t.Fatalf("kubeconfig %s: %v", kc, err)
	}
	cfg.QPS, cfg.Burst = 50, 100
	return cfg
}

// Client returns a clientset for the local cluster.
func Client(t testing.TB) kubernetes.Interface {
	t.Helper()
	c, err := kubernetes.NewForConfig(Config(t))
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// StateDir is the running cluster's state directory.
func StateDir(t testing.TB) string {
	t.Helper()
	d := os.Getenv("MCOP_E2E_STATE")
	if d == "" {
		t.Fatal("MCOP_E2E_STATE is not set (see e2e/cluster env)")
	}
	return d
}

// ClusterCmd runs e2e/cluster with args and returns its combined output.
func ClusterCmd(t testing.TB, args ...string) (string, error) {
	t.Helper()
	return clusterCommand(args...).CombinedOutput()
}

func clusterCommand(args ...string) *clusterExec {
	cmd := os.Getenv("MCOP_E2E_CLUSTER_CMD")
	if cmd == "" {
		cmd = "../cluster"
	}
	return &clusterExec{exec.Command(cmd, args...)}
}

type clusterExec struct{ *exec.Cmd }

func (c *clusterExec) CombinedOutput() (string, error) {
	out, err := c.Cmd.CombinedOutput()
	return string(out), err
}

// ClusterCommand returns an unstarted e2e/cluster command (for long-running
// subcommands such as project-configmap).
func ClusterCommand(args ...string) *exec.Cmd { return clusterCommand(args...).Cmd }

// RestrictedNamespaceLabels are the labels of every namespace the suite creates: the API
// server's PodSecurity admission refuses a pod that breaks the Restricted Pod Security
// Standard (enforce), and answers a workload object (StatefulSet, Deployment) that would make
// one with a warning (warn) and an audit annotation. "latest": the standard as this API server
// knows it, so a tightened standard shows up here first.
func RestrictedNamespaceLabels() map[string]string {
	l := map[string]string{}
	for _, mode := range []string{"enforce", "warn", "audit"} {
		l["pod-security.kubernetes.io/"+mode] = "restricted"
		l["pod-security.kubernetes.io/"+mode+"-version"] = "latest"
	}
	return l
}

// RestrictedPodSecurityContext is a pod-level securityContext the Restricted standard admits
// (with RestrictedSecurityContext on each container). runAsUser is what the memcached image
// runs as; the loopback kubelet runs processes as itself whatever the spec says.
func RestrictedPodSecurityContext() *corev1.PodSecurityContext {
	return &corev1.PodSecurityContext{
		RunAsNonRoot:   ptr.To(true),
		RunAsUser:      ptr.To[int64](11211),
		SeccompProfile: &corev1.SeccompProfile{Type: corev1.SeccompProfileTypeRuntimeDefault},
	}
}

// RestrictedSecurityContext is a container securityContext the Restricted standard admits.
func RestrictedSecurityContext() *corev1.SecurityContext {
	return &corev1.SecurityContext{
		AllowPrivilegeEscalation: ptr.To(false),
		Capabilities:             &corev1.Capabilities{Drop: []corev1.Capability{"ALL"}},
		RunAsNonRoot:             ptr.To(true),
		SeccompProfile:           &corev1.SeccompProfile{Type: corev1.SeccompProfileTypeRuntimeDefault},
	}
}

// NewNamespace creates a namespace "<prefix>-xxxxx" that enforces the Restricted Pod Security
// Standard (RestrictedNamespaceLabels), waits for its default ServiceAccount, and deletes it
// when the test ends.
func NewNamespace(t testing.TB, c kubernetes.Interface, prefix string) string {
	t.Helper()
	ctx := context.Background()
	labels := RestrictedNamespaceLabels()
	labels["e2e.memcached-operator/test"] = "true"
	ns, err := c.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{
		ObjectMeta: metav1.ObjectMeta{GenerateName: prefix + "-", Labels: labels},
	}, metav1.CreateOptions{})
	if err != nil {
		t.Fatalf("creating namespace: %v", err)
	}
	t.Cleanup(func() {
		err := c.CoreV1().Namespaces().Delete(context.Background(), ns.Name, metav1.DeleteOptions{})
		if err != nil && !apierrors.IsNotFound(err) {
			t.Errorf("deleting namespace %s: %v", ns.Name, err)
		}
	})
	WaitFor(t, 30*time.Second, "default ServiceAccount in "+ns.Name, func() (bool, error) {
		_, err := c.CoreV1().ServiceAccounts(ns.Name).Get(ctx, "default", metav1.GetOptions{})
		return err == nil, nil
	})
	return ns.Name
}

// WaitFor polls cond every 100ms until it returns true, fails the test on
// timeout (reporting the last error), and fails at once if cond panics.
func WaitFor(t testing.TB, timeout time.Duration, what string, cond func() (bool, error)) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	var lastErr error
	for {
		ok, err := cond()
		if ok {
			return
		}
		lastErr = err
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s (last error: %v)", timeout, what, lastErr)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// MemcachedStatefulSet is a StatefulSet of real memcached pods as the
// operator would create them (Restricted securityContext), with a tcpSocket readiness probe.
func MemcachedStatefulSet(name string, replicas int32) *appsv1.StatefulSet {
	labels := map[string]string{"app": name}
	return &appsv1.StatefulSet{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		Spec: appsv1.StatefulSetSpec{
			Replicas:            ptr.To(replicas),
			ServiceName:         name,
			PodManagementPolicy: appsv1.ParallelPodManagement,
			Selector:            &metav1.LabelSelector{MatchLabels: labels},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: labels},
				Spec: corev1.PodSpec{
					SecurityContext: RestrictedPodSecurityContext(),
					Containers: []corev1.Container{{
						Name:            "memcached",
						Image:           "memcached:1.6.18",
						Command:         []string{"memcached"},
						Args:            MemcachedArgs,
						SecurityContext: RestrictedSecurityContext(),
						Ports:           []corev1.ContainerPort{{Name: "memcache", ContainerPort: 11211}},
						ReadinessProbe: &corev1.Probe{
							ProbeHandler:  corev1.ProbeHandler{TCPSocket: &corev1.TCPSocketAction{Port: intstr.FromString("memcache")}},
							PeriodSeconds: 1,
						},
					}},
				},
			},
		},
	}
}

// PodReady reports the pod's Ready condition.
func PodReady(p *corev1.Pod) bool {
	for _, c := range p.Status.Conditions {
		if c.Type == corev1.PodReady {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}

// MemcachedVersion sends "version" to a memcached at addr ("ip:port").
func MemcachedVersion(addr string) (string, error) {
	conn, err := net.DialTimeout("tcp", addr, 2*time.Second)
	if err != nil {
		return "", err
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(2 * time.Second))
	if _, err := conn.Write([]byte("version\r\n")); err != nil {
		return "", err
	}
	line, err := bufio.NewReader(conn).ReadString('\n')
	if err != nil {
		return "", err
	}
	line = strings.TrimSpace(line)
	if !strings.HasPrefix(line, "VERSION ") {
		return "", fmt.Errorf("unexpected reply %q", line)
	}
	return strings.TrimPrefix(line, "VERSION "), nil
}

// Process is a local process as seen in /proc.
type Process struct {
	Pid  int
	Args []string
}

// MemcachedProcesses maps listen address (-l) to the memcached processes on
// this machine.
func MemcachedProcesses() map[string][]Process {
	out := map[string][]Process{}
	dirs, _ := filepath.Glob("/proc/[0-9]*/cmdline")
	for _, f := range dirs {
		b, err := os.ReadFile(f)
		if err != nil || len(b) == 0 {
			continue
		}
		args := strings.Split(strings.TrimRight(string(b), "\x00"), "\x00")
		if filepath.Base(args[0]) != "memcached" {
			continue
		}
		pid, _ := strconv.Atoi(strings.Split(f, "/")[2])
		for i := 0; i+1 < len(args); i++ {
			if args[i] == "-l" {
				out[args[i+1]] = append(out[args[i+1]], Process{Pid: pid, Args: args})
			}
		}
	}
	return out
}

// PodDir is where the loopback kubelet keeps a pod's volumes.
func PodDir(t testing.TB, p *corev1.Pod) string {
	return filepath.Join(StateDir(t), "pods", fmt.Sprintf("%s_%s_%s", p.Namespace, p.Name, p.UID))
}

// VolumeDir is the local directory of one of the pod's volumes.
func VolumeDir(t testing.TB, p *corev1.Pod, volume string) string {
	return filepath.Join(PodDir(t, p), "volumes", volume)
}

// ContainerLog is the log file of a pod's container (kept after the pod is gone).
func ContainerLog(t testing.TB, p *corev1.Pod, container string) string {
	return filepath.Join(StateDir(t), "logs", "pods", fmt.Sprintf("%s_%s_%s", p.Namespace, p.Name, p.UID), container+".log")
}
