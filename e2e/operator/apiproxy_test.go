// apiProxy: a TLS-terminating reverse proxy between one operator process and the real API
// server, for faults the API server itself cannot produce. It records every request the
// operator makes (method, path, when, the API server's answer), so a test can prove that a
// process wrote nothing after some instant, and it can silence the watch streams open at a given
// moment while everything else keeps working: what a NAT or load balancer that dropped a
// long-lived connection without a FIN or RST looks like to the client.
package operator

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/pem"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"k8s.io/client-go/rest"

	"memcached-operator/e2e/framework"
)

type proxiedRequest struct {
	At          time.Time
	Method      string
	Path        string
	Query       url.Values
	ContentType string
	Body        []byte // of a write: what the operator sent (the object it rendered)
	Code        int    // 0 while no answer has been written
}

func (r proxiedRequest) watch() bool {
	return r.Query.Get("watch") == "true" || r.Query.Get("watch") == "1"
}

// write: anything but a read (GET, HEAD) is a write attempt.
func (r proxiedRequest) write() bool {
	return r.Method != http.MethodGet && r.Method != http.MethodHead
}

func (r proxiedRequest) String() string {
	return fmt.Sprintf("%s %s %s?%s -> %d", r.At.Format("15:04:05.000"), r.Method, r.Path, r.Query.Encode(), r.Code)
}

type apiProxy struct {
	t          *testing.T
	kubeconfig string // for the operator: the proxy's address, its CA, a placeholder token

	mu       sync.Mutex
	requests []*proxiedRequest // guarded by mu
	epoch    int               // bumped by silenceWatches; guarded by mu
}

func newAPIProxy(t *testing.T) *apiProxy {
	t.Helper()
	cfg := framework.Config(t)
	upstream, err := url.Parse(cfg.Host)
	if err != nil {
		t.Fatalf("API server URL %q: %v", cfg.Host, err)
	}
	transport, err := rest.TransportFor(cfg) // the admin client certificate
	if err != nil {
		t.Fatalf("transport for %s: %v", cfg.Host, err)
	}
	p := &apiProxy{t: t}
	rp := &httputil.ReverseProxy{
		Rewrite: func(r *httputil.ProxyRequest) {
			r.SetURL(upstream)
			r.Out.Host = upstream.Host
			r.Out.Header.Del("Authorization") // the operator's placeholder; upstream uses the cert
		},
		Transport:     transport,
		FlushInterval: -1, // watch events as they come
		ModifyResponse: func(resp *http.Response) error {
			rec := resp.Request.Context().Value(recKey{}).(*proxiedRequest)
			if rec.watch() {
				p.mu.Lock()
				epoch := p.epoch
				p.mu.Unlock()
				resp.Body = &silenceable{ReadCloser: resp.Body, p: p, epoch: epoch, ctx: resp.Request.Context()}
			}
			return nil
		},
	}
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		rec := &proxiedRequest{At: time.Now(), Method: r.Method, Path: r.URL.Path, Query: r.URL.Query(), ContentType: r.Header.Get("Content-Type")}
		if rec.write() && r.Body != nil {
			rec.Body, _ = io.ReadAll(r.Body)
			r.Body = io.NopCloser(bytes.NewReader(rec.Body))
		}
		p.mu.Lock()
		p.requests = append(p.requests, rec)
		p.mu.Unlock()
		rp.ServeHTTP(&codeRecorder{ResponseWriter: w, p: p, rec: rec}, r.WithContext(context.WithValue(r.Context(), recKey{}, rec)))
	}))
	srv.StartTLS()
	t.Cleanup(srv.Close)

	ca := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw})
	kubeconfig := fmt.Sprintf(`apiVersion: v1
kind: Config
clusters:
- name: proxy
  cluster:
    server: %s
    certificate-authority-data: %s
users:
- name: proxy
  user:
    token: placeholder
contexts:
- name: proxy
  context: {cluster: proxy, user: proxy}
current-context: proxy
`, srv.URL, base64.StdEncoding.EncodeToString(ca))
	p.kubeconfig = filepath.Join(t.TempDir(), "proxy.kubeconfig")
	if err := os.WriteFile(p.kubeconfig, []byte(kubeconfig), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

type recKey struct{}

// codeRecorder notes the status the API server answered with.
type codeRecorder struct {
	http.ResponseWriter
	p   *apiProxy
	rec *proxiedRequest
}

func (c *codeRecorder) WriteHeader(code int) {
	c.p.mu.Lock()
	c.rec.Code = code
	c.p.mu.Unlock()
	c.ResponseWriter.WriteHeader(code)
}

func (c *codeRecorder) Unwrap() http.ResponseWriter { return c.ResponseWriter }

// silenceable passes a watch stream through until silenceWatches() is called after it started;
// from then on nothing more reaches the client, and the stream stays open until the client
// gives up on it.
type silenceable struct {
	io.ReadCloser
	p     *apiProxy
	epoch int
	ctx   context.Context
}

func (s *silenceable) silenced() bool {
	s.p.mu.Lock()
	defer s.p.mu.Unlock()
	return s.epoch < s.p.epoch
}

func (s *silenceable) Read(b []byte) (int, error) {
	if !s.silenced() {
		n, err := s.ReadCloser.Read(b)
		if !s.silenced() {
			return n, err
		}
	}
	<-s.ctx.Done() // what arrives is dropped; the client sees silence until it hangs up
	return 0, s.ctx.Err()
}

// silenceWatches makes every watch stream open now go silent for good; later watches work.
func (p *apiProxy) silenceWatches() time.Time {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.epoch++
	return time.Now()
}

// requestsSince returns copies of the requests that arrived at or after `since`.
func (p *apiProxy) requestsSince(since time.Time) []proxiedRequest {
	p.mu.Lock()
	defer p.mu.Unlock()
	var out []proxiedRequest
	for _, r := range p.requests {
		if !r.At.Before(since) {
			out = append(out, *r)
		}
	}
	return out
}

// watchedResources is the set of resources (path's last element) with a watch since `since`.
func (p *apiProxy) watchedResources(since time.Time) map[string]bool {
	out := map[string]bool{}
	for _, r := range p.requestsSince(since) {
		if r.watch() {
			out[r.Path[strings.LastIndex(r.Path, "/")+1:]] = true
		}
	}
	return out
}
