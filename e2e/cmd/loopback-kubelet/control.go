// The binder (there is no scheduler) and the loopback HTTP endpoint used by
// `e2e/cluster status` and `e2e/cluster fault ...`.
package main

import (
	"context"
	"fmt"
	"log"
	"net/http"
	"sort"
	"strings"
	"syscall"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
)

func (k *kubelet) binder(ctx context.Context) {
	for {
		var key types.NamespacedName
		select {
		case <-ctx.Done():
			return
		case key = <-k.bindQueue:
		}
		for !k.node.isReady() && ctx.Err() == nil {
			time.Sleep(500 * time.Millisecond) // a NotReady node takes no new pods
		}
		pod, err := k.pods.Pods(key.Namespace).Get(key.Name)
		if err != nil || pod.Spec.NodeName != "" || pod.DeletionTimestamp != nil {
			continue
		}
		err = k.client.CoreV1().Pods(pod.Namespace).Bind(ctx, &corev1.Binding{
			ObjectMeta: metav1.ObjectMeta{Name: pod.Name, Namespace: pod.Namespace, UID: pod.UID},
			Target:     corev1.ObjectReference{Kind: "Node", Name: k.cfg.nodeName},
		}, metav1.CreateOptions{})
		switch {
		case err == nil:
			log.Printf("bound pod=%s/%s node=%s", pod.Namespace, pod.Name, k.cfg.nodeName)
		case apierrors.IsConflict(err) || apierrors.IsNotFound(err):
		default:
			log.Printf("binding pod=%s/%s failed (retrying): %v", pod.Namespace, pod.Name, err)
			go func() {
				time.Sleep(time.Second)
				select {
				case k.bindQueue <- key:
				default:
				}
			}()
		}
	}
}

func (k *kubelet) serveControl(ctx context.Context) {
	mux := http.NewServeMux()
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, r *http.Request) { fmt.Fprintln(w, "ok") })
	mux.HandleFunc("/pods", func(w http.ResponseWriter, r *http.Request) {
		k.mu.Lock()
		var lines []string
		for _, pw := range k.workers {
			lines = append(lines, pw.describe())
		}
		k.mu.Unlock()
		sort.Strings(lines)
		fmt.Fprintf(w, "node=%s ready=%v pods=%d\n", k.cfg.nodeName, k.node.isReady(), len(lines))
		for _, l := range lines {
			fmt.Fprintln(w, l)
		}
	})
	mux.HandleFunc("/fault/node", func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodPost {
			http.Error(w, "POST only", http.StatusMethodNotAllowed)
			return
		}
		ready := r.URL.Query().Get("ready") != "false"
		k.node.setReady(ready)
		log.Printf("fault: node ready=%v", ready)
		fmt.Fprintf(w, "node %s ready=%v\n", k.cfg.nodeName, ready)
	})
	mux.HandleFunc("/fault/pod", func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodPost {
			http.Error(w, "POST only", http.StatusMethodNotAllowed)
			return
		}
		q := r.URL.Query()
		sig, ok := map[string]syscall.Signal{"KILL": syscall.SIGKILL, "STOP": syscall.SIGSTOP, "CONT": syscall.SIGCONT, "TERM": syscall.SIGTERM}[strings.ToUpper(q.Get("signal"))]
		if !ok {
			http.Error(w, "signal must be KILL, STOP, CONT or TERM", http.StatusBadRequest)
			return
		}
		pw := k.findWorker(q.Get("namespace"), q.Get("name"))
		if pw == nil {
			http.Error(w, "no such pod on this node", http.StatusNotFound)
			return
		}
		n := pw.signal(q.Get("container"), sig)
		if n == 0 {
			http.Error(w, "pod has no running process", http.StatusConflict)
			return
		}
		log.Printf("fault: signal=%v pod=%s/%s processes=%d", sig, pw.namespace, pw.name, n)
		fmt.Fprintf(w, "sent %v to %d process group(s) of %s/%s\n", sig, n, pw.namespace, pw.name)
	})
	srv := &http.Server{Addr: k.cfg.controlAddr, Handler: mux}
	go func() { <-ctx.Done(); srv.Close() }()
	if err := srv.ListenAndServe(); err != nil && ctx.Err() == nil {
		log.Fatalf("control endpoint %s: %v", k.cfg.controlAddr, err)
	}
}
