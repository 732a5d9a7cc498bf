// Issue 11 on the local cluster, with real memcached processes: TLS (plaintext refused, client
// certificates under Require, every operation over TLS), certificate rotation under load with no
// restart and no client error, ASCII authentication with the password never published or
// logged, the rendered NetworkPolicy, the exporter sidecar, and bad Secrets that leave the
// cluster serving its last good configuration. Every test namespace enforces the Restricted Pod
// Security Standard (framework.NewNamespace), so each of these pods, with every feature on, was
// admitted under it. The operator's Secret RBAC is checked with the chart in e2e/helm.
package operator

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/rand"

	"memcached-operator/e2e/framework"
)

const memcachedPort = "11211"

// secretRecheck is how often the operator reads a cluster's Secrets again in these tests. It
// may only get Secrets (never watch them), so it notices a changed Secret on its next pass
// (30 s by default); 2 s keeps each rotation and bad-input case short.
const secretRecheck = "--secret-recheck-interval=2s"

// startSecurityOperator starts the operator with secretRecheck (when the binary has the flag;
// without it, the default interval).
func (e *env) startSecurityOperator(kubeconfig string, extra ...string) *operatorProc {
	e.t.Helper()
	help, _ := exec.Command(operatorBinary(e.t), "--help").CombinedOutput()
	if strings.Contains(string(help), "secret-recheck-interval") {
		extra = append([]string{secretRecheck}, extra...)
	}
	if kubeconfig == "" {
		kubeconfig = os.Getenv("KUBECONFIG")
	}
	return e.startOperatorWith(kubeconfig, extra...)
}

// tlsCluster is the PKI of one TLS cluster: its CA, the members' certificate in the Secret
// <name>-tls, and a client certificate the CA signed.
type tlsCluster struct {
	name   string
	ca     *framework.CA
	server framework.KeyPair
	client framework.KeyPair
}

func (e *env) newTLSCluster(name string) *tlsCluster {
	e.t.Helper()
	ca := framework.NewCA(e.t, name+"-ca")
	c := &tlsCluster{name: name, ca: ca, server: ca.ServerCert(e.t, name, e.ns), client: ca.ClientCert(e.t, "e2e-client")}
	e.putSecret(ca.TLSSecret(c.secret(), c.server))
	return c
}

func (c *tlsCluster) secret() string { return c.name + "-tls" }

// putSecret creates the Secret or replaces its content (deleting it first when its type
// changes, which the API server does not allow in place).
func (e *env) putSecret(s *corev1.Secret) {
	e.t.Helper()
	ctx := context.Background()
	secrets := e.kube.CoreV1().Secrets(e.ns)
	old, err := secrets.Get(ctx, s.Name, metav1.GetOptions{})
	switch {
	case apierrors.IsNotFound(err):
	case err != nil:
		e.t.Fatalf("get secret %s: %v", s.Name, err)
	case old.Type == s.Type || s.Type == "" && old.Type == corev1.SecretTypeOpaque:
		s = s.DeepCopy()
		s.ResourceVersion = old.ResourceVersion
		if _, err := secrets.Update(ctx, s, metav1.UpdateOptions{}); err != nil {
			e.t.Fatalf("update secret %s: %v", s.Name, err)
		}
		return
	default:
		e.deleteSecret(s.Name)
	}
	if _, err := secrets.Create(ctx, s, metav1.CreateOptions{}); err != nil {
		e.t.Fatalf("create secret %s: %v", s.Name, err)
	}
}

func (e *env) deleteSecret(name string) {
	e.t.Helper()
	err := e.kube.CoreV1().Secrets(e.ns).Delete(context.Background(), name, metav1.DeleteOptions{})
	if err != nil && !apierrors.IsNotFound(err) {
		e.t.Fatalf("delete secret %s: %v", name, err)
	}
}

// authSecret is a Secret with memcached's auth file under key "authfile".
func authSecret(name, file string) *corev1.Secret {
	return &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: name}, Type: corev1.SecretTypeOpaque,
		Data: map[string][]byte{"authfile": []byte(file)}}
}

// memberPods lists the cluster's pods (by the selector its status publishes), by name.
func (e *env) memberPods(name string) []corev1.Pod {
	e.t.Helper()
	sel := statusOf(e.mcc(name)).Selector
	if sel == "" {
		e.t.Fatalf("MemcachedCluster %s publishes no selector", name)
	}
	l, err := e.kube.CoreV1().Pods(e.ns).List(context.Background(), metav1.ListOptions{LabelSelector: sel})
	if err != nil {
		e.t.Fatal(err)
	}
	slices.SortFunc(l.Items, func(a, b corev1.Pod) int { return strings.Compare(a.Name, b.Name) })
	return l.Items
}

// memberHost is a member's name as published (what its certificate must carry).
func (e *env) memberHost(cluster, pod string) string {
	if ep, _, ok := e.endpointsOf(cluster + "-endpoints"); ok {
		for _, s := range ep.Servers {
			if s.Name == pod && s.Host != "" {
				return s.Host
			}
		}
	}
	return pod + "." + cluster + "." + e.ns + ".svc.cluster.local"
}

// clientCLI runs the project's clientconfig CLI (build/bin) with args: the library's own TLS and
// authentication, following endpoints.json's "tls" and "auth" as an application would.
func clientCLI(t *testing.T, args ...string) (string, error) {
	t.Helper()
	out, err := exec.Command(filepath.Join(repoRoot(t), "build", "bin", "clientconfig"), args...).CombinedOutput()
	return string(out), err
}

