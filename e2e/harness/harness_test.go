// Tests of the local cluster itself: a real API server, the loopback kubelet
// running real memcached processes, atomic volume projection, and clean-up.
package harness_test

import (
	"context"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"memcached-operator/e2e/framework"

	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/client-go/kubernetes"
	"k8s.io/utils/ptr"
)

func TestServerReportsRealVersion(t *testing.T) {
	c := framework.Client(t)
	v, err := c.Discovery().ServerVersion()
	if err != nil {
		t.Fatal(err)
	}
	if v.Major != "1" || !strings.HasPrefix(v.GitVersion, "v1.") || v.GitVersion == "v0.0.0-master+$Format:%H$" {
		t.Fatalf("/version = %+v, want a real v1.x release", v)
	}
	t.Logf("server version %s", v.GitVersion)
}

func listPods(t *testing.T, c kubernetes.Interface, ns, selector string) []corev1.Pod {
	t.Helper()
	l, err := c.CoreV1().Pods(ns).List(context.Background(), metav1.ListOptions{LabelSelector: selector})
	if err != nil {
		t.Fatal(err)
	}
	return l.Items
}

func waitReadyPods(t *testing.T, c kubernetes.Interface, ns, selector string, n int) []corev1.Pod {
	t.Helper()
	var pods []corev1.Pod
	framework.WaitFor(t, 60*time.Second, fmt.Sprintf("%d Ready pods %s in %s", n, selector, ns), func() (bool, error) {
		pods = listPods(t, c, ns, selector)
		ready := 0
		for i := range pods {
			if framework.PodReady(&pods[i]) && pods[i].DeletionTimestamp == nil {
				ready++
			}
		}
		return ready == n && len(pods) == n, fmt.Errorf("%d of %d pods ready", ready, len(pods))
	})
	return pods
}

