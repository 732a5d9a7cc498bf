package framework

// Test PKI for memcached's TLS: a CA, server certificates for a cluster's members, client
// certificates, and the broken material the bad-input tests need (an expired certificate, a
// key that does not match its certificate), as the Secrets cert-manager writes (tls.crt,
// tls.key, ca.crt). ECDSA P-256 like e2e/cmd/mkcerts; keys in PKCS#8 ("PRIVATE KEY"), which
// OpenSSL (memcached, libclientconfig) and Go read alike. A CA is safe for concurrent use
// once made.

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"encoding/pem"
	"math/big"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// CA is a test certificate authority.
type CA struct {
	Cert    *x509.Certificate
	CertPEM []byte
	key     *ecdsa.PrivateKey
}

// KeyPair is a certificate (PEM, parsed) and its private key (PEM).
type KeyPair struct {
	Cert    *x509.Certificate
	CertPEM []byte
	KeyPEM  []byte
}

// Fingerprint is the SHA-256 of the certificate's DER, in hex: what a TLS peer presents.
func (k KeyPair) Fingerprint() string { return CertFingerprint(k.Cert.Raw) }

// CertFingerprint is the hex SHA-256 of a DER certificate.
func CertFingerprint(der []byte) string {
	h := sha256.Sum256(der)
	return hex.EncodeToString(h[:])
}

// CertOptions shape a leaf certificate.
type CertOptions struct {
	CommonName string
	DNSNames   []string
	Server     bool          // ExtKeyUsage serverAuth
	Client     bool          // ExtKeyUsage clientAuth
	NotBefore  time.Time     // zero: an hour ago
	Validity   time.Duration // zero: 30 days (the operator warns about one expiring within 7)
}

// NewCA makes a CA valid from an hour ago for 60 days.
func NewCA(t testing.TB, name string) *CA {
	t.Helper()
	key := newKey(t)
	tmpl := &x509.Certificate{
		SerialNumber:          serialNumber(t),
		Subject:               pkix.Name{CommonName: name},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(60 * 24 * time.Hour),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign | x509.KeyUsageDigitalSignature,
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatalf("CA certificate: %v", err)
	}
	cert, _ := x509.ParseCertificate(der)
	return &CA{Cert: cert, CertPEM: pemBlock("CERTIFICATE", der), key: key}
}

// Issue signs a new key's certificate with the CA.
func (ca *CA) Issue(t testing.TB, o CertOptions) KeyPair {
	t.Helper()
	key := newKey(t)
	notBefore := o.NotBefore
	if notBefore.IsZero() {
		notBefore = time.Now().Add(-time.Hour)
	}
	validity := o.Validity
	if validity == 0 {
		validity = 30 * 24 * time.Hour
	}
	tmpl := &x509.Certificate{
		SerialNumber: serialNumber(t),
		Subject:      pkix.Name{CommonName: o.CommonName},
		DNSNames:     o.DNSNames,
		NotBefore:    notBefore,
		NotAfter:     notBefore.Add(validity),
		KeyUsage:     x509.KeyUsageDigitalSignature,
	}
	if o.Server {
		tmpl.ExtKeyUsage = append(tmpl.ExtKeyUsage, x509.ExtKeyUsageServerAuth)
	}
	if o.Client {
		tmpl.ExtKeyUsage = append(tmpl.ExtKeyUsage, x509.ExtKeyUsageClientAuth)
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.Cert, &key.PublicKey, ca.key)
	if err != nil {
		t.Fatalf("certificate %s: %v", o.CommonName, err)
	}
	cert, _ := x509.ParseCertificate(der)
	return KeyPair{Cert: cert, CertPEM: pemBlock("CERTIFICATE", der), KeyPEM: keyPEM(t, key)}
}

// MemberDNSNames are the names a cluster's members answer to: each pod
// (<pod>.<cluster>.<ns>.svc.cluster.local, under the headless Service) and the Service itself,
// with and without the cluster domain.
func MemberDNSNames(cluster, namespace string) []string {
	svc := cluster + "." + namespace + ".svc"
	return []string{"*." + svc + ".cluster.local", svc + ".cluster.local", "*." + svc, svc}
}

