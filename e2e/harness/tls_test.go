// What the loopback kubelet does for issue 11's pods, without the operator: memcached with TLS
// files from a Secret volume (volume mountPaths become the pod's local volume directories), a
// rotated Secret reaching memcached through refresh_certs, and the memcached exporter image run
// as the real memcached_exporter v0.15.0, scraping its own pod's memcached over TLS.
package harness_test

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/utils/ptr"

	"memcached-operator/e2e/framework"
)

// scrapeMetrics GETs http://ip:port/metrics.
func scrapeMetrics(ip string, port int) (string, error) {
	c := &http.Client{Timeout: 5 * time.Second}
	resp, err := c.Get("http://" + net.JoinHostPort(ip, fmt.Sprint(port)) + "/metrics")
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 {
		return "", fmt.Errorf("status %d", resp.StatusCode)
	}
	return string(b), err
}

// metricLine is the value of an unlabelled metric in Prometheus text ("" when absent).
func metricLine(text, name string) string {
	for _, l := range strings.Split(text, "\n") {
		if v, ok := strings.CutPrefix(l, name+" "); ok {
			return strings.TrimSpace(v)
		}
	}
	return ""
}

func TestTLSMemcachedWithExporterSidecar(t *testing.T) {
	c := framework.Client(t)
	ctx := context.Background()
	ns := framework.NewNamespace(t, c, "harness-tls")
	ca := framework.NewCA(t, "harness-tls-ca")
	server := ca.ServerCert(t, "mc", ns)
	if _, err := c.CoreV1().Secrets(ns).Create(ctx, ca.TLSSecret("mc-tls", server), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	const dir = "/etc/memcached/tls"
	serverName := "mc-0.mc." + ns + ".svc.cluster.local"
	pod := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "mc-0", Labels: map[string]string{"app": "mc-tls"}},
		Spec: corev1.PodSpec{
			TerminationGracePeriodSeconds: ptr.To[int64](5),
			SecurityContext:               framework.RestrictedPodSecurityContext(),
			Containers: []corev1.Container{{
				Name: "memcached", Image: "memcached:1.6.18", Command: []string{"memcached"},
				Args: append(append([]string{}, framework.MemcachedArgs...), "-Z", "-o",
					"ssl_chain_cert="+dir+"/tls.crt,ssl_key="+dir+"/tls.key,ssl_ca_cert="+dir+"/ca.crt,ssl_verify_mode=2"),
				VolumeMounts:    []corev1.VolumeMount{{Name: "tls", MountPath: dir, ReadOnly: true}},
				ReadinessProbe:  &corev1.Probe{PeriodSeconds: 1, ProbeHandler: corev1.ProbeHandler{TCPSocket: &corev1.TCPSocketAction{Port: intstr.FromInt32(11211)}}},
				SecurityContext: framework.RestrictedSecurityContext(),
			}, {
				Name: "exporter", Image: "quay.io/prometheus/memcached-exporter:v0.15.0",
				Args: []string{"--memcached.address=localhost:11211", "--memcached.tls.enable",
					"--memcached.tls.ca-file=" + dir + "/ca.crt", "--memcached.tls.cert-file=" + dir + "/tls.crt",
					"--memcached.tls.key-file=" + dir + "/tls.key", "--memcached.tls.server-name=" + serverName},
				VolumeMounts:    []corev1.VolumeMount{{Name: "tls", MountPath: dir, ReadOnly: true}},
				ReadinessProbe:  &corev1.Probe{PeriodSeconds: 1, ProbeHandler: corev1.ProbeHandler{HTTPGet: &corev1.HTTPGetAction{Path: "/metrics", Port: intstr.FromInt32(9150)}}},
				SecurityContext: framework.RestrictedSecurityContext(),
			}},
			Volumes: []corev1.Volume{{Name: "tls", VolumeSource: corev1.VolumeSource{Secret: &corev1.SecretVolumeSource{SecretName: "mc-tls"}}}},
		},
	}
	if _, err := c.CoreV1().Pods(ns).Create(ctx, pod, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	p := waitReadyPods(t, c, ns, "app=mc-tls", 1)[0]
	addr := net.JoinHostPort(p.Status.PodIP, "11211")
	client := ca.ClientCert(t, "harness")

	// Plaintext gets no answer; TLS without a client certificate neither (verify mode 2);
	// TLS with one works and presents the Secret's certificate.
	if v, err := framework.MemcachedVersion(addr); err == nil {
		t.Errorf("plaintext version answered %q by a -Z memcached", v)
	}
	if conn, err := framework.DialMemcached(addr, ca.ClientConfig(t, serverName, nil), 3*time.Second); err == nil {
		if v, err := conn.Version(); err == nil {
			t.Errorf("a TLS client without a certificate got VERSION %q under ssl_verify_mode=2", v)
		}
		conn.Close()
	}
	peer := func() string {
		t.Helper()
		conn, err := framework.DialMemcached(addr, ca.ClientConfig(t, serverName, &client), 3*time.Second)
		if err != nil {
			t.Fatalf("TLS with a client certificate: %v", err)
		}
		defer conn.Close()
		if _, err := conn.Version(); err != nil {
			t.Fatalf("TLS with a client certificate: %v", err)
		}
		return framework.CertFingerprint(conn.PeerCertificate().Raw)
	}
	if got := peer(); got != server.Fingerprint() {
		t.Errorf("memcached presents %s, want the Secret's certificate %s", got, server.Fingerprint())
	}

	// The exporter sidecar: memcached_up 1 over TLS with the pod's files.
	var metrics string
	framework.WaitFor(t, 20*time.Second, "exporter memcached_up 1", func() (bool, error) {
		var err error
		metrics, err = scrapeMetrics(p.Status.PodIP, 9150)
		return err == nil && metricLine(metrics, "memcached_up") == "1", err
	})
	if v := metricLine(metrics, "memcached_version"); v == "" && !strings.Contains(metrics, `memcached_version{version="1.6.18"}`) {
		t.Errorf("exporter metrics lack memcached's version:\n%.2000s", metrics)
	}
	if !strings.Contains(metrics, `memcached_exporter_build_info{`) || !strings.Contains(metrics, `version="0.15.0"`) {
		t.Errorf("the exporter is not memcached_exporter 0.15.0:\n%.2000s", metrics)
	}

	// Rotation: a new certificate in the Secret reaches the volume; refresh_certs (as root:
	// the files are under the state directory) makes memcached present it, no restart.
	rotated := ca.ServerCert(t, "mc", ns)
	if _, err := c.CoreV1().Secrets(ns).Update(ctx, ca.TLSSecret("mc-tls", rotated), metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	framework.WaitFor(t, 20*time.Second, "rotated tls.crt in the pod's volume", func() (bool, error) {
		b, err := os.ReadFile(framework.VolumeDir(t, &p, "tls") + "/tls.crt")
		return err == nil && string(b) == string(rotated.CertPEM), err
	})
	conn, err := framework.DialMemcached(addr, ca.ClientConfig(t, serverName, &client), 3*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if line, err := conn.Request("refresh_certs\r\n"); err != nil || line != "OK" {
		t.Fatalf("refresh_certs: %q %v", line, err)
	}
	conn.Close()
	if got := peer(); got != rotated.Fingerprint() {
		t.Errorf("after refresh_certs memcached presents %s, want the rotated certificate %s", got, rotated.Fingerprint())
	}
	after, err := c.CoreV1().Pods(ns).Get(ctx, "mc-0", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for _, cs := range after.Status.ContainerStatuses {
		if cs.RestartCount != 0 {
			t.Errorf("container %s restarted %d times", cs.Name, cs.RestartCount)
		}
	}
}