// A 3-replica memcached StatefulSet gives 3 Ready pods on distinct loopback
// addresses, each a real memcached; scaling to 1 ends two of them by SIGTERM.
func TestStatefulSetRunsRealMemcached(t *testing.T) {
	c := framework.Client(t)
	ctx := context.Background()
	ns := framework.NewNamespace(t, c, "harness-sts")
	if _, err := c.AppsV1().StatefulSets(ns).Create(ctx, framework.MemcachedStatefulSet("mc", 3), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	pods := waitReadyPods(t, c, ns, "app=mc", 3)

	seen := map[string]string{}
	procs := framework.MemcachedProcesses()
	for _, p := range pods {
		ip := p.Status.PodIP
		if other, dup := seen[ip]; dup {
			t.Fatalf("pods %s and %s share address %s", other, p.Name, ip)
		}
		seen[ip] = p.Name
		if parsed := net.ParseIP(ip); parsed == nil || !parsed.IsLoopback() {
			t.Fatalf("pod %s address %q is not in 127.0.0.0/8", p.Name, ip)
		}
		v, err := framework.MemcachedVersion(net.JoinHostPort(ip, "11211"))
		if err != nil {
			t.Fatalf("pod %s: memcached at %s: %v", p.Name, ip, err)
		}
		if len(procs[ip]) != 1 {
			t.Fatalf("pod %s: want 1 memcached process listening on %s, found %v", p.Name, ip, procs[ip])
		}
		args := strings.Join(procs[ip][0].Args, " ")
		if !strings.Contains(args, strings.Join(framework.MemcachedArgs, " ")) {
			t.Fatalf("pod %s: process runs %q, want the container's args %v", p.Name, args, framework.MemcachedArgs)
		}
		cs := p.Status.ContainerStatuses
		if len(cs) != 1 || !cs[0].Ready || cs[0].State.Running == nil || p.Status.Phase != corev1.PodRunning {
			t.Fatalf("pod %s status not Running/ready: %+v", p.Name, p.Status)
		}
		t.Logf("pod %s ip=%s pid=%d memcached %s", p.Name, ip, procs[ip][0].Pid, v)
	}

	// Scale to 1 through the scale subresource, as the operator does.
	scale, err := c.AppsV1().StatefulSets(ns).GetScale(ctx, "mc", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	scale.Spec.Replicas = 1
	start := time.Now()
	if _, err := c.AppsV1().StatefulSets(ns).UpdateScale(ctx, "mc", scale, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	framework.WaitFor(t, 30*time.Second, "pods mc-1 and mc-2 gone", func() (bool, error) {
		return len(listPods(t, c, ns, "app=mc")) == 1, nil
	})
	took := time.Since(start)
	procs = framework.MemcachedProcesses()
	for _, p := range pods {
		_, alive := procs[p.Status.PodIP]
		if want := p.Name == "mc-0"; alive != want {
			t.Errorf("pod %s (%s): process alive=%v, want %v", p.Name, p.Status.PodIP, alive, want)
		}
		if p.Name == "mc-0" {
			continue
		}
		log, err := os.ReadFile(framework.ContainerLog(t, &p, "memcached"))
		if err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(string(log), "sending SIGTERM") || !strings.Contains(string(log), "exited code=0") ||
			strings.Contains(string(log), "SIGKILL") {
			t.Errorf("pod %s: want a SIGTERM and a clean exit (no SIGKILL) in its log:\n%s", p.Name, log)
		}
	}
	if took > 20*time.Second {
		t.Errorf("scale-down took %s; memcached exits on SIGTERM in about a second", took)
	}
	t.Logf("scale 3->1 done in %s", took)
}

func docFor(version int) string {
	var b strings.Builder
	fmt.Fprintf(&b, "version=%d\n", version)
	for i := 0; i < 4000; i++ { // ~100 KiB, far beyond one write(2) page
		fmt.Fprintf(&b, "server-%04d 127.1.%d.%d:11211 weight=1 generation=%d\n", i, i/250, i%250, version)
	}
	fmt.Fprintf(&b, "end=%d\n", version)
	return b.String()
}

func configMapData(version int) map[string]string {
	v := fmt.Sprint(version)
	return map[string]string{"doc": docFor(version), "a": v, "b": v}
}

// atomicReader polls dir until stop is closed and checks each observation is
// a whole version: the single document parses completely, and the keys read
// through one resolution of ..data agree. It returns the versions it saw.
func atomicReader(t *testing.T, dir string, stop <-chan struct{}, reads *atomic.Int64) (chan []int, chan error) {
	seenCh, errCh := make(chan []int, 1), make(chan error, 1)
	go func() {
		var seen []int
		defer func() { seenCh <- seen }()
		for {
			select {
			case <-stop:
				return
			default:
			}
			b, err := os.ReadFile(filepath.Join(dir, "doc"))
			if err != nil {
				continue // not projected yet
			}
			var v int
			if _, err := fmt.Sscanf(string(b), "version=%d\n", &v); err != nil || string(b) != docFor(v) {
				errCh <- fmt.Errorf("read a half-written or mixed document (%d bytes, starts %.20q)", len(b), b)
				return
			}
			if len(seen) == 0 || seen[len(seen)-1] != v {
				seen = append(seen, v)
			}
			ts, err := os.Readlink(filepath.Join(dir, "..data"))
			if err == nil {
				a, errA := os.ReadFile(filepath.Join(dir, ts, "a"))
				bb, errB := os.ReadFile(filepath.Join(dir, ts, "b"))
				if errA == nil && errB == nil && string(a) != string(bb) {
					errCh <- fmt.Errorf("keys a=%s b=%s differ inside one ..data payload", a, bb)
					return
				}
			}
			reads.Add(1)
		}
	}()
	return seenCh, errCh
}

func checkLayout(t *testing.T, dir string) {
	t.Helper()
	data, err := os.Readlink(filepath.Join(dir, "..data"))
	if err != nil || !strings.HasPrefix(data, "..") {
		t.Fatalf("..data should be a symlink to a ..<timestamp> dir, got %q, %v", data, err)
	}
	for _, k := range []string{"doc", "a", "b"} {
		target, err := os.Readlink(filepath.Join(dir, k))
		if err != nil || target != filepath.Join("..data", k) {
			t.Fatalf("%s should be a symlink to ..data/%s, got %q, %v", k, k, target, err)
		}
	}
}

// updateAndWatch updates the ConfigMap through versions 1..n while a reader
// polls dir; the last version must arrive and no read may see a mixed state.
func updateAndWatch(t *testing.T, c kubernetes.Interface, ns, name, dir string, n int) {
	stop := make(chan struct{})
	var reads atomic.Int64
	seenCh, errCh := atomicReader(t, dir, stop, &reads)
	ctx := context.Background()
	for v := 1; v <= n; v++ {
		cm, err := c.CoreV1().ConfigMaps(ns).Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		cm.Data = configMapData(v)
		if _, err := c.CoreV1().ConfigMaps(ns).Update(ctx, cm, metav1.UpdateOptions{}); err != nil {
			t.Fatal(err)
		}
		time.Sleep(700 * time.Millisecond)
	}
	var failure error
	framework.WaitFor(t, 30*time.Second, fmt.Sprintf("version %d projected into %s", n, dir), func() (bool, error) {
		select {
		case failure = <-errCh:
			return true, nil
		default:
		}
		b, err := os.ReadFile(filepath.Join(dir, "a"))
		return err == nil && string(b) == fmt.Sprint(n), err
	})
	close(stop)
	seen := <-seenCh
	if failure != nil {
		t.Fatal(failure)
	}
	select {
	case err := <-errCh:
		t.Fatal(err)
	default:
	}
	checkLayout(t, dir)
	if len(seen) < 2 {
		t.Fatalf("reader saw versions %v; want the update observed while reading", seen)
	}
	t.Logf("reader made %d consistent reads, saw versions %v", reads.Load(), seen)
}

// A ConfigMap update reaches a pod's volume atomically.
func TestConfigMapProjectionIsAtomic(t *testing.T) {
	c := framework.Client(t)
	ctx := context.Background()
	ns := framework.NewNamespace(t, c, "harness-cm")
	if _, err := c.CoreV1().ConfigMaps(ns).Create(ctx, &corev1.ConfigMap{
		ObjectMeta: metav1.ObjectMeta{Name: "endpoints"}, Data: configMapData(0)}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	pod := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "consumer", Labels: map[string]string{"app": "consumer"}},
		Spec: corev1.PodSpec{
			TerminationGracePeriodSeconds: ptr.To[int64](5),
			SecurityContext:               framework.RestrictedPodSecurityContext(),
			Containers: []corev1.Container{{
				Name: "client", Image: "example.com/some-client:1", // no local process: a placeholder
				VolumeMounts:    []corev1.VolumeMount{{Name: "endpoints", MountPath: "/etc/endpoints"}},
				SecurityContext: framework.RestrictedSecurityContext(),
			}},
			Volumes: []corev1.Volume{{Name: "endpoints", VolumeSource: corev1.VolumeSource{
				ConfigMap: &corev1.ConfigMapVolumeSource{LocalObjectReference: corev1.LocalObjectReference{Name: "endpoints"}}}}},
		},
	}
	if _, err := c.CoreV1().Pods(ns).Create(ctx, pod, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	pods := waitReadyPods(t, c, ns, "app=consumer", 1)
	if !strings.Contains(pods[0].Status.Message, "without a process") {
		t.Errorf("placeholder pod status.message = %q, want it to say it runs without a process", pods[0].Status.Message)
	}
	dir := framework.VolumeDir(t, &pods[0], "endpoints")
	framework.WaitFor(t, 10*time.Second, "initial projection in "+dir, func() (bool, error) {
		b, err := os.ReadFile(filepath.Join(dir, "a"))
		return err == nil && string(b) == "0", err
	})
	checkLayout(t, dir)
	updateAndWatch(t, c, ns, "endpoints", dir, 6)
}

// `e2e/cluster project-configmap` gives a process outside the cluster the
// same view.
func TestProjectConfigMapCommand(t *testing.T) {
	c := framework.Client(t)
	ctx := context.Background()
	ns := framework.NewNamespace(t, c, "harness-project")
	if _, err := c.CoreV1().ConfigMaps(ns).Create(ctx, &corev1.ConfigMap{
		ObjectMeta: metav1.ObjectMeta{Name: "endpoints"}, Data: configMapData(0)}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(t.TempDir(), "endpoints")
	cmd := framework.ClusterCommand("project-configmap", ns+"/endpoints", dir, "--delay", "500ms")
	var out strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	var once sync.Once
	stop := func() { once.Do(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() }) }
	defer stop()
	framework.WaitFor(t, 20*time.Second, "initial projection in "+dir, func() (bool, error) {
		b, err := os.ReadFile(filepath.Join(dir, "a"))
		return err == nil && string(b) == "0", err
	})
	checkLayout(t, dir)
	updateAndWatch(t, c, ns, "endpoints", dir, 5)
	stop()
	t.Logf("project-configmap output:\n%s", out.String())
}

// Deleting a namespace deletes its pods and ends their processes.
func TestNamespaceDeletionRemovesPodsAndProcesses(t *testing.T) {
	c := framework.Client(t)
	ctx := context.Background()
	ns := framework.NewNamespace(t, c, "harness-nsdel")
	if _, err := c.AppsV1().StatefulSets(ns).Create(ctx, framework.MemcachedStatefulSet("mc", 2), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	pods := waitReadyPods(t, c, ns, "app=mc", 2)
	if err := c.CoreV1().Namespaces().Delete(ctx, ns, metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	framework.WaitFor(t, 60*time.Second, "namespace "+ns+" gone", func() (bool, error) {
		_, err := c.CoreV1().Namespaces().Get(ctx, ns, metav1.GetOptions{})
		return apierrors.IsNotFound(err), err
	})
	procs := framework.MemcachedProcesses()
	for _, p := range pods {
		if left := procs[p.Status.PodIP]; len(left) > 0 {
			t.Errorf("pod %s deleted with its namespace, but memcached still runs on %s: %v", p.Name, p.Status.PodIP, left)
		}
		if _, err := os.Stat(framework.PodDir(t, &p)); !os.IsNotExist(err) {
			t.Errorf("pod dir of %s still exists (%v)", p.Name, err)
		}
	}
}

// A killed memcached is restarted (restartPolicy Always) with restartCount 1.
func TestKilledProcessIsRestarted(t *testing.T) {
	c := framework.Client(t)
	ctx := context.Background()
	ns := framework.NewNamespace(t, c, "harness-restart")
	if _, err := c.AppsV1().StatefulSets(ns).Create(ctx, framework.MemcachedStatefulSet("mc", 1), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	pods := waitReadyPods(t, c, ns, "app=mc", 1)
	ip := pods[0].Status.PodIP
	oldPid := framework.MemcachedProcesses()[ip][0].Pid
	if out, err := framework.ClusterCmd(t, "fault", "pod-kill", ns+"/mc-0"); err != nil {
		t.Fatalf("fault pod-kill: %v\n%s", err, out)
	}
	framework.WaitFor(t, 30*time.Second, "mc-0 restarted and Ready", func() (bool, error) {
		p, err := c.CoreV1().Pods(ns).Get(ctx, "mc-0", metav1.GetOptions{})
		if err != nil {
			return false, err
		}
		cs := p.Status.ContainerStatuses
		return len(cs) == 1 && cs[0].RestartCount == 1 && framework.PodReady(p) &&
			cs[0].LastTerminationState.Terminated != nil, fmt.Errorf("status %+v", cs)
	})
	procs := framework.MemcachedProcesses()[ip]
	if len(procs) != 1 || procs[0].Pid == oldPid {
		t.Fatalf("want one new memcached on %s (old pid %d), found %v", ip, oldPid, procs)
	}
	if _, err := framework.MemcachedVersion(net.JoinHostPort(ip, "11211")); err != nil {
		t.Fatal(err)
	}
	// kubectl logs --previous goes API server -> kubelet API -> the log of the killed run.
	prev, err := c.CoreV1().Pods(ns).GetLogs("mc-0", &corev1.PodLogOptions{Container: "memcached", Previous: true}).DoRaw(ctx)
	if err != nil || !strings.Contains(string(prev), "exited code=137") {
		t.Fatalf("previous logs: err=%v\n%s", err, prev)
	}
}

// While the API server is down, pods keep running and the kubelet keeps
// restarting them; when it is back, status catches up.
func TestAPIServerStopAndStart(t *testing.T) {
	c := framework.Client(t)
	ctx := context.Background()
	ns := framework.NewNamespace(t, c, "harness-apiserver")
	if _, err := c.AppsV1().StatefulSets(ns).Create(ctx, framework.MemcachedStatefulSet("mc", 1), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	pods := waitReadyPods(t, c, ns, "app=mc", 1)
	ip := pods[0].Status.PodIP
	if out, err := framework.ClusterCmd(t, "fault", "apiserver-stop"); err != nil {
		t.Fatalf("apiserver-stop: %v\n%s", err, out)
	}
	started := false
	defer func() {
		if !started {
			_, _ = framework.ClusterCmd(t, "fault", "apiserver-start")
		}
	}()
	if _, err := c.Discovery().ServerVersion(); err == nil {
		t.Fatal("API server still answers after apiserver-stop")
	}
	if _, err := framework.MemcachedVersion(net.JoinHostPort(ip, "11211")); err != nil {
		t.Fatalf("memcached should keep running without the API server: %v", err)
	}
	if out, err := framework.ClusterCmd(t, "fault", "pod-kill", ns+"/mc-0"); err != nil {
		t.Fatalf("pod-kill: %v\n%s", err, out)
	}
	framework.WaitFor(t, 10*time.Second, "memcached restarted while the API server is down", func() (bool, error) {
		_, err := framework.MemcachedVersion(net.JoinHostPort(ip, "11211"))
		return err == nil, err
	})
	out, err := framework.ClusterCmd(t, "fault", "apiserver-start")
	started = true
	if err != nil {
		t.Fatalf("apiserver-start: %v\n%s", err, out)
	}
	framework.WaitFor(t, 30*time.Second, "restartCount 1 reported after the API server is back", func() (bool, error) {
		p, err := c.CoreV1().Pods(ns).Get(ctx, "mc-0", metav1.GetOptions{})
		if err != nil {
			return false, err
		}
		return len(p.Status.ContainerStatuses) == 1 && p.Status.ContainerStatuses[0].RestartCount == 1 && framework.PodReady(p), nil
	})
}

func nodeReady(t *testing.T, c kubernetes.Interface) corev1.ConditionStatus {
	n, err := c.CoreV1().Nodes().Get(context.Background(), "loopback-node", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for _, cond := range n.Status.Conditions {
		if cond.Type == corev1.NodeReady {
			return cond.Status
		}
	}
	return corev1.ConditionUnknown
}

func TestNodeNotReadyFault(t *testing.T) {
	c := framework.Client(t)
	if out, err := framework.ClusterCmd(t, "fault", "node-notready"); err != nil {
		t.Fatalf("node-notready: %v\n%s", err, out)
	}
	defer framework.ClusterCmd(t, "fault", "node-ready")
	framework.WaitFor(t, 15*time.Second, "node NotReady", func() (bool, error) {
		return nodeReady(t, c) == corev1.ConditionFalse, nil
	})
	if out, err := framework.ClusterCmd(t, "fault", "node-ready"); err != nil {
		t.Fatalf("node-ready: %v\n%s", err, out)
	}
	framework.WaitFor(t, 15*time.Second, "node Ready again", func() (bool, error) {
		return nodeReady(t, c) == corev1.ConditionTrue, nil
	})
}

// An image mapped to a local binary (as the operator image is) runs as a real
// in-cluster client: its ServiceAccount token, CA and namespace, the API
// server's address, and RBAC as granted to that ServiceAccount.
func TestMappedImageRunsInCluster(t *testing.T) {
	c := framework.Client(t)
	ctx := context.Background()
	ns := framework.NewNamespace(t, c, "harness-incluster")
	if _, err := c.CoreV1().ServiceAccounts(ns).Create(ctx, &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: "prober"}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.RbacV1().Roles(ns).Create(ctx, &rbacv1.Role{ObjectMeta: metav1.ObjectMeta{Name: "pods"},
		Rules: []rbacv1.PolicyRule{{APIGroups: []string{""}, Resources: []string{"pods"}, Verbs: []string{"list"}}}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.RbacV1().RoleBindings(ns).Create(ctx, &rbacv1.RoleBinding{ObjectMeta: metav1.ObjectMeta{Name: "prober"},
		RoleRef:  rbacv1.RoleRef{APIGroup: "rbac.authorization.k8s.io", Kind: "Role", Name: "pods"},
		Subjects: []rbacv1.Subject{{Kind: "ServiceAccount", Name: "prober", Namespace: ns}}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	pod := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "prober", Labels: map[string]string{"app": "prober"}},
		Spec: corev1.PodSpec{
			ServiceAccountName: "prober",
			SecurityContext:    framework.RestrictedPodSecurityContext(),
			Containers: []corev1.Container{{
				Name: "probe", Image: "registry.example/team/mcop-e2e-incluster-probe:v1", Args: []string{"--flag=1"},
				SecurityContext: framework.RestrictedSecurityContext(),
				Env:             []corev1.EnvVar{{Name: "POD_IP", ValueFrom: &corev1.EnvVarSource{FieldRef: &corev1.ObjectFieldSelector{FieldPath: "status.podIP"}}}},
				ReadinessProbe: &corev1.Probe{PeriodSeconds: 1, ProbeHandler: corev1.ProbeHandler{
					HTTPGet: &corev1.HTTPGetAction{Path: "/healthz", Port: intstr.FromInt32(8080)}}},
			}},
		},
	}
	if _, err := c.CoreV1().Pods(ns).Create(ctx, pod, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	waitReadyPods(t, c, ns, "app=prober", 1)
	logs, err := c.CoreV1().Pods(ns).GetLogs("prober", &corev1.PodLogOptions{}).DoRaw(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"namespace=" + ns + " pods=1", `args=["--flag=1"]`, "secrets forbidden=true"} {
		if !strings.Contains(string(logs), want) {
			t.Errorf("probe log lacks %q:\n%s", want, logs)
		}
	}
}

// The test namespaces enforce the Restricted Pod Security Standard, and the API server really
// does (its PodSecurity admission plugin is on): a pod without the Restricted securityContext is
// refused at creation, naming what it lacks; the same pod with it is admitted. Every pod the
// suite creates goes through this check.
func TestRestrictedPodSecurityIsEnforced(t *testing.T) {
	c := framework.Client(t)
	ctx := context.Background()
	ns := framework.NewNamespace(t, c, "harness-pss")
	got, err := c.CoreV1().Namespaces().Get(ctx, ns, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if l := got.Labels["pod-security.kubernetes.io/enforce"]; l != "restricted" {
		t.Fatalf("namespace %s enforces %q, want restricted (labels %v)", ns, l, got.Labels)
	}
	pod := func(name string, restricted bool) *corev1.Pod {
		p := &corev1.Pod{
			ObjectMeta: metav1.ObjectMeta{Name: name},
			Spec: corev1.PodSpec{Containers: []corev1.Container{{
				Name: "memcached", Image: "memcached:1.6.18", Command: []string{"memcached"}, Args: framework.MemcachedArgs}}},
		}
		if restricted {
			p.Spec.SecurityContext = framework.RestrictedPodSecurityContext()
			p.Spec.Containers[0].SecurityContext = framework.RestrictedSecurityContext()
		}
		return p
	}
	_, err = c.CoreV1().Pods(ns).Create(ctx, pod("unrestricted", false), metav1.CreateOptions{DryRun: []string{metav1.DryRunAll}})
	if !apierrors.IsForbidden(err) {
		t.Fatalf("a pod without a Restricted securityContext was not refused: err=%v", err)
	}
	for _, want := range []string{`violates PodSecurity "restricted:latest"`, "allowPrivilegeEscalation != false",
		"unrestricted capabilities", "runAsNonRoot != true", "seccompProfile"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("refusal does not say %q: %v", want, err)
		}
	}
	if _, err := c.CoreV1().Pods(ns).Create(ctx, pod("restricted", true), metav1.CreateOptions{DryRun: []string{metav1.DryRunAll}}); err != nil {
		t.Errorf("a pod with the Restricted securityContext was refused: %v", err)
	}
	// A hostPath volume is refused even with a Restricted securityContext: the standard, not
	// just the securityContext fields, is enforced.
	hp := pod("hostpath", true)
	hp.Spec.Volumes = []corev1.Volume{{Name: "h", VolumeSource: corev1.VolumeSource{HostPath: &corev1.HostPathVolumeSource{Path: "/tmp"}}}}
	if _, err := c.CoreV1().Pods(ns).Create(ctx, hp, metav1.CreateOptions{DryRun: []string{metav1.DryRunAll}}); !apierrors.IsForbidden(err) ||
		!strings.Contains(err.Error(), "hostPath") {
		t.Errorf("a pod with a hostPath volume: err=%v, want a PodSecurity refusal naming hostPath", err)
	}
}