// ServerCert is a certificate for a cluster's members (MemberDNSNames). It allows client
// authentication too, so that one Secret can serve memcached and, under clientAuth Require,
// the operator and the exporter when no separate client Secret is named.
func (ca *CA) ServerCert(t testing.TB, cluster, namespace string) KeyPair {
	t.Helper()
	return ca.Issue(t, CertOptions{CommonName: cluster + "." + namespace, DNSNames: MemberDNSNames(cluster, namespace), Server: true, Client: true})
}

// ClientCert is a client-authentication certificate for cn.
func (ca *CA) ClientCert(t testing.TB, cn string) KeyPair {
	t.Helper()
	return ca.Issue(t, CertOptions{CommonName: cn, Client: true})
}

// ExpiredServerCert is ServerCert valid for an hour that ended an hour ago.
func (ca *CA) ExpiredServerCert(t testing.TB, cluster, namespace string) KeyPair {
	t.Helper()
	return ca.Issue(t, CertOptions{CommonName: cluster + "." + namespace, DNSNames: MemberDNSNames(cluster, namespace),
		Server: true, Client: true, NotBefore: time.Now().Add(-2 * time.Hour), Validity: time.Hour})
}

// MismatchedServerCert is ServerCert with the private key of another certificate.
func (ca *CA) MismatchedServerCert(t testing.TB, cluster, namespace string) KeyPair {
	t.Helper()
	kp := ca.ServerCert(t, cluster, namespace)
	kp.KeyPEM = ca.ServerCert(t, cluster, namespace).KeyPEM
	return kp
}

// TLSSecret is a kubernetes.io/tls Secret with tls.crt, tls.key and ca.crt.
func (ca *CA) TLSSecret(name string, kp KeyPair) *corev1.Secret {
	return &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		Type:       corev1.SecretTypeTLS,
		Data:       map[string][]byte{"tls.crt": kp.CertPEM, "tls.key": kp.KeyPEM, "ca.crt": ca.CertPEM},
	}
}

// SecretWithout is an Opaque Secret with the TLS keys except the ones named (the API server
// refuses a kubernetes.io/tls Secret without tls.crt or tls.key, a user's Opaque one it takes).
func (ca *CA) SecretWithout(name string, kp KeyPair, missing ...string) *corev1.Secret {
	s := ca.TLSSecret(name, kp)
	s.Type = corev1.SecretTypeOpaque
	for _, k := range missing {
		delete(s.Data, k)
	}
	return s
}

// Pool is a CertPool holding just the CA.
func (ca *CA) Pool() *x509.CertPool {
	p := x509.NewCertPool()
	p.AddCert(ca.Cert)
	return p
}

// ClientConfig is a TLS client configuration that trusts only the CA and verifies serverName;
// with a client key pair it presents that certificate.
func (ca *CA) ClientConfig(t testing.TB, serverName string, client *KeyPair) *tls.Config {
	t.Helper()
	cfg := &tls.Config{RootCAs: ca.Pool(), ServerName: serverName, MinVersion: tls.VersionTLS12}
	if client != nil {
		pair, err := tls.X509KeyPair(client.CertPEM, client.KeyPEM)
		if err != nil {
			t.Fatalf("client key pair: %v", err)
		}
		cfg.Certificates = []tls.Certificate{pair}
	}
	return cfg
}

func newKey(t testing.TB) *ecdsa.PrivateKey {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return key
}

func keyPEM(t testing.TB, key *ecdsa.PrivateKey) []byte {
	t.Helper()
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	return pemBlock("PRIVATE KEY", der)
}

func pemBlock(typ string, der []byte) []byte {
	return pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der})
}

func serialNumber(t testing.TB) *big.Int {
	t.Helper()
	n, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 62))
	if err != nil {
		t.Fatal(err)
	}
	return n
}
