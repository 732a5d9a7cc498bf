// The memcached pods the operator runs: memcached listens on the pod IP only (not every
// interface) with UDP off, and readiness asks memcached a question, so a hung memcached leaves
// the published list's active state within seconds while a busy one (at maxConnections) stays.
package operator

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"memcached-operator/e2e/framework"
)

// sockets lists the local addresses ("ip:port") of a process's sockets in /proc/net/<table>
// (tcp: listening ones only).
func sockets(t *testing.T, pid int, table string) []string {
	t.Helper()
	inodes := map[string]bool{}
	fds, err := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pid))
	if err != nil {
		t.Fatalf("reading memcached's fds: %v", err)
	}
	for _, fd := range fds {
		link, err := os.Readlink(filepath.Join(fmt.Sprintf("/proc/%d/fd", pid), fd.Name()))
		if err == nil && strings.HasPrefix(link, "socket:[") {
			inodes[strings.TrimSuffix(strings.TrimPrefix(link, "socket:["), "]")] = true
		}
	}
	var out []string
	for _, file := range []string{table, table + "6"} {
		f, err := os.Open("/proc/net/" + file)
		if err != nil {
			continue
		}
		sc := bufio.NewScanner(f)
		sc.Scan() // header
		for sc.Scan() {
			fields := strings.Fields(sc.Text())
			if len(fields) < 10 || !inodes[fields[9]] {
				continue
			}
			if table == "tcp" && fields[3] != "0A" { // LISTEN
				continue
			}
			out = append(out, procAddr(fields[1]))
		}
		f.Close()
	}
	slices.Sort(out)
	return out
}

// procAddr turns /proc/net's "0100017F:2BCB" (IPv4, little-endian) into "127.1.0.1:11211".
func procAddr(s string) string {
	hexIP, hexPort, _ := strings.Cut(s, ":")
	port, _ := strconv.ParseUint(hexPort, 16, 16)
	if len(hexIP) != 8 {
		return s // IPv6: memcached here never has one; shown as is if it does
	}
	v, _ := strconv.ParseUint(hexIP, 16, 32)
	return fmt.Sprintf("%d.%d.%d.%d:%d", v&0xff, v>>8&0xff, v>>16&0xff, v>>24, port)
}

func TestMemcachedListensOnThePodIPOnlyWithUDPOff(t *testing.T) {
	e := newEnv(t)
	e.startOperator()
	e.createCluster("bind", "  replicas: 1\n")
	e.waitAvailable("bind", 90*time.Second)
	pod, ok := e.pod("bind-0")
	if !ok {
		t.Fatal("no pod bind-0")
	}
	c := pod.Spec.Containers[0]
	var podIPEnv *corev1.EnvVar
	for i := range c.Env {
		if c.Env[i].Name == "POD_IP" {
			podIPEnv = &c.Env[i]
		}
	}
	if podIPEnv == nil || podIPEnv.ValueFrom == nil || podIPEnv.ValueFrom.FieldRef == nil ||
		podIPEnv.ValueFrom.FieldRef.FieldPath != "status.podIP" {
		t.Errorf("container env has no POD_IP from status.podIP: %+v", c.Env)
	}
	if i := slices.Index(c.Args, "-l"); i < 0 || i+1 >= len(c.Args) || c.Args[i+1] != "$(POD_IP),127.0.0.1" {
		t.Errorf("memcached args %v: want -l $(POD_IP),127.0.0.1", c.Args)
	}

	// The kubelet ran memcached on what the pod asked for: without -l it notes that memcached
	// would listen on every interface of a real pod.
	log, err := os.ReadFile(framework.ContainerLog(t, pod, "memcached"))
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(log), "memcached has no -l") {
		t.Errorf("memcached was started without a listen address (every interface in a real pod):\n%s", log)
	}
	procs := framework.MemcachedProcesses()[pod.Status.PodIP]
	if len(procs) != 1 {
		t.Fatalf("want one memcached process listening on %s, found %+v", pod.Status.PodIP, procs)
	}
	pid := procs[0].Pid
	want := []string{net.JoinHostPort(pod.Status.PodIP, "11211")}
	if got := sockets(t, pid, "tcp"); !slices.Equal(got, want) {
		t.Errorf("memcached (pid %d) listens on TCP %v, want only %v", pid, got, want)
	}
	if got := sockets(t, pid, "udp"); len(got) != 0 {
		t.Errorf("memcached (pid %d) has UDP sockets %v, want none", pid, got)
	}
	if v, err := framework.MemcachedVersion(want[0]); err != nil {
		t.Errorf("memcached at %s: %v", want[0], err)
	} else {
		t.Logf("memcached %s listens on TCP %v only, no UDP; args %v", v, want, procs[0].Args[1:])
	}
}

// serverState is the published state of one member ("" when it is not in the list).
func (e *env) serverState(cmName, name string) string {
	ep, _, ok := e.endpointsOf(cmName)
	if !ok {
		return ""
	}
	for _, s := range ep.Servers {
		if s.Name == name {
			return s.State
		}
	}
	return ""
}

