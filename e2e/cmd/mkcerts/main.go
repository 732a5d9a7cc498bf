// Command mkcerts creates the PKI and kubeconfigs of the local cluster in a
// state directory: a CA, the API server's serving certificate, client
// certificates (admin, controller-manager, kubelet, apiserver->kubelet), the
// service-account signing key pair, and one kubeconfig per client. Existing
// keys and certificates are kept, so a second `up` reuses them; kubeconfigs
// are rewritten each time because the server address may change.
package main

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/pem"
	"flag"
	"fmt"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"time"
)

type cert struct {
	name   string
	cn     string
	orgs   []string
	server bool
}

func main() {
	dir := flag.String("dir", "", "state directory (writes pki/ and *.kubeconfig)")
	server := flag.String("server", "https://127.0.0.1:16443", "API server URL for the kubeconfigs")
	flag.Parse()
	if *dir == "" {
		fmt.Fprintln(os.Stderr, "mkcerts: --dir is required")
		os.Exit(2)
	}
	if err := run(*dir, *server); err != nil {
		fmt.Fprintln(os.Stderr, "mkcerts:", err)
		os.Exit(1)
	}
}

func run(dir, server string) error {
	pki := filepath.Join(dir, "pki")
	if err := os.MkdirAll(pki, 0o700); err != nil {
		return err
	}
	caKey, caCert, err := loadOrCreateCA(pki)
	if err != nil {
		return err
	}
	certs := []cert{
		{name: "apiserver", cn: "kube-apiserver", server: true},
		{name: "kubelet-serving", cn: "loopback-node", server: true},
		{name: "admin", cn: "kubernetes-admin", orgs: []string{"system:masters"}},
		{name: "controller-manager", cn: "system:kube-controller-manager"},
		// The loopback kubelet binds pods (which the Node authorizer forbids
		// to nodes) and mints tokens for any pod, so it acts as an admin.
		{name: "kubelet", cn: "loopback-kubelet", orgs: []string{"system:masters"}},
		{name: "apiserver-kubelet-client", cn: "kube-apiserver-kubelet-client", orgs: []string{"system:masters"}},
	}
	for _, c := range certs {
		if err := loadOrCreateLeaf(pki, c, caKey, caCert); err != nil {
			return err
		}
	}
	if _, err := os.Stat(filepath.Join(pki, "sa.key")); err != nil {
		key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			return err
		}
		if err := writeKey(filepath.Join(pki, "sa.key"), key); err != nil {
			return err
		}
		pub, err := x509.MarshalPKIXPublicKey(&key.PublicKey)
		if err != nil {
			return err
		}
		if err := writePEM(filepath.Join(pki, "sa.pub"), "PUBLIC KEY", pub, 0o644); err != nil {
			return err
		}
	}
	for _, kc := range []struct{ file, cert string }{
		{"admin.kubeconfig", "admin"},
		{"controller-manager.kubeconfig", "controller-manager"},
		{"kubelet.kubeconfig", "kubelet"},
	} {
		if err := writeKubeconfig(filepath.Join(dir, kc.file), server, pki, kc.cert); err != nil {
			return err
		}
	}
	return nil
}

func loadOrCreateCA(pki string) (*ecdsa.PrivateKey, *x509.Certificate, error) {
	keyPath, certPath := filepath.Join(pki, "ca.key"), filepath.Join(pki, "ca.crt")
	if kb, err := os.ReadFile(keyPath); err == nil {
		cb, err := os.ReadFile(certPath)
		if err != nil {
			return nil, nil, err
		}
		kblock, _ := pem.Decode(kb)
		cblock, _ := pem.Decode(cb)
		if kblock == nil || cblock == nil {
			return nil, nil, fmt.Errorf("cannot parse %s or %s", keyPath, certPath)
		}
		key, err := x509.ParseECPrivateKey(kblock.Bytes)
		if err != nil {
			return nil, nil, err
		}
		c, err := x509.ParseCertificate(cblock.Bytes)
		return key, c, err
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, err
	}
	tmpl := &x509.Certificate{
		SerialNumber:          serial(),
		Subject:               pkix.Name{CommonName: "memcached-operator-e2e-ca"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().AddDate(10, 0, 0),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature | x509.KeyUsageKeyEncipherment,
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, nil, err
	}
	if err := writeKey(keyPath, key); err != nil {
		return nil, nil, err
	}
	if err := writePEM(certPath, "CERTIFICATE", der, 0o644); err != nil {
		return nil, nil, err
	}
	c, err := x509.ParseCertificate(der)
	return key, c, err
}

func loadOrCreateLeaf(pki string, c cert, caKey *ecdsa.PrivateKey, ca *x509.Certificate) error {
	certPath := filepath.Join(pki, c.name+".crt")
	if _, err := os.Stat(certPath); err == nil {
		return nil
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return err
	}
	tmpl := &x509.Certificate{
		SerialNumber: serial(),
		Subject:      pkix.Name{CommonName: c.cn, Organization: c.orgs},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().AddDate(10, 0, 0),
		KeyUsage:     x509.KeyUsageDigitalSignature | x509.KeyUsageKeyEncipherment,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	}
	if c.server {
		tmpl.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}
		tmpl.DNSNames = []string{"localhost", "kubernetes", "kubernetes.default", "kubernetes.default.svc",
			"kubernetes.default.svc.cluster.local", "loopback-node"}
		tmpl.IPAddresses = []net.IP{net.ParseIP("127.0.0.1"), net.ParseIP("10.96.0.1"), net.ParseIP("::1")}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &key.PublicKey, caKey)
	if err != nil {
		return err
	}
	if err := writeKey(filepath.Join(pki, c.name+".key"), key); err != nil {
		return err
	}
	return writePEM(certPath, "CERTIFICATE", der, 0o644)
}

func serial() *big.Int {
	n, _ := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 62))
	return n
}

func writeKey(path string, key *ecdsa.PrivateKey) error {
	der, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		return err
	}
	return writePEM(path, "EC PRIVATE KEY", der, 0o600)
}

func writePEM(path, typ string, der []byte, mode os.FileMode) error {
	return os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), mode)
}

func writeKubeconfig(path, server, pki, name string) error {
	read := func(f string) (string, error) {
		b, err := os.ReadFile(filepath.Join(pki, f))
		return base64.StdEncoding.EncodeToString(b), err
	}
	ca, err := read("ca.crt")
	if err != nil {
		return err
	}
	crt, err := read(name + ".crt")
	if err != nil {
		return err
	}
	key, err := read(name + ".key")
	if err != nil {
		return err
	}
	text := fmt.Sprintf(`apiVersion: v1
kind: Config
clusters:
- name: mcop-e2e
  cluster:
    server: %s
    certificate-authority-data: %s
users:
- name: %s
  user:
    client-certificate-data: %s
    client-key-data: %s
contexts:
- name: mcop-e2e
  context:
    cluster: mcop-e2e
    user: %s
    namespace: default
current-context: mcop-e2e
`, server, ca, name, crt, key, name)
	return os.WriteFile(path, []byte(text), 0o600)
}
