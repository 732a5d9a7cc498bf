// Command loopback-kubelet plays the single node of the local cluster. It
// registers the Node "loopback-node", keeps it Ready with a Lease, binds every
// unscheduled pod to itself (there is no scheduler), and runs each pod's
// memcached and operator containers as real local processes, each pod on its
// own 127.x.y.z address. See e2e/README.md ("The loopback kubelet") for what
// it does and does not emulate.
//
// Threading: informer callbacks only kick per-pod workers; each worker owns
// its pod's state in one goroutine (see podworker.go).
package main

import (
	"context"
	"flag"
	"fmt"
	"log"
	"math/rand"
	"net"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	corelisters "k8s.io/client-go/listers/core/v1"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/tools/clientcmd"
)

type config struct {
	kubeconfig       string
	nodeName         string
	stateDir         string
	podCIDR          string
	controlAddr      string
	memcachedBinary  string
	operatorBinary   string
	operatorImage    string
	apiserverHost    string
	apiserverPort    string
	projectionDelay  time.Duration
	projectionJitter time.Duration
	kubeletVersion   string
	backoffBase      time.Duration
	backoffMax       time.Duration
	clusterMarker    string
	kubeletAPIPort   int
	imageBinaries    map[string]string // image repository basename -> local executable
}

type kubelet struct {
	cfg        config
	client     kubernetes.Interface
	pods       corelisters.PodLister
	configMaps corelisters.ConfigMapLister
	secrets    corelisters.SecretLister
	ips        *ipAllocator
	node       *nodeStatus
	bindQueue  chan types.NamespacedName
	ctx        context.Context

	mu      sync.Mutex
	workers map[types.UID]*podWorker // guarded by mu
}

func main() {
	var cfg config
	flag.StringVar(&cfg.kubeconfig, "kubeconfig", "", "kubeconfig of the kubelet's identity")
	flag.StringVar(&cfg.nodeName, "node-name", "loopback-node", "name of the Node to register")
	flag.StringVar(&cfg.stateDir, "state-dir", "", "directory for per-pod volumes and logs")
	flag.StringVar(&cfg.podCIDR, "pod-cidr", "127.1.0.0/16", "loopback range pod addresses are taken from")
	flag.StringVar(&cfg.controlAddr, "control-addr", "127.0.0.1:16450", "address of the fault/status HTTP endpoint")
	flag.StringVar(&cfg.memcachedBinary, "memcached-binary", "/usr/bin/memcached", "the memcached executable")
	flag.StringVar(&cfg.operatorBinary, "operator-binary", "", "the locally built operator executable")
	flag.StringVar(&cfg.operatorImage, "operator-image", "memcached-operator", "image repository basename that maps to --operator-binary")
	flag.StringVar(&cfg.apiserverHost, "apiserver-host", "127.0.0.1", "KUBERNETES_SERVICE_HOST for in-cluster processes")
	flag.StringVar(&cfg.apiserverPort, "apiserver-port", "16443", "KUBERNETES_SERVICE_PORT for in-cluster processes")
	flag.DurationVar(&cfg.projectionDelay, "projection-delay", time.Second, "delay before a ConfigMap/Secret change reaches pod volumes")
	flag.DurationVar(&cfg.projectionJitter, "projection-jitter", 0, "extra uniformly random delay (the real kubelet: up to 60-90s)")
	flag.StringVar(&cfg.kubeletVersion, "kubelet-version", "v0.0.0", "version reported in the Node's nodeInfo")
	flag.DurationVar(&cfg.backoffBase, "restart-backoff", 10*time.Second, "crash-loop back-off after the first restart (doubles)")
	flag.DurationVar(&cfg.backoffMax, "restart-backoff-max", 300*time.Second, "crash-loop back-off cap")
	cfg.imageBinaries = map[string]string{}
	flag.Func("image-binary", "NAME=PATH: run containers of images named NAME (repository basename) as PATH, like the operator (repeatable)", func(v string) error {
		name, path, ok := strings.Cut(v, "=")
		if !ok || name == "" || path == "" {
			return fmt.Errorf("want NAME=PATH, got %q", v)
		}
		cfg.imageBinaries[name] = path
		return nil
	})
	flag.IntVar(&cfg.kubeletAPIPort, "kubelet-api-port", 10250, "HTTPS port of the kubelet API (container logs for kubectl logs)")
	flag.StringVar(&cfg.clusterMarker, "cluster-marker", "", "value of MCOP_E2E_CLUSTER in every process started (lets `down` find leftovers)")
	flag.Parse()
	log.SetFlags(log.LstdFlags | log.Lmicroseconds)
	if cfg.operatorImage != "" {
		cfg.imageBinaries[cfg.operatorImage] = cfg.operatorBinary
	}
	if cfg.stateDir == "" {
		log.Fatal("--state-dir is required")
	}
	if err := run(cfg); err != nil {
		log.Fatalf("loopback-kubelet: %v", err)
	}
}

