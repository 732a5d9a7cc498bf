// The Node object and its heartbeats (status every 10s, Lease renewal).
// Thread-safe: the ready flag is guarded by mu.
package main

import (
	"bufio"
	"context"
	"log"
	"os"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/utils/ptr"
)

const heartbeatPeriod = 10 * time.Second

type nodeStatus struct {
	k  *kubelet
	mu sync.Mutex
	// guarded by mu: false while a node-notready fault is injected
	ready bool
	wake  chan struct{}
}

func newNodeStatus(k *kubelet) *nodeStatus {
	return &nodeStatus{k: k, ready: true, wake: make(chan struct{}, 1)}
}

func everything() labels.Selector { return labels.Everything() }

func (n *nodeStatus) isReady() bool {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.ready
}

func (n *nodeStatus) setReady(ready bool) {
	n.mu.Lock()
	n.ready = ready
	n.mu.Unlock()
	select {
	case n.wake <- struct{}{}:
	default:
	}
}

func memTotal() int64 {
	f, err := os.Open("/proc/meminfo")
	if err != nil {
		return 8 << 30
	}
	defer f.Close()
	s := bufio.NewScanner(f)
	for s.Scan() {
		fields := strings.Fields(s.Text())
		if len(fields) >= 2 && fields[0] == "MemTotal:" {
			kb, _ := strconv.ParseInt(fields[1], 10, 64)
			return kb * 1024
		}
	}
	return 8 << 30
}

func kernelVersion() string {
	b, _ := os.ReadFile("/proc/sys/kernel/osrelease")
	return strings.TrimSpace(string(b))
}

func (n *nodeStatus) register(ctx context.Context) error {
	cfg := n.k.cfg
	node := &corev1.Node{
		ObjectMeta: metav1.ObjectMeta{
			Name: cfg.nodeName,
			Labels: map[string]string{
				"kubernetes.io/hostname":          cfg.nodeName,
				"kubernetes.io/os":                "linux",
				"kubernetes.io/arch":              runtime.GOARCH,
				"memcached-operator.e2e/loopback": "true",
			},
		},
	}
	for {
		_, err := n.k.client.CoreV1().Nodes().Create(ctx, node, metav1.CreateOptions{})
		if err == nil || apierrors.IsAlreadyExists(err) {
			break
		}
		log.Printf("registering node failed (retrying): %v", err)
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(time.Second):
		}
	}
	return n.update(ctx)
}

func (n *nodeStatus) conditions(now metav1.Time, prev []corev1.NodeCondition) []corev1.NodeCondition {
	ready := corev1.NodeCondition{Type: corev1.NodeReady, Status: corev1.ConditionTrue, Reason: "KubeletReady",
		Message: "loopback-kubelet is posting ready status"}
	if !n.isReady() {
		ready.Status, ready.Reason, ready.Message = corev1.ConditionFalse, "KubeletNotReady", "fault injected: e2e/cluster fault node-notready"
	}
	conds := []corev1.NodeCondition{
		{Type: corev1.NodeMemoryPressure, Status: corev1.ConditionFalse, Reason: "KubeletHasSufficientMemory"},
		{Type: corev1.NodeDiskPressure, Status: corev1.ConditionFalse, Reason: "KubeletHasNoDiskPressure"},
		{Type: corev1.NodePIDPressure, Status: corev1.ConditionFalse, Reason: "KubeletHasSufficientPID"},
		ready,
	}
	for i := range conds {
		conds[i].LastHeartbeatTime = now
		conds[i].LastTransitionTime = now
		for _, p := range prev {
			if p.Type == conds[i].Type && p.Status == conds[i].Status {
				conds[i].LastTransitionTime = p.LastTransitionTime
			}
		}
	}
	return conds
}

func (n *nodeStatus) update(ctx context.Context) error {
	cfg := n.k.cfg
	node, err := n.k.client.CoreV1().Nodes().Get(ctx, cfg.nodeName, metav1.GetOptions{})
	if err != nil {
		return err
	}
	now := metav1.Now()
	capacity := corev1.ResourceList{
		corev1.ResourceCPU:              *resource.NewQuantity(int64(runtime.NumCPU()), resource.DecimalSI),
		corev1.ResourceMemory:           *resource.NewQuantity(memTotal(), resource.BinarySI),
		corev1.ResourcePods:             resource.MustParse("250"),
		corev1.ResourceEphemeralStorage: resource.MustParse("100Gi"),
	}
	node.Status.Capacity = capacity
	node.Status.Allocatable = capacity
	node.Status.Conditions = n.conditions(now, node.Status.Conditions)
	node.Status.Addresses = []corev1.NodeAddress{
		{Type: corev1.NodeInternalIP, Address: "127.0.0.1"},
		{Type: corev1.NodeHostName, Address: cfg.nodeName},
	}
	node.Status.DaemonEndpoints.KubeletEndpoint.Port = int32(cfg.kubeletAPIPort)
	node.Status.NodeInfo = corev1.NodeSystemInfo{
		KubeletVersion:          cfg.kubeletVersion,
		OperatingSystem:         "linux",
		Architecture:            runtime.GOARCH,
		ContainerRuntimeVersion: "loopback://1",
		KernelVersion:           kernelVersion(),
		OSImage:                 "loopback-kubelet (processes on 127.0.0.0/8, no containers)",
		MachineID:               "loopback",
		SystemUUID:              "loopback",
		BootID:                  "loopback",
	}
	_, err = n.k.client.CoreV1().Nodes().UpdateStatus(ctx, node, metav1.UpdateOptions{})
	return err
}

func (n *nodeStatus) renewLease(ctx context.Context) error {
	cfg := n.k.cfg
	leases := n.k.client.CoordinationV1().Leases(corev1.NamespaceNodeLease)
	now := metav1.NewMicroTime(time.Now())
	lease, err := leases.Get(ctx, cfg.nodeName, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		node, err := n.k.client.CoreV1().Nodes().Get(ctx, cfg.nodeName, metav1.GetOptions{})
		if err != nil {
			return err
		}
		_, err = leases.Create(ctx, &coordinationv1.Lease{
			ObjectMeta: metav1.ObjectMeta{Name: cfg.nodeName, OwnerReferences: []metav1.OwnerReference{{
				APIVersion: "v1", Kind: "Node", Name: node.Name, UID: node.UID}}},
			Spec: coordinationv1.LeaseSpec{HolderIdentity: ptr.To(cfg.nodeName), LeaseDurationSeconds: ptr.To[int32](40), RenewTime: &now},
		}, metav1.CreateOptions{})
		return err
	}
	if err != nil {
		return err
	}
	lease.Spec.RenewTime = &now
	_, err = leases.Update(ctx, lease, metav1.UpdateOptions{})
	return err
}

func (n *nodeStatus) heartbeat(ctx context.Context) {
	t := time.NewTicker(heartbeatPeriod)
	defer t.Stop()
	for {
		if err := n.renewLease(ctx); err != nil && ctx.Err() == nil {
			log.Printf("lease renewal failed: %v", err)
		}
		if err := n.update(ctx); err != nil && ctx.Err() == nil {
			log.Printf("node status update failed: %v", err)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		case <-n.wake:
		}
	}
}

func runtimeNumCPU() int { return runtime.NumCPU() }

func sorted(s []string) []string {
	sort.Strings(s)
	return s
}
