// The kubelet's HTTPS API, as far as the API server needs it: container logs,
// so `kubectl logs` works for pods on this node. Clients must present a
// certificate signed by the cluster CA (the API server does).
package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"
)

func (k *kubelet) serveKubeletAPI(ctx context.Context, port int) {
	pki := filepath.Join(k.cfg.stateDir, "pki")
	cert, err := tls.LoadX509KeyPair(filepath.Join(pki, "kubelet-serving.crt"), filepath.Join(pki, "kubelet-serving.key"))
	if err != nil {
		log.Printf("kubelet API disabled (kubectl logs will not work): %v", err)
		return
	}
	caPEM, err := os.ReadFile(filepath.Join(pki, "ca.crt"))
	if err != nil {
		log.Printf("kubelet API disabled: %v", err)
		return
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(caPEM)
	mux := http.NewServeMux()
	mux.HandleFunc("/containerLogs/{namespace}/{pod}/{container}", k.containerLogs)
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, r *http.Request) { fmt.Fprintln(w, "ok") })
	srv := &http.Server{
		Addr:      net.JoinHostPort("127.0.0.1", strconv.Itoa(port)),
		Handler:   mux,
		TLSConfig: &tls.Config{Certificates: []tls.Certificate{cert}, ClientCAs: pool, ClientAuth: tls.RequireAndVerifyClientCert},
	}
	go func() { <-ctx.Done(); srv.Close() }()
	if err := srv.ListenAndServeTLS("", ""); err != nil && ctx.Err() == nil {
		log.Printf("kubelet API on port %d: %v", port, err)
	}
}

// logFile finds a container's log: of the live pod if there is one, else of
// the most recent pod by that name.
func (k *kubelet) logFile(ns, pod, container string) (string, error) {
	if p, err := k.pods.Pods(ns).Get(pod); err == nil {
		f := filepath.Join(k.cfg.stateDir, "logs", "pods", fmt.Sprintf("%s_%s_%s", ns, pod, p.UID), container+".log")
		if _, err := os.Stat(f); err == nil {
			return f, nil
		}
	}
	matches, _ := filepath.Glob(filepath.Join(k.cfg.stateDir, "logs", "pods", fmt.Sprintf("%s_%s_*", ns, pod), container+".log"))
	if len(matches) == 0 {
		return "", fmt.Errorf("no log for container %q of pod %s/%s (a container without a process has none)", container, ns, pod)
	}
	sort.Slice(matches, func(i, j int) bool {
		a, _ := os.Stat(matches[i])
		b, _ := os.Stat(matches[j])
		return a.ModTime().After(b.ModTime())
	})
	return matches[0], nil
}

const startMarker = "loopback-kubelet: start #"

func (k *kubelet) containerLogs(w http.ResponseWriter, r *http.Request) {
	f, err := k.logFile(r.PathValue("namespace"), r.PathValue("pod"), r.PathValue("container"))
	if err != nil {
		http.Error(w, err.Error(), http.StatusNotFound)
		return
	}
	data, err := os.ReadFile(f)
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	q := r.URL.Query()
	// The file holds every run; show the current one (or, with previous, the one before).
	var starts []int
	for off := 0; ; {
		i := bytes.Index(data[off:], []byte(startMarker))
		if i < 0 {
			break
		}
		lineStart := bytes.LastIndexByte(data[:off+i], '\n') + 1
		starts = append(starts, lineStart)
		off += i + len(startMarker)
	}
	from, to := 0, len(data)
	if n := len(starts); n > 0 {
		from = starts[n-1]
		if q.Get("previous") == "true" {
			if n < 2 {
				http.Error(w, "previous terminated container not found", http.StatusBadRequest)
				return
			}
			from, to = starts[n-2], starts[n-1]
		}
	}
	out := data[from:to]
	if s := q.Get("tailLines"); s != "" {
		if n, err := strconv.Atoi(s); err == nil && n >= 0 {
			lines := bytes.SplitAfter(out, []byte("\n"))
			if len(lines) > 0 && len(lines[len(lines)-1]) == 0 {
				lines = lines[:len(lines)-1]
			}
			if len(lines) > n {
				lines = lines[len(lines)-n:]
			}
			out = bytes.Join(lines, nil)
		}
	}
	w.Header().Set("Content-Type", "text/plain")
	_, _ = w.Write(out)
	if q.Get("follow") != "true" || q.Get("previous") == "true" {
		return
	}
	flusher, _ := w.(http.Flusher)
	if flusher != nil {
		flusher.Flush()
	}
	fh, err := os.Open(f)
	if err != nil {
		return
	}
	defer fh.Close()
	if _, err := fh.Seek(int64(to), io.SeekStart); err != nil {
		return
	}
	rd := bufio.NewReader(fh)
	for {
		line, err := rd.ReadString('\n')
		if len(line) > 0 {
			if _, werr := io.WriteString(w, line); werr != nil {
				return
			}
			if flusher != nil && strings.HasSuffix(line, "\n") {
				flusher.Flush()
			}
		}
		if err == nil {
			continue
		}
		select {
		case <-r.Context().Done():
			return
		case <-time.After(200 * time.Millisecond):
		}
	}
}
