// Command incluster-probe is a stand-in for the operator in the harness's
// own tests: the loopback kubelet runs it for the image
// "mcop-e2e-incluster-probe" exactly as it runs the operator image. It reaches
// the API server the way the operator does (KUBERNETES_SERVICE_HOST/PORT and
// the token, ca.crt and namespace in $MCOP_SERVICEACCOUNT_DIR), reports what
// its ServiceAccount may do, and answers /healthz on $POD_IP:8080 until
// SIGTERM.
package main

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
)

func main() {
	dir := os.Getenv("MCOP_SERVICEACCOUNT_DIR")
	nsBytes, err := os.ReadFile(filepath.Join(dir, "namespace"))
	if err != nil {
		fmt.Println("incluster-probe: no service account:", err)
		os.Exit(1)
	}
	ns := strings.TrimSpace(string(nsBytes))
	cfg := &rest.Config{
		Host:            "https://" + net.JoinHostPort(os.Getenv("KUBERNETES_SERVICE_HOST"), os.Getenv("KUBERNETES_SERVICE_PORT")),
		BearerTokenFile: filepath.Join(dir, "token"),
		TLSClientConfig: rest.TLSClientConfig{CAFile: filepath.Join(dir, "ca.crt")},
	}
	client, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		fmt.Println("incluster-probe:", err)
		os.Exit(1)
	}
	ctx := context.Background()
	pods, err := client.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{})
	if err != nil {
		fmt.Println("incluster-probe: listing pods:", err)
		os.Exit(1)
	}
	fmt.Printf("incluster-probe: namespace=%s pods=%d args=%q\n", ns, len(pods.Items), os.Args[1:])
	_, err = client.CoreV1().Secrets(ns).List(ctx, metav1.ListOptions{})
	fmt.Printf("incluster-probe: secrets forbidden=%v\n", apierrors.IsForbidden(err))

	mux := http.NewServeMux()
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, r *http.Request) { fmt.Fprintln(w, "ok") })
	srv := &http.Server{Addr: net.JoinHostPort(os.Getenv("POD_IP"), "8080"), Handler: mux}
	go func() {
		sig := make(chan os.Signal, 1)
		signal.Notify(sig, syscall.SIGTERM)
		<-sig
		fmt.Println("incluster-probe: SIGTERM")
		srv.Close()
	}()
	if err := srv.ListenAndServe(); err != nil && err != http.ErrServerClosed {
		fmt.Println("incluster-probe:", err)
		os.Exit(1)
	}
}