func run(cfg config) error {
	restCfg, err := clientcmd.BuildConfigFromFlags("", cfg.kubeconfig)
	if err != nil {
		return err
	}
	restCfg.QPS, restCfg.Burst = 100, 200
	restCfg.UserAgent = "loopback-kubelet"
	client, err := kubernetes.NewForConfig(restCfg)
	if err != nil {
		return err
	}
	_, cidr, err := net.ParseCIDR(cfg.podCIDR)
	if err != nil || cidr.IP.To4() == nil || cidr.IP[0] != 127 {
		return fmt.Errorf("--pod-cidr %q must be an IPv4 range inside 127.0.0.0/8", cfg.podCIDR)
	}
	for _, d := range []string{"pods", "logs/pods"} {
		if err := os.MkdirAll(filepath.Join(cfg.stateDir, d), 0o755); err != nil {
			return err
		}
	}

	ctx, cancel := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer cancel()

	factory := informers.NewSharedInformerFactory(client, 0)
	k := &kubelet{
		cfg:        cfg,
		client:     client,
		pods:       factory.Core().V1().Pods().Lister(),
		configMaps: factory.Core().V1().ConfigMaps().Lister(),
		secrets:    factory.Core().V1().Secrets().Lister(),
		ips:        newIPAllocator(cidr),
		bindQueue:  make(chan types.NamespacedName, 1024),
		workers:    map[types.UID]*podWorker{},
		ctx:        ctx,
	}
	k.node = newNodeStatus(k)

	podInformer := factory.Core().V1().Pods().Informer()
	podInformer.AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    func(obj interface{}) { k.onPod(obj) },
		UpdateFunc: func(_, obj interface{}) { k.onPod(obj) },
		DeleteFunc: func(obj interface{}) {
			if t, ok := obj.(cache.DeletedFinalStateUnknown); ok {
				obj = t.Obj
			}
			k.onPod(obj)
		},
	})
	kickAll := cache.ResourceEventHandlerFuncs{
		AddFunc:    func(interface{}) { k.kickAll() },
		UpdateFunc: func(_, _ interface{}) { k.kickAll() },
		DeleteFunc: func(interface{}) { k.kickAll() },
	}
	factory.Core().V1().ConfigMaps().Informer().AddEventHandler(kickAll)
	factory.Core().V1().Secrets().Informer().AddEventHandler(kickAll)

	if err := k.node.register(ctx); err != nil {
		return err
	}
	go k.node.heartbeat(ctx)
	go k.serveControl(ctx)
	go k.serveKubeletAPI(ctx, cfg.kubeletAPIPort)

	factory.Start(ctx.Done())
	for typ, ok := range factory.WaitForCacheSync(ctx.Done()) {
		if !ok {
			return fmt.Errorf("cache for %v did not sync", typ)
		}
	}
	log.Printf("started node=%s pod-cidr=%s control=%s", cfg.nodeName, cfg.podCIDR, cfg.controlAddr)
	// Pods that were already there (a kubelet restart) get workers too.
	if pods, err := k.pods.List(everything()); err == nil {
		for _, p := range pods {
			k.onPod(p)
		}
	}
	go k.binder(ctx)

	<-ctx.Done()
	log.Printf("shutting down: killing all pod processes")
	k.mu.Lock()
	ws := make([]*podWorker, 0, len(k.workers))
	for _, w := range k.workers {
		ws = append(ws, w)
	}
	k.mu.Unlock()
	var wg sync.WaitGroup
	for _, w := range ws {
		wg.Add(1)
		go func() { defer wg.Done(); w.killAllNow() }()
	}
	wg.Wait()
	return nil
}

func (k *kubelet) onPod(obj interface{}) {
	pod, ok := obj.(*corev1.Pod)
	if !ok {
		return
	}
	if pod.Spec.NodeName == "" {
		if pod.DeletionTimestamp == nil && (pod.Spec.SchedulerName == "" || pod.Spec.SchedulerName == corev1.DefaultSchedulerName) {
			select {
			case k.bindQueue <- types.NamespacedName{Namespace: pod.Namespace, Name: pod.Name}:
			default:
				log.Printf("bind queue full, dropping pod=%s/%s (will be retried on its next update)", pod.Namespace, pod.Name)
			}
		}
		return
	}
	if pod.Spec.NodeName != k.cfg.nodeName {
		return
	}
	k.mu.Lock()
	w := k.workers[pod.UID]
	if w == nil {
		w = newPodWorker(k, pod)
		k.workers[pod.UID] = w
		go w.run()
	}
	k.mu.Unlock()
	w.kick()
}

func (k *kubelet) kickAll() {
	k.mu.Lock()
	defer k.mu.Unlock()
	for _, w := range k.workers {
		w.kick()
	}
}

func (k *kubelet) workerDone(uid types.UID) {
	k.mu.Lock()
	delete(k.workers, uid)
	k.mu.Unlock()
}

func (k *kubelet) findWorker(namespace, name string) *podWorker {
	k.mu.Lock()
	defer k.mu.Unlock()
	for _, w := range k.workers {
		if w.namespace == namespace && w.name == name {
			return w
		}
	}
	return nil
}

// jitteredDelay is how long a ConfigMap/Secret change waits before it is
// projected into pod volumes.
func (k *kubelet) jitteredDelay() time.Duration {
	d := k.cfg.projectionDelay
	if k.cfg.projectionJitter > 0 {
		d += time.Duration(rand.Int63n(int64(k.cfg.projectionJitter)))
	}
	return d
}