func TestHungMemcachedBecomesUnreadyAndComesBack(t *testing.T) {
	e := newEnv(t)
	e.startOperator()
	e.createCluster("hung", "  replicas: 2\n")
	e.waitAvailable("hung", 90*time.Second)
	pod, _ := e.pod("hung-1")
	addr := net.JoinHostPort(pod.Status.PodIP, "11211")

	if out, err := framework.ClusterCmd(t, "fault", "pod-stop", e.ns+"/hung-1"); err != nil {
		t.Fatalf("fault pod-stop: %v\n%s", err, out)
	}
	stopped := time.Now()
	cont := func() {
		if out, err := framework.ClusterCmd(t, "fault", "pod-cont", e.ns+"/hung-1"); err != nil {
			t.Errorf("fault pod-cont: %v\n%s", err, out)
		}
	}
	defer func() {
		if t.Failed() {
			cont() // leave no stopped process behind
		}
	}()
	// A real request times out: memcached is hung, not just slow.
	if _, err := framework.MemcachedVersion(addr); err == nil {
		t.Fatalf("memcached at %s answered while stopped", addr)
	}
	var notReady, unready time.Duration
	e.waitFor(40*time.Second, "hung-1 not Ready and published as unready", func() (bool, error) {
		p, ok := e.pod("hung-1")
		if ok && !framework.PodReady(p) && notReady == 0 {
			notReady = time.Since(stopped)
		}
		if e.serverState("hung-endpoints", "hung-1") == "unready" && unready == 0 {
			unready = time.Since(stopped)
		}
		return notReady > 0 && unready > 0, fmt.Errorf("pod ready=%v, state %q", ok && framework.PodReady(p), e.serverState("hung-endpoints", "hung-1"))
	})
	t.Logf("figure: SIGSTOP -> pod not Ready in %s, published unready in %s", notReady.Round(100*time.Millisecond), unready.Round(100*time.Millisecond))
	// The probe runs every 5 s, waits 2 s for an answer and needs 2 misses: about 12 s at worst.
	if unready > 20*time.Second {
		t.Errorf("a hung memcached was published unready only after %s", unready)
	}
	ep, _, _ := e.endpointsOf("hung-endpoints")
	if got := ep.Names(); !slices.Equal(got, []string{"hung-0", "hung-1"}) || e.serverState("hung-endpoints", "hung-0") != "active" {
		t.Errorf("the hung member must keep its place and the other stay active: %+v", ep.Servers)
	}

	cont()
	resumed := time.Now()
	e.waitFor(30*time.Second, "hung-1 Ready and active again", func() (bool, error) {
		p, ok := e.pod("hung-1")
		state := e.serverState("hung-endpoints", "hung-1")
		return ok && framework.PodReady(p) && state == "active", fmt.Errorf("state %q", state)
	})
	t.Logf("figure: SIGCONT -> Ready and active in %s", time.Since(resumed).Round(100*time.Millisecond))
	if _, err := framework.MemcachedVersion(addr); err != nil {
		t.Errorf("memcached at %s after SIGCONT: %v", addr, err)
	}
}

// At maxConnections memcached answers new connections "ERROR Too many open connections" and
// closes them while serving the ones it has: readiness must not flap the member out for that.
func TestBusyMemcachedAtMaxConnectionsStaysReady(t *testing.T) {
	e := newEnv(t)
	e.startOperator()
	e.createCluster("busy", "  replicas: 1\n  memcached:\n    maxConnections: 64\n")
	e.waitAvailable("busy", 90*time.Second)
	pod, _ := e.pod("busy-0")
	addr := net.JoinHostPort(pod.Status.PodIP, "11211")
	var held []net.Conn
	defer func() { closeAll(held) }()
	full := false
	for i := 0; i < 200 && !full; i++ {
		conn, err := net.DialTimeout("tcp", addr, 2*time.Second)
		if err != nil {
			t.Fatalf("connection %d: %v", i, err)
		}
		_ = conn.SetDeadline(time.Now().Add(2 * time.Second))
		fmt.Fprint(conn, "version\r\n")
		line, err := bufio.NewReader(conn).ReadString('\n')
		if err != nil {
			t.Fatalf("connection %d: %v", i, err)
		}
		if strings.HasPrefix(line, "ERROR Too many open connections") {
			full = true
			conn.Close()
			t.Logf("memcached is full after %d connections", len(held))
			break
		}
		_ = conn.SetDeadline(time.Time{})
		held = append(held, conn)
	}
	if !full {
		t.Fatalf("memcached never reached maxConnections with %d connections", len(held))
	}
	// Three probe periods at maxConnections.
	deadline := time.Now().Add(16 * time.Second)
	for time.Now().Before(deadline) {
		p, err := e.kube.CoreV1().Pods(e.ns).Get(context.Background(), "busy-0", metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if !framework.PodReady(p) {
			t.Fatalf("busy-0 went unready at maxConnections: %+v", p.Status.Conditions)
		}
		time.Sleep(500 * time.Millisecond)
	}
	// And the held connections are still served.
	_ = held[0].SetDeadline(time.Now().Add(2 * time.Second))
	fmt.Fprint(held[0], "version\r\n")
	if line, err := bufio.NewReader(held[0]).ReadString('\n'); err != nil || !strings.HasPrefix(line, "VERSION ") {
		t.Errorf("a held connection at maxConnections: %q %v", line, err)
	}
}
