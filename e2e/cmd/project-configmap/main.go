// Command project-configmap mirrors one ConfigMap into a local directory with
// the kubelet's atomic layout (KEY -> ..data/KEY, ..data swapped by rename),
// so a client process outside the cluster consumes the ConfigMap exactly as a
// pod that mounts it would, including the propagation delay after a change.
//
//	project-configmap [--kubeconfig K] NAMESPACE/NAME DIR [--delay 1s] [--jitter 0s] [--once]
//
// The first projection is immediate; each later change lands --delay (plus a
// random part of --jitter) after it is observed. A deleted ConfigMap leaves
// the last content in place, as the kubelet does. Runs until killed, unless
// --once.
package main

import (
	"context"
	"flag"
	"fmt"
	"log"
	"math/rand"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"memcached-operator/e2e/internal/atomicwriter"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/tools/clientcmd"
)

func main() {
	fs := flag.NewFlagSet("project-configmap", flag.ExitOnError)
	kubeconfig := fs.String("kubeconfig", os.Getenv("KUBECONFIG"), "kubeconfig")
	delay := fs.Duration("delay", time.Second, "delay between a change and its projection")
	jitter := fs.Duration("jitter", 0, "extra uniformly random delay")
	once := fs.Bool("once", false, "project the current content once and exit")
	var pos []string
	args := os.Args[1:]
	for {
		if err := fs.Parse(args); err != nil {
			os.Exit(2)
		}
		if fs.NArg() == 0 {
			break
		}
		pos = append(pos, fs.Arg(0))
		args = fs.Args()[1:]
	}
	if len(pos) != 2 || !strings.Contains(pos[0], "/") {
		fmt.Fprintln(os.Stderr, "usage: project-configmap [--kubeconfig K] NAMESPACE/NAME DIR [--delay 1s] [--jitter 0s] [--once]")
		os.Exit(2)
	}
	ns, name, _ := strings.Cut(pos[0], "/")
	dir := pos[1]
	log.SetFlags(log.LstdFlags | log.Lmicroseconds)

	cfg, err := clientcmd.BuildConfigFromFlags("", *kubeconfig)
	if err != nil {
		log.Fatalf("project-configmap: %v", err)
	}
	client, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		log.Fatalf("project-configmap: %v", err)
	}
	ctx, cancel := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer cancel()

	if *once {
		cm, err := client.CoreV1().ConfigMaps(ns).Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			log.Fatalf("project-configmap: %v", err)
		}
		if err := project(dir, cm); err != nil {
			log.Fatalf("project-configmap: %v", err)
		}
		return
	}

	changed := make(chan *corev1.ConfigMap, 16)
	lw := cache.NewListWatchFromClient(client.CoreV1().RESTClient(), "configmaps", ns, fields.OneTermEqualSelector("metadata.name", name))
	_, informer := cache.NewInformerWithOptions(cache.InformerOptions{
		ListerWatcher: lw,
		ObjectType:    &corev1.ConfigMap{},
		Handler: cache.ResourceEventHandlerFuncs{
			AddFunc:    func(obj interface{}) { changed <- obj.(*corev1.ConfigMap) },
			UpdateFunc: func(_, obj interface{}) { changed <- obj.(*corev1.ConfigMap) },
		},
	})
	go informer.Run(ctx.Done())

	var latest *corev1.ConfigMap
	var due <-chan time.Time
	first := true
	for {
		select {
		case <-ctx.Done():
			return
		case cm := <-changed:
			latest = cm
			if first {
				first = false
				if err := project(dir, latest); err != nil {
					log.Printf("project-configmap: %v", err)
				}
				continue
			}
			if due == nil {
				d := *delay
				if *jitter > 0 {
					d += time.Duration(rand.Int63n(int64(*jitter)))
				}
				due = time.After(d)
			}
		case <-due:
			due = nil
			if err := project(dir, latest); err != nil {
				log.Printf("project-configmap: %v", err)
			}
		}
	}
}

func project(dir string, cm *corev1.ConfigMap) error {
	payload := map[string]atomicwriter.File{}
	for k, v := range cm.Data {
		payload[k] = atomicwriter.File{Data: []byte(v), Mode: 0o644}
	}
	for k, v := range cm.BinaryData {
		payload[k] = atomicwriter.File{Data: v, Mode: 0o644}
	}
	wrote, err := atomicwriter.Write(dir, payload)
	if err == nil && wrote {
		log.Printf("projected configmap=%s/%s resourceVersion=%s keys=%v dir=%s", cm.Namespace, cm.Name, cm.ResourceVersion, atomicwriter.Keys(payload), dir)
	}
	return err
}