// writeFiles writes each name's content into a new temporary directory.
func writeFiles(t *testing.T, files map[string]string) string {
	t.Helper()
	dir := t.TempDir()
	for name, content := range files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

// refused: a connection with cfg (nil: plaintext) gets no VERSION answer.
func refused(addr string, cfg *tls.Config) (bool, string) {
	conn, err := framework.DialMemcached(addr, cfg, 3*time.Second)
	if err != nil {
		return true, "handshake: " + err.Error()
	}
	defer conn.Close()
	v, err := conn.Version()
	if err != nil {
		return true, "version: " + err.Error()
	}
	return false, "VERSION " + v
}

// exerciseAll runs every kind of request a client makes (storage, retrieval, arithmetic, CAS,
// touch, meta commands, delete, stats) on one connection and says what went wrong.
func exerciseAll(c *framework.MemcachedConn, prefix string) error {
	k, n := prefix+":k", prefix+":n"
	steps := []struct{ req, want string }{
		{"set " + k + " 0 0 2\r\nv1\r\n", "STORED"},
		{"add " + k + " 0 0 2\r\nv9\r\n", "NOT_STORED"},
		{"replace " + k + " 0 0 2\r\nv2\r\n", "STORED"},
		{"append " + k + " 0 0 1\r\na\r\n", "STORED"},
		{"prepend " + k + " 0 0 1\r\np\r\n", "STORED"},
		{"set " + n + " 0 0 1\r\n5\r\n", "STORED"},
		{"incr " + n + " 3\r\n", "8"},
		{"decr " + n + " 2\r\n", "6"},
		{"touch " + k + " 300\r\n", "TOUCHED"},
		{"mn\r\n", "MN"},
	}
	for _, s := range steps {
		if got, err := c.Request(s.req); err != nil || got != s.want {
			return fmt.Errorf("%q: got %q (%v), want %q", strings.SplitN(s.req, "\r\n", 2)[0], got, err, s.want)
		}
	}
	if v, err := c.Get(k); err != nil || v != "pv2a" {
		return fmt.Errorf("get %s: %q %v", k, v, err)
	}
	v, cas, err := c.Gets(k)
	if err != nil || v != "pv2a" {
		return fmt.Errorf("gets %s: %q %v", k, v, err)
	}
	if got, err := c.Request(fmt.Sprintf("cas %s 0 0 2 %d\r\nv3\r\n", k, cas)); err != nil || got != "STORED" {
		return fmt.Errorf("cas: %q %v", got, err)
	}
	if got, err := c.Request("mg " + k + " v\r\n"); err != nil || got != "VA 2" {
		return fmt.Errorf("mg: %q %v", got, err)
	} else if data, err := c.Line(); err != nil || data != "v3" {
		return fmt.Errorf("mg value: %q %v", data, err)
	}
	if got, err := c.Request("ms " + k + " 2\r\nv4\r\n"); err != nil || got != "HD" {
		return fmt.Errorf("ms: %q %v", got, err)
	}
	if err := c.Delete(k); err != nil {
		return err
	}
	if _, err := c.Get(k); err != framework.ErrMiss {
		return fmt.Errorf("get after delete: %v", err)
	}
	line, err := c.Request("stats\r\n")
	for err == nil && line != "END" && strings.HasPrefix(line, "STAT ") {
		line, err = c.Line()
	}
	if err != nil || line != "END" {
		return fmt.Errorf("stats: %q %v", line, err)
	}
	return nil
}

// TLS: a cluster with spec.tls comes up Available; plaintext gets no answer; under
// clientAuth Require a TLS client without a certificate gets none either, one with a
// certificate the CA signed can do everything, and the member presents the Secret's
// certificate for its published name. endpoints.json says TLS is on and how, and carries no key
// material. A second cluster with clientAuth None serves TLS clients without a certificate.
func TestTLSRefusesPlaintextAndRequiresClientCertificates(t *testing.T) {
	e := newEnv(t)
	e.startSecurityOperator("")
	req := e.newTLSCluster("mtls")
	none := e.newTLSCluster("tls1")
	e.createCluster("mtls", "  replicas: 2\n  tls:\n    secretName: mtls-tls\n    clientAuth: Require\n")
	e.createCluster("tls1", "  replicas: 1\n  tls:\n    secretName: tls1-tls\n    clientAuth: None\n")
	e.waitAvailable("mtls", 2*time.Minute)
	e.waitAvailable("tls1", 2*time.Minute)

	for _, tc := range []struct {
		c          *tlsCluster
		clientAuth string
	}{{req, "require"}, {none, "none"}} {
		pods := e.memberPods(tc.c.name)
		if len(pods) == 0 {
			t.Fatalf("cluster %s has no pods", tc.c.name)
		}
		for _, p := range pods {
			addr := net.JoinHostPort(p.Status.PodIP, memcachedPort)
			host := e.memberHost(tc.c.name, p.Name)
			if no, why := refused(addr, nil); !no {
				t.Errorf("%s (%s): plaintext answered: %s", p.Name, addr, why)
			}
			noCert, why := refused(addr, tc.c.ca.ClientConfig(t, host, nil))
			if tc.clientAuth == "require" && !noCert {
				t.Errorf("%s: clientAuth Require, but a TLS client without a certificate got %s", p.Name, why)
			}
			if tc.clientAuth == "none" && noCert {
				t.Errorf("%s: clientAuth None, but a TLS client without a certificate was refused: %s", p.Name, why)
			}
			// A certificate from another CA is no better than none.
			if tc.clientAuth == "require" {
				stranger := framework.NewCA(t, "stranger").ClientCert(t, "stranger")
				if no, why := refused(addr, tc.c.ca.ClientConfig(t, host, &stranger)); !no {
					t.Errorf("%s: a client certificate from another CA got %s", p.Name, why)
				}
			}
			conn, err := framework.DialMemcached(addr, tc.c.ca.ClientConfig(t, host, &tc.c.client), 3*time.Second)
			if err != nil {
				t.Errorf("%s: TLS with the client certificate, verifying %s: %v", p.Name, host, err)
				continue
			}
			if err := exerciseAll(conn, "e2e-"+p.Name); err != nil {
				t.Errorf("%s over TLS: %v", p.Name, err)
			}
			if got := framework.CertFingerprint(conn.PeerCertificate().Raw); got != tc.c.server.Fingerprint() {
				t.Errorf("%s presents certificate %s, want the Secret's %s", p.Name, got, tc.c.server.Fingerprint())
			}
			conn.Close()
		}
		ep, cm, ok := e.endpointsOf(tc.c.name + "-endpoints")
		if !ok {
			t.Fatalf("no endpoints ConfigMap for %s", tc.c.name)
		}
		if ep.TLS == nil || ep.TLS.ClientAuth != tc.clientAuth || ep.Auth != "" {
			t.Errorf("%s endpoints.json: tls=%+v auth=%q, want tls.clientAuth %q and no auth:\n%s", tc.c.name, ep.TLS, ep.Auth, tc.clientAuth, cm.Data["endpoints.json"])
		}
		if raw, _ := json.Marshal(cm); strings.Contains(string(raw), "BEGIN") {
			t.Errorf("%s: the endpoints ConfigMap carries PEM material:\n%s", tc.c.name, raw)
		}
		e.checkCLIOverTLS(tc.c, cm.Data["endpoints.json"], pods, tc.clientAuth == "require")
	}
}

// checkCLIOverTLS: the clientconfig CLI, given the published endpoints.json and the CA (and the
// client certificate), reaches every member over TLS and sees the Secret's certificate, and
// sets and gets a key through the library's Client; under Require it is refused without the
// client certificate.
func (e *env) checkCLIOverTLS(c *tlsCluster, doc string, pods []corev1.Pod, require bool) {
	t := e.t
	t.Helper()
	dir := writeFiles(t, map[string]string{"endpoints.json": doc, "ca.crt": string(c.ca.CertPEM),
		"tls.crt": string(c.client.CertPEM), "tls.key": string(c.client.KeyPEM)})
	file := filepath.Join(dir, "endpoints.json")
	flags := []string{"--tls-ca=" + filepath.Join(dir, "ca.crt"), "--tls-cert=" + filepath.Join(dir, "tls.crt"), "--tls-key=" + filepath.Join(dir, "tls.key")}
	out, err := clientCLI(t, append(flags, "ping", file)...)
	if err != nil {
		t.Errorf("%s: clientconfig ping over TLS: %v\n%s", c.name, err, out)
	}
	for _, p := range pods {
		if !strings.Contains(out, p.Name+"\t") || !strings.Contains(out, "tls=on cert-sha256="+c.server.Fingerprint()) {
			t.Errorf("%s: clientconfig ping does not show %s over TLS with the Secret's certificate %s:\n%s", c.name, p.Name, c.server.Fingerprint(), out)
		}
	}
	if out, err := clientCLI(t, append(flags, "set", file, "cli-key", "cli-value")...); err != nil {
		t.Errorf("%s: clientconfig set over TLS: %v\n%s", c.name, err, out)
	}
	if out, err := clientCLI(t, append(flags, "get", file, "cli-key")...); err != nil || strings.TrimSpace(out) != "cli-key\tcli-value" {
		t.Errorf("%s: clientconfig get over TLS: %v\n%s", c.name, err, out)
	}
	if require {
		if out, err := clientCLI(t, "--tls-ca="+filepath.Join(dir, "ca.crt"), "ping", file); err == nil {
			t.Errorf("%s: clientconfig ping without a client certificate succeeded under Require:\n%s", c.name, out)
		}
	}
}

// podIdentity is what a restart or a re-creation changes: the pod's UID, its containers'
// restart counts, and the memcached process.
func (e *env) podIdentity(pods []corev1.Pod) map[string]string {
	out := map[string]string{}
	procs := framework.MemcachedProcesses()
	for _, p := range pods {
		var restarts []string
		for _, cs := range append(append([]corev1.ContainerStatus{}, p.Status.InitContainerStatuses...), p.Status.ContainerStatuses...) {
			restarts = append(restarts, fmt.Sprintf("%s=%d", cs.Name, cs.RestartCount))
		}
		var pids []int
		for _, pr := range procs[p.Status.PodIP] {
			pids = append(pids, pr.Pid)
		}
		out[p.Name] = fmt.Sprintf("uid=%s restarts=%v memcached=%v", p.UID, restarts, pids)
	}
	return out
}

// tlsWorkload runs set/get over TLS against every member: one goroutine connects afresh for
// each operation (each one a new handshake), one per member keeps a single connection for the
// whole run. Every failure counts.
type tlsWorkload struct {
	ops, errs atomic.Int64
	mu        sync.Mutex
	firstErrs []string
	wg        sync.WaitGroup
	stop      chan struct{}
	stopOnce  sync.Once
}

func (w *tlsWorkload) fail(format string, args ...any) {
	w.errs.Add(1)
	w.mu.Lock()
	defer w.mu.Unlock()
	if len(w.firstErrs) < 10 {
		w.firstErrs = append(w.firstErrs, time.Now().Format("15:04:05.000 ")+fmt.Sprintf(format, args...))
	}
}

func (w *tlsWorkload) setGet(c *framework.MemcachedConn, key string, i int) {
	v := fmt.Sprintf("value-%d", i)
	if err := c.Set(key, v); err != nil {
		w.fail("set %s: %v", key, err)
		return
	}
	if got, err := c.Get(key); err != nil || got != v {
		w.fail("get %s: %q %v, want %q", key, got, err, v)
		return
	}
	w.ops.Add(1)
}

func startTLSWorkload(addrs []string, cfgs []*tls.Config) *tlsWorkload {
	w := &tlsWorkload{stop: make(chan struct{})}
	stopped := func() bool {
		select {
		case <-w.stop:
			return true
		default:
			return false
		}
	}
	w.wg.Add(1)
	go func() { // a new connection per operation
		defer w.wg.Done()
		for i := 0; !stopped(); i++ {
			m := i % len(addrs)
			c, err := framework.DialMemcached(addrs[m], cfgs[m], 3*time.Second)
			if err != nil {
				w.fail("dial %s: %v", addrs[m], err)
				time.Sleep(50 * time.Millisecond)
				continue
			}
			w.setGet(c, fmt.Sprintf("fresh:%d", i%100), i)
			c.Close()
		}
	}()
	for m := range addrs {
		w.wg.Add(1)
		go func() { // one connection kept through the rotation
			defer w.wg.Done()
			c, err := framework.DialMemcached(addrs[m], cfgs[m], 3*time.Second)
			if err != nil {
				w.fail("dial %s: %v", addrs[m], err)
				return
			}
			defer c.Close()
			for i := 0; !stopped(); i++ {
				w.setGet(c, fmt.Sprintf("kept:%d:%d", m, i%100), i)
				time.Sleep(5 * time.Millisecond)
			}
		}()
	}
	return w
}

// finish stops the workload and waits for it (idempotent).
func (w *tlsWorkload) finish() {
	w.stopOnce.Do(func() { close(w.stop) })
	w.wg.Wait()
}

// Rotation: while a workload runs over TLS (fresh connections and kept ones), the tls Secret
// gets a new certificate; every member ends up presenting it (memcached's refresh_certs, once
// the kubelet projected the files), no pod is re-created or restarted, and the workload sees
// no error at all.
func TestCertificateRotationWithoutRestartOrClientError(t *testing.T) {
	e := newEnv(t)
	e.startSecurityOperator("")
	c := e.newTLSCluster("rot")
	e.createCluster("rot", "  replicas: 2\n  tls:\n    secretName: rot-tls\n    clientAuth: Require\n")
	e.waitAvailable("rot", 2*time.Minute)
	pods := e.memberPods("rot")
	before := e.podIdentity(pods)
	var addrs []string
	var cfgs []*tls.Config
	for _, p := range pods {
		addrs = append(addrs, net.JoinHostPort(p.Status.PodIP, memcachedPort))
		cfgs = append(cfgs, c.ca.ClientConfig(t, e.memberHost("rot", p.Name), &c.client))
	}
	w := startTLSWorkload(addrs, cfgs)
	defer w.finish()
	time.Sleep(2 * time.Second)
	opsBefore := w.ops.Load()

	rotated := c.ca.ServerCert(t, "rot", e.ns)
	e.putSecret(c.ca.TLSSecret(c.secret(), rotated))
	rotatedAt := time.Now()
	for i, p := range pods {
		e.waitFor(2*time.Minute, p.Name+" presenting the rotated certificate", func() (bool, error) {
			conn, err := framework.DialMemcached(addrs[i], cfgs[i], 3*time.Second)
			if err != nil {
				return false, err
			}
			defer conn.Close()
			got := framework.CertFingerprint(conn.PeerCertificate().Raw)
			return got == rotated.Fingerprint(), fmt.Errorf("presents %s", got)
		})
	}
	t.Logf("figure: Secret update -> every member presents the new certificate in %s", time.Since(rotatedAt).Round(100*time.Millisecond))
	e.waitFor(time.Minute, "status.tls: the rotated certificate served by every member", func() (bool, error) {
		st, _ := e.mcc("rot").Object["status"].(map[string]any)
		tlsStatus, _ := st["tls"].(map[string]any)
		pending, _ := tlsStatus["pending"].([]any)
		return tlsStatus["certificateSHA256"] == rotated.Fingerprint() && len(pending) == 0, fmt.Errorf("status.tls %v", tlsStatus)
	})
	opsAtRotation := w.ops.Load()
	time.Sleep(2 * time.Second)
	w.finish()
	t.Logf("workload: %d set+get pairs (%d before the update, %d after every member rotated), %d errors",
		w.ops.Load(), opsBefore, w.ops.Load()-opsAtRotation, w.errs.Load())
	if n := w.errs.Load(); n != 0 {
		t.Errorf("%d workload errors through the rotation; first: %s", n, strings.Join(w.firstErrs, "\n  "))
	}
	if opsBefore == 0 || w.ops.Load() == opsAtRotation {
		t.Errorf("the workload did not run before and after the rotation (%d, %d)", opsBefore, w.ops.Load()-opsAtRotation)
	}
	after := e.podIdentity(e.memberPods("rot"))
	for name, id := range before {
		if after[name] != id {
			t.Errorf("%s changed through the rotation: %s -> %s", name, id, after[name])
		}
	}
}

// Auth: with spec.auth, a connection that has not authenticated is refused, a wrong password
// is refused, the right one works; endpoints.json says "auth": "ascii", and the password
// appears nowhere the operator writes or logs (the ConfigMap, the MemcachedCluster, the
// StatefulSet, the pods, the events, its log at debug level).
func TestAuthRefusesWrongPasswordAndNeverPublishesIt(t *testing.T) {
	e := newEnv(t)
	op := e.startSecurityOperator("", "--log-level=debug")
	password := "pw-" + rand.String(24)
	e.putSecret(authSecret("auth-users", "alice:"+password+"\nbob:other-"+rand.String(12)+"\n"))
	e.createCluster("auth", "  replicas: 2\n  auth:\n    secretName: auth-users\n")
	e.waitAvailable("auth", 2*time.Minute)

	for _, p := range e.memberPods("auth") {
		addr := net.JoinHostPort(p.Status.PodIP, memcachedPort)
		c, err := framework.DialMemcached(addr, nil, 3*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		if v, err := c.Version(); err == nil {
			t.Errorf("%s: an unauthenticated connection got VERSION %s", p.Name, v)
		}
		if err := c.Auth("alice", "wrong-"+password); err == nil {
			t.Errorf("%s: a wrong password was accepted", p.Name)
		}
		if err := c.Set("k", "v"); err == nil {
			t.Errorf("%s: a set after a failed authentication was stored", p.Name)
		}
		c.Close()
		c, err = framework.DialMemcached(addr, nil, 3*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		if err := c.Auth("alice", password); err != nil {
			t.Errorf("%s: the right password: %v", p.Name, err)
		} else if err := exerciseAll(c, "auth-"+p.Name); err != nil {
			t.Errorf("%s after authenticating: %v", p.Name, err)
		}
		c.Close()
	}
	ep, cm, _ := e.endpointsOf("auth-endpoints")
	if ep.Auth != "ascii" || ep.TLS != nil {
		t.Errorf("endpoints.json: auth=%q tls=%+v, want auth ascii and no tls:\n%s", ep.Auth, ep.TLS, cm.Data["endpoints.json"])
	}
	// The clientconfig CLI follows "auth": "ascii" with the credentials it is given.
	dir := writeFiles(t, map[string]string{"endpoints.json": cm.Data["endpoints.json"],
		"right": "alice:" + password + "\n", "wrong": "alice:wrong-" + password + "\n"})
	file := filepath.Join(dir, "endpoints.json")
	if out, err := clientCLI(t, "--auth-file="+filepath.Join(dir, "right"), "ping", file); err != nil || strings.Count(out, "auth=ok") != 2 {
		t.Errorf("clientconfig ping with the right password: %v\n%s", err, out)
	}
	out, err := clientCLI(t, "--auth-file="+filepath.Join(dir, "wrong"), "get", file, "k")
	if err == nil {
		t.Errorf("clientconfig get with a wrong password succeeded:\n%s", out)
	}
	if strings.Contains(out, password) {
		t.Errorf("clientconfig printed the password")
	}

	ctx := context.Background()
	where := map[string]any{"endpoints ConfigMap": cm, "MemcachedCluster": e.mcc("auth").Object}
	if sts, err := e.kube.AppsV1().StatefulSets(e.ns).Get(ctx, "auth", metav1.GetOptions{}); err == nil {
		where["StatefulSet"] = sts
	}
	where["pods"] = e.memberPods("auth")
	if evs, err := e.kube.CoreV1().Events(e.ns).List(ctx, metav1.ListOptions{}); err == nil {
		where["events"] = evs.Items
	}
	if cms, err := e.kube.CoreV1().ConfigMaps(e.ns).List(ctx, metav1.ListOptions{}); err == nil {
		where["all ConfigMaps"] = cms.Items
	}
	for what, obj := range where {
		raw, _ := json.Marshal(obj)
		if strings.Contains(string(raw), password) {
			t.Errorf("the password is in the %s", what)
		}
	}
	if strings.Contains(op.logText(), password) {
		t.Errorf("the operator logged the password")
	}
}

// NetworkPolicy: the operator renders one policy per cluster (with networkPolicy.enabled) that
// selects exactly the cluster's pods, restricts ingress only, and admits the listed clients to
// memcached's port and the listed scrapers to the exporter's port (each with the operator's
// pods and the cluster's own), and nothing else. What the operator sent passes a dry run with fieldValidation=Strict
// (an unknown or misplaced field would fail it). The local cluster has no CNI, so the API
// server stores the policy but nothing enforces it: this tests the object, not enforcement.
func TestNetworkPolicyAdmitsExactlyTheIntendedPeers(t *testing.T) {
	e := newEnv(t)
	proxy := newAPIProxy(t)
	// The operator runs outside the cluster here; it is told where its pods would be, as the
	// chart tells it (POD_NAMESPACE and --operator-pod-labels).
	operatorNS, operatorLabels := "memcached-system", map[string]string{"app.kubernetes.io/name": "memcached-operator", "app.kubernetes.io/instance": "mcop"}
	e.startSecurityOperator(proxy.kubeconfig, "--operator-namespace="+operatorNS,
		"--operator-pod-labels=app.kubernetes.io/instance=mcop,app.kubernetes.io/name=memcached-operator")
	start := time.Now()
	e.createCluster("np", `  replicas: 2
  monitoring:
    enabled: true
  networkPolicy:
    enabled: true
    allowedClients:
      - podSelector:
          matchLabels:
            app: web
      - namespaceSelector:
          matchLabels:
            team: payments
        podSelector:
          matchLabels:
            role: api
    allowedScrapers:
      - namespaceSelector:
          matchLabels:
            kubernetes.io/metadata.name: monitoring
`)
	e.createCluster("other", "  replicas: 1\n")
	e.waitAvailable("np", 2*time.Minute)
	e.waitAvailable("other", 2*time.Minute)
	ctx := context.Background()
	uid := e.mcc("np").GetUID()
	var np *networkingv1.NetworkPolicy
	e.waitFor(time.Minute, "the NetworkPolicy of np", func() (bool, error) {
		l, err := e.kube.NetworkingV1().NetworkPolicies(e.ns).List(ctx, metav1.ListOptions{})
		if err != nil {
			return false, err
		}
		for i := range l.Items {
			for _, o := range l.Items[i].OwnerReferences {
				if o.UID == uid && o.Controller != nil && *o.Controller {
					np = &l.Items[i]
				}
			}
		}
		return np != nil, fmt.Errorf("%d NetworkPolicies, none controlled by np", len(l.Items))
	})
	if l, _ := e.kube.NetworkingV1().NetworkPolicies(e.ns).List(ctx, metav1.ListOptions{}); len(l.Items) != 1 {
		t.Errorf("want one NetworkPolicy (cluster other has none enabled), have %d", len(l.Items))
	}

	// podSelector: every member of np, no pod of the other cluster.
	sel, err := metav1.LabelSelectorAsSelector(&np.Spec.PodSelector)
	if err != nil || sel.Empty() {
		t.Fatalf("podSelector %+v: %v (empty selects every pod in the namespace)", np.Spec.PodSelector, err)
	}
	for _, p := range e.memberPods("np") {
		if !sel.Matches(labels.Set(p.Labels)) {
			t.Errorf("podSelector %s does not select member %s (%v)", sel, p.Name, p.Labels)
		}
	}
	for _, p := range e.memberPods("other") {
		if sel.Matches(labels.Set(p.Labels)) {
			t.Errorf("podSelector %s selects %s of another cluster", sel, p.Name)
		}
	}
	if !slices.Equal(np.Spec.PolicyTypes, []networkingv1.PolicyType{networkingv1.PolicyTypeIngress}) {
		t.Errorf("policyTypes %v, want [Ingress] (egress is not the policy's business)", np.Spec.PolicyTypes)
	}
	checkIngress(t, np, operatorNS, operatorLabels)
	strictDryRun(t, e, proxy, start, np.Name)
}

// checkIngress: each port (memcached's, the exporter's) admits exactly its allowed peers plus
// the operator's pods (--operator-namespace, --operator-pod-labels) and the cluster's own pods
// (the readiness probe and the exporter connect to their own pod's address, which some CNIs
// count as ingress); every rule names its ports and peers, and no ipBlock appears.
func checkIngress(t *testing.T, np *networkingv1.NetworkPolicy, operatorNS string, operatorLabels map[string]string) {
	t.Helper()
	peersOf := map[string][]string{} // "TCP/11211" -> peers (JSON)
	for i, r := range np.Spec.Ingress {
		if len(r.Ports) == 0 || len(r.From) == 0 {
			t.Errorf("ingress rule %d admits every %s: %+v", i, map[bool]string{true: "port", false: "peer"}[len(r.Ports) == 0], r)
			continue
		}
		for _, p := range r.Ports {
			proto := "TCP"
			if p.Protocol != nil {
				proto = string(*p.Protocol)
			}
			key := fmt.Sprintf("%s/%s", proto, p.Port.String())
			for _, f := range r.From {
				if f.IPBlock != nil {
					t.Errorf("ingress rule %d admits an ipBlock %+v", i, f.IPBlock)
				}
				peersOf[key] = append(peersOf[key], peerJSON(f))
			}
		}
	}
	var ports []string
	for k := range peersOf {
		ports = append(ports, k)
	}
	slices.Sort(ports)
	if !slices.Equal(ports, []string{"TCP/11211", "TCP/9150"}) {
		t.Errorf("ingress ports %v, want exactly TCP/11211 (memcached) and TCP/9150 (exporter)", ports)
	}
	sel := func(l map[string]string) *metav1.LabelSelector { return &metav1.LabelSelector{MatchLabels: l} }
	always := []string{
		peerJSON(networkingv1.NetworkPolicyPeer{NamespaceSelector: sel(map[string]string{"kubernetes.io/metadata.name": operatorNS}), PodSelector: sel(operatorLabels)}),
		peerJSON(networkingv1.NetworkPolicyPeer{PodSelector: np.Spec.PodSelector.DeepCopy()}),
	}
	clients := append([]string{
		peerJSON(networkingv1.NetworkPolicyPeer{PodSelector: sel(map[string]string{"app": "web"})}),
		peerJSON(networkingv1.NetworkPolicyPeer{PodSelector: sel(map[string]string{"role": "api"}), NamespaceSelector: sel(map[string]string{"team": "payments"})}),
	}, always...)
	scrapers := append([]string{
		peerJSON(networkingv1.NetworkPolicyPeer{NamespaceSelector: sel(map[string]string{"kubernetes.io/metadata.name": "monitoring"})}),
	}, always...)
	if got := peersOf["TCP/11211"]; !sameSet(got, clients) {
		t.Errorf("memcached's port admits\n  %v\nwant exactly the allowed clients, the operator and the cluster's pods\n  %v", got, clients)
	}
	if got := peersOf["TCP/9150"]; !sameSet(got, scrapers) {
		t.Errorf("the exporter's port admits\n  %v\nwant exactly the allowed scrapers, the operator and the cluster's pods\n  %v", got, scrapers)
	}
}

// peerJSON is a peer in one canonical form (the API types' field order), to compare sets.
func peerJSON(p networkingv1.NetworkPolicyPeer) string {
	b, _ := json.Marshal(p)
	return string(b)
}

// sameSet: the same peers, each as often.
func sameSet(a, b []string) bool {
	a, b = slices.Clone(a), slices.Clone(b)
	slices.Sort(a)
	slices.Sort(b)
	return slices.Equal(a, b)
}

// strictDryRun sends the operator's last write of the NetworkPolicy (as the proxy recorded it)
// again as a dry run with fieldValidation=Strict, and, as a control, the same with an unknown
// field, which must fail.
func strictDryRun(t *testing.T, e *env, proxy *apiProxy, since time.Time, name string) {
	t.Helper()
	var sent *proxiedRequest
	for _, r := range proxy.requestsSince(since) {
		if r.write() && r.Method != http.MethodDelete && strings.Contains(r.Path, "/networkpolicies") && len(r.Body) > 0 &&
			(path.Base(r.Path) == name || path.Base(r.Path) == "networkpolicies") {
			sent = &r
		}
	}
	if sent == nil {
		t.Fatalf("the proxy saw no write of NetworkPolicy %s", name)
	}
	rc := e.kube.NetworkingV1().RESTClient()
	send := func(body []byte) error {
		var req = rc.Post()
		switch sent.Method {
		case http.MethodPut:
			req = rc.Put()
		case http.MethodPatch:
			req = rc.Patch(types.PatchType(strings.Split(sent.ContentType, ";")[0]))
		}
		req = req.AbsPath(sent.Path).Param("dryRun", "All").Param("fieldValidation", "Strict").Body(body)
		for k, vs := range sent.Query {
			if k != "fieldValidation" && k != "dryRun" {
				for _, v := range vs {
					req = req.Param(k, v)
				}
			}
		}
		return req.Do(context.Background()).Error()
	}
	if err := send(sent.Body); err != nil {
		t.Errorf("the operator's NetworkPolicy (%s %s) fails a strict dry run: %v\n%s", sent.Method, sent.Path, err, sent.Body)
	}
	var obj map[string]any
	if err := json.Unmarshal(sent.Body, &obj); err != nil {
		t.Logf("the body is not JSON (%v); no unknown-field control", err)
		return
	}
	spec, _ := obj["spec"].(map[string]any)
	if spec == nil {
		t.Fatalf("the operator's NetworkPolicy has no spec: %s", sent.Body)
	}
	spec["admitEveryone"] = true
	bad, _ := json.Marshal(obj)
	if err := send(bad); err == nil || !strings.Contains(err.Error(), "admitEveryone") {
		t.Errorf("control: an unknown field passed the strict dry run (err=%v): the check above proves nothing", err)
	}
}

// scrapeExporter GETs http://ip:port/metrics.
func scrapeExporter(ip string, port int32) (string, error) {
	c := &http.Client{Timeout: 5 * time.Second}
	resp, err := c.Get("http://" + net.JoinHostPort(ip, fmt.Sprint(port)) + "/metrics")
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		return "", fmt.Errorf("status %d", resp.StatusCode)
	}
	return string(b), err
}

func metricValue(text, name string) string {
	for _, l := range strings.Split(text, "\n") {
		if v, ok := strings.CutPrefix(l, name+" "); ok {
			return strings.TrimSpace(v)
		}
	}
	return ""
}

// exporterContainer is the pod's memcached exporter (a container or a sidecar init container)
// and its metrics port.
func exporterContainer(p *corev1.Pod) (*corev1.Container, int32) {
	for _, list := range [][]corev1.Container{p.Spec.InitContainers, p.Spec.Containers} {
		for i := range list {
			if strings.Contains(list[i].Image, "memcached-exporter") {
				port := int32(9150)
				for _, cp := range list[i].Ports {
					port = cp.ContainerPort
				}
				return &list[i], port
			}
		}
	}
	return nil, 0
}

// Exporter: with monitoring on, each member runs the memcached exporter beside memcached (the
// loopback kubelet runs memcached_exporter v0.15.0 for its image), and its /metrics, scraped
// from the pod IP, says memcached_up 1; with TLS on as well (clientAuth Require), memcached
// answers nothing but TLS with a client certificate, so memcached_up 1 means the exporter
// speaks TLS with the right certificate.
func TestExporterSidecarReportsMemcachedUp(t *testing.T) {
	e := newEnv(t)
	e.startSecurityOperator("")
	c := e.newTLSCluster("montls")
	e.createCluster("mon", "  replicas: 1\n  monitoring:\n    enabled: true\n")
	e.createCluster("montls", "  replicas: 1\n  monitoring:\n    enabled: true\n  tls:\n    secretName: montls-tls\n    clientAuth: Require\n")
	for _, name := range []string{"mon", "montls"} {
		e.waitAvailable(name, 2*time.Minute)
		for _, p := range e.memberPods(name) {
			ctr, port := exporterContainer(&p)
			if ctr == nil {
				t.Errorf("%s has no memcached exporter container", p.Name)
				continue
			}
			if port != 9150 {
				t.Errorf("%s: exporter port %d, want the default 9150", p.Name, port)
			}
			if name == "montls" {
				if no, why := refused(net.JoinHostPort(p.Status.PodIP, memcachedPort), c.ca.ClientConfig(t, e.memberHost(name, p.Name), nil)); !no {
					t.Errorf("%s: TLS without a client certificate answered (%s): memcached_up would prove nothing", p.Name, why)
				}
			}
			var metrics string
			e.waitFor(time.Minute, p.Name+" exporter memcached_up 1", func() (bool, error) {
				var err error
				metrics, err = scrapeExporter(p.Status.PodIP, port)
				return err == nil && metricValue(metrics, "memcached_up") == "1", fmt.Errorf("memcached_up=%q err=%v", metricValue(metrics, "memcached_up"), err)
			})
			if !strings.Contains(metrics, `memcached_exporter_build_info{`) || !strings.Contains(metrics, `version="0.15.0"`) {
				t.Errorf("%s: /metrics is not memcached_exporter 0.15.0's", p.Name)
			}
			if !strings.Contains(metrics, "memcached_current_connections") {
				t.Errorf("%s: /metrics has no memcached stats", p.Name)
			}
		}
	}
}

// badCase is one broken Secret and the words its condition and event must use.
type badCase struct {
	what   string
	secret string
	apply  func()
	words  []string // one of them, case-insensitive, in the condition's and the event's message
}

// secretCondition is a condition that names the Secret and the problem.
func (e *env) secretCondition(cluster string, bc badCase) (condition, bool) {
	for _, c := range statusOf(e.mcc(cluster)).Conditions {
		if strings.Contains(c.Message, bc.secret) && mentions(c.Message, bc.words) {
			return c, true
		}
	}
	return condition{}, false
}

func mentions(msg string, words []string) bool {
	for _, w := range words {
		if strings.Contains(strings.ToLower(msg), strings.ToLower(w)) {
			return true
		}
	}
	return false
}

// warningCounts maps each Warning event about the cluster to its count.
func (e *env) warningCounts(cluster string) map[string]int32 {
	e.t.Helper()
	out := map[string]int32{}
	l, err := e.kube.CoreV1().Events(e.ns).List(context.Background(), metav1.ListOptions{})
	if err != nil {
		e.t.Fatal(err)
	}
	for _, ev := range l.Items {
		if ev.InvolvedObject.Name == cluster && ev.InvolvedObject.Kind == "MemcachedCluster" && ev.Type == corev1.EventTypeWarning {
			n := ev.Count
			if ev.Series != nil {
				n += ev.Series.Count
			}
			out[ev.Name+"\x00"+ev.Message] = max(n, 1)
		}
	}
	return out
}

// serving: every member answers a TLS client with the certificate and the password of the last
// good configuration, and presents that configuration's certificate.
func (e *env) serving(cluster string, c *tlsCluster, password string) error {
	for _, p := range e.memberPods(cluster) {
		conn, err := framework.DialMemcached(net.JoinHostPort(p.Status.PodIP, memcachedPort),
			c.ca.ClientConfig(e.t, e.memberHost(cluster, p.Name), &c.client), 3*time.Second)
		if err != nil {
			return fmt.Errorf("%s: %v", p.Name, err)
		}
		err = conn.Auth("alice", password)
		if err == nil {
			err = conn.Set("last-good", "yes")
		}
		got := framework.CertFingerprint(conn.PeerCertificate().Raw)
		conn.Close()
		if err != nil {
			return fmt.Errorf("%s: %v", p.Name, err)
		}
		if got != c.server.Fingerprint() {
			return fmt.Errorf("%s presents %s, not the last good certificate %s", p.Name, got, c.server.Fingerprint())
		}
	}
	return nil
}

// Bad input: a Secret that expired, whose key does not match its certificate, that lacks
// tls.key, that is gone, and an empty auth file, one after the other on a serving cluster
// (TLS Require + auth). Each gives a condition and a Warning event that name the Secret and
// the problem; no pod is deleted or restarted, every member keeps serving with the last good
// certificate and password, and the operator keeps running. Good Secrets again clear the
// condition.
func TestBadSecretsKeepTheLastGoodConfiguration(t *testing.T) {
	e := newEnv(t)
	op := e.startSecurityOperator("")
	c := e.newTLSCluster("bad")
	password := "pw-" + rand.String(20)
	e.putSecret(authSecret("bad-auth", "alice:"+password+"\n"))
	e.createCluster("bad", "  replicas: 2\n  tls:\n    secretName: bad-tls\n    clientAuth: Require\n  auth:\n    secretName: bad-auth\n")
	e.waitAvailable("bad", 2*time.Minute)
	if err := e.serving("bad", c, password); err != nil {
		t.Fatalf("before any bad input: %v", err)
	}
	identity := e.podIdentity(e.memberPods("bad"))

	// The words tell the cases apart, so that a condition or event left from the case before
	// never passes for the next one.
	cases := []badCase{
		{"an expired certificate", "bad-tls", func() { e.putSecret(c.ca.TLSSecret("bad-tls", c.ca.ExpiredServerCert(t, "bad", e.ns))) },
			[]string{"expired", "not valid after", "notAfter"}},
		{"a Secret without tls.key", "bad-tls", func() { e.putSecret(c.ca.SecretWithout("bad-tls", c.server, "tls.key")) },
			[]string{"no key tls.key", "has no key", "missing tls.key", "without tls.key", "lacks tls.key"}},
		{"a key that does not match the certificate", "bad-tls", func() { e.putSecret(c.ca.TLSSecret("bad-tls", c.ca.MismatchedServerCert(t, "bad", e.ns))) },
			[]string{"match"}},
		{"a missing Secret", "bad-tls", func() { e.deleteSecret("bad-tls") },
			[]string{"does not exist", "not found", "no such"}},
		{"an empty auth file", "bad-auth", func() { e.putSecret(authSecret("bad-auth", "")) },
			[]string{"empty", "no entr", "no user"}},
	}
	for _, bc := range cases {
		warnings := e.warningCounts("bad")
		bc.apply()
		applied := time.Now()
		var cond condition
		e.waitFor(2*time.Minute, "a condition naming "+bc.secret+" for "+bc.what, func() (bool, error) {
			var ok bool
			cond, ok = e.secretCondition("bad", bc)
			return ok, fmt.Errorf("conditions %+v", statusOf(e.mcc("bad")).Conditions)
		})
		var event string
		e.waitFor(time.Minute, "a Warning event naming "+bc.secret+" for "+bc.what, func() (bool, error) {
			for k, n := range e.warningCounts("bad") {
				if msg := strings.SplitN(k, "\x00", 2)[1]; n > warnings[k] && strings.Contains(msg, bc.secret) && mentions(msg, bc.words) {
					event = msg
					return true, nil
				}
			}
			return false, fmt.Errorf("no new Warning event")
		})
		t.Logf("%s: condition %s=%s %s: %q; event %q (in %s)", bc.what, cond.Type, cond.Status, cond.Reason, cond.Message, event, time.Since(applied).Round(100*time.Millisecond))
		// Give a wrong move time to happen: the kubelet projects the files within a second or
		// two, and the operator would act on them within its next pass.
		time.Sleep(3 * time.Second)
		if err := e.serving("bad", c, password); err != nil {
			t.Errorf("after %s the cluster does not serve its last good configuration: %v", bc.what, err)
		}
		if now := e.podIdentity(e.memberPods("bad")); !maps.Equal(now, identity) {
			t.Errorf("after %s pods changed:\n  before %v\n  now    %v", bc.what, identity, now)
		}
		if !op.running() {
			t.Fatalf("the operator exited after %s (code %d)", bc.what, op.exitCode())
		}
	}

	// Good Secrets again: the conditions naming them clear, and the cluster still serves.
	e.putSecret(c.ca.TLSSecret("bad-tls", c.server))
	e.putSecret(authSecret("bad-auth", "alice:"+password+"\n"))
	e.waitFor(2*time.Minute, "no condition reporting a bad Secret", func() (bool, error) {
		for _, bc := range cases {
			if cd, ok := e.secretCondition("bad", bc); ok {
				return false, fmt.Errorf("%+v", cd)
			}
		}
		return true, nil
	})
	if err := e.serving("bad", c, password); err != nil {
		t.Errorf("with good Secrets again: %v", err)
	}
	if log := op.logText(); strings.Contains(log, password) || strings.Contains(log, "PRIVATE KEY") {
		t.Errorf("the operator logged the password or a private key")
	}
}
