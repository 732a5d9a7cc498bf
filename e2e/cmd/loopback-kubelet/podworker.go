// One podWorker per pod bound to this node. All of a pod's state is owned by
// the worker's goroutine (run); process-exit and probe goroutines report back
// through w.events. Only pgids and summary, read by the control endpoint and
// by shutdown, are shared and guarded by w.mu.
package main

import (
	"context"
	"encoding/json"
	"fmt"
	"log"
	"os"
	"path/filepath"
	"reflect"
	"sort"
	"strings"
	"sync"
	"syscall"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/utils/ptr"
)

const noProcessCondition = corev1.PodConditionType("e2e.memcached-operator/NoProcess")

type eventKind int

const (
	evExit eventKind = iota
	evReady
	evLiveFail
	evStarted
)

type event struct {
	kind     eventKind
	name     string // container
	gen      int
	ok       bool
	exitCode int32
	signal   string
}

type podWorker struct {
	k         *kubelet
	uid       types.UID
	namespace string
	name      string
	kickCh    chan struct{}
	events    chan event
	stopped   chan struct{} // closed when run returns

	pod        *corev1.Pod // latest seen
	podIP      string
	dir        string // volumes and service-account files
	logDir     string
	startTime  metav1.Time
	ctrs       []*container // init containers first
	volumes    *volumeState
	volErr     string
	lastSent   *corev1.PodStatus
	lastSentAt time.Time

	mu      sync.Mutex
	pgids   map[string]int // guarded by mu: container name -> process group of the live process
	summary string         // guarded by mu
}

func newPodWorker(k *kubelet, pod *corev1.Pod) *podWorker {
	base := fmt.Sprintf("%s_%s_%s", pod.Namespace, pod.Name, pod.UID)
	return &podWorker{
		k: k, uid: pod.UID, namespace: pod.Namespace, name: pod.Name,
		kickCh:  make(chan struct{}, 1),
		events:  make(chan event, 64),
		stopped: make(chan struct{}),
		dir:     filepath.Join(k.cfg.stateDir, "pods", base),
		logDir:  filepath.Join(k.cfg.stateDir, "logs", "pods", base),
		pgids:   map[string]int{},
		summary: fmt.Sprintf("%s/%s starting", pod.Namespace, pod.Name),
	}
}

func (w *podWorker) kick() {
	select {
	case w.kickCh <- struct{}{}:
	default:
	}
}

func (w *podWorker) send(ev event) {
	select {
	case w.events <- ev:
	case <-w.stopped:
	}
}

// latest returns the pod from the informer cache, or nil once it is gone.
func (w *podWorker) latest() *corev1.Pod {
	p, err := w.k.pods.Pods(w.namespace).Get(w.name)
	if err != nil || p.UID != w.uid {
		return nil
	}
	return p
}

func (w *podWorker) run() {
	defer w.k.workerDone(w.uid)
	defer close(w.stopped)
	pod := w.latest()
	if pod == nil {
		return
	}
	w.pod = pod
	if pod.Status.PodIP != "" && w.k.ips.reserve(pod.Status.PodIP) {
		w.podIP = pod.Status.PodIP
	} else {
		ip, err := w.k.ips.allocate()
		if err != nil {
			log.Printf("pod=%s/%s: %v", w.namespace, w.name, err)
			return
		}
		w.podIP = ip
	}
	if pod.Status.StartTime != nil {
		w.startTime = *pod.Status.StartTime
	} else {
		w.startTime = metav1.Now()
	}
	for _, c := range pod.Spec.InitContainers {
		w.ctrs = append(w.ctrs, newContainer(w, c, true))
	}
	for _, c := range pod.Spec.Containers {
		w.ctrs = append(w.ctrs, newContainer(w, c, false))
	}
	_ = os.MkdirAll(w.dir, 0o755)
	_ = os.MkdirAll(w.logDir, 0o755)
	w.volumes = newVolumeState(w)
	log.Printf("pod=%s/%s uid=%s ip=%s admitted", w.namespace, w.name, w.uid, w.podIP)

	ticker := time.NewTicker(500 * time.Millisecond)
	defer ticker.Stop()
	for {
		pod := w.latest()
		if pod == nil || pod.DeletionTimestamp != nil {
			w.terminate(pod)
			return
		}
		w.pod = pod
		w.volErr = ""
		if err := w.volumes.sync(); err != nil {
			w.volErr = err.Error()
		}
		if w.volumes.ready {
			w.step()
		}
		w.syncStatus()
		select {
		case <-w.k.ctx.Done():
			w.killAllNow() // the kubelet is shutting down (e2e/cluster down)
			return
		case <-w.kickCh:
		case ev := <-w.events:
			w.handle(ev)
		case <-ticker.C:
		}
	}
}

// step starts whatever should run now: init containers one at a time, then
// all app containers, honouring restartPolicy and crash-loop back-off.
func (w *podWorker) step() {
	now := time.Now()
	for _, c := range w.ctrs {
		if !c.init {
			continue
		}
		sidecar := c.spec.RestartPolicy != nil && *c.spec.RestartPolicy == corev1.ContainerRestartPolicyAlways
		if c.running && sidecar {
			continue
		}
		if c.succeeded() {
			continue
		}
		if !c.running && c.due(now) {
			c.start()
		}
		if !(c.running && sidecar) {
			return // the next init container waits for this one
		}
	}
	for _, c := range w.ctrs {
		if !c.init && !c.running && c.due(now) {
			c.start()
		}
	}
}

func (w *podWorker) initDone() bool {
	for _, c := range w.ctrs {
		if !c.init {
			continue
		}
		sidecar := c.spec.RestartPolicy != nil && *c.spec.RestartPolicy == corev1.ContainerRestartPolicyAlways
		if !(c.succeeded() || (sidecar && c.running)) {
			return false
		}
	}
	return true
}

func (w *podWorker) find(name string) *container {
	for _, c := range w.ctrs {
		if c.spec.Name == name {
			return c
		}
	}
	return nil
}

func (w *podWorker) handle(ev event) {
	c := w.find(ev.name)
	if c == nil || ev.gen != c.gen {
		return
	}
	switch ev.kind {
	case evExit:
		c.exited(ev.exitCode, ev.signal)
	case evReady:
		c.probeReady = ev.ok
	case evStarted:
		c.startupDone = true
	case evLiveFail:
		log.Printf("pod=%s/%s container=%s liveness/startup probe failed, killing", w.namespace, w.name, c.spec.Name)
		c.livenessKilled = true
		go c.stop(w.graceSeconds(w.pod), nil)
	}
}

func (w *podWorker) graceSeconds(pod *corev1.Pod) int64 {
	if pod != nil && pod.DeletionGracePeriodSeconds != nil {
		return *pod.DeletionGracePeriodSeconds
	}
	if w.pod != nil && w.pod.Spec.TerminationGracePeriodSeconds != nil {
		return *w.pod.Spec.TerminationGracePeriodSeconds
	}
	return 30
}

// terminate runs preStop hooks, SIGTERM, waits the grace period, SIGKILLs,
// and then deletes the pod for good (grace 0), as the kubelet does.
func (w *podWorker) terminate(pod *corev1.Pod) {
	grace := w.graceSeconds(pod)
	log.Printf("pod=%s/%s terminating grace=%ds", w.namespace, w.name, grace)
	var wg sync.WaitGroup
	for _, c := range w.ctrs {
		if c.cancelProbes != nil {
			c.cancelProbes()
		}
		if c.running && c.proc != nil {
			wg.Add(1)
			go func() { defer wg.Done(); c.stop(grace, c.spec.Lifecycle) }()
		}
	}
	wg.Wait()
	if pod != nil {
		w.pod = pod
		for _, c := range w.ctrs {
			if c.running { // placeholders, or processes reaped above
				c.running = false
				c.term = &corev1.ContainerStateTerminated{ExitCode: 0, Reason: "Completed", StartedAt: c.startedAt, FinishedAt: metav1.Now(), ContainerID: c.containerID()}
			}
		}
		err := w.k.client.CoreV1().Pods(w.namespace).Delete(context.Background(), w.name, metav1.DeleteOptions{
			GracePeriodSeconds: ptr.To[int64](0),
			Preconditions:      &metav1.Preconditions{UID: &w.uid},
		})
		if err != nil && !apierrors.IsNotFound(err) && !apierrors.IsConflict(err) {
			log.Printf("pod=%s/%s final delete failed: %v", w.namespace, w.name, err)
		}
	}
	w.k.ips.release(w.podIP)
	_ = os.RemoveAll(w.dir)
	log.Printf("pod=%s/%s terminated", w.namespace, w.name)
}

// killAllNow is the kubelet's own shutdown: SIGTERM, 2 s, SIGKILL.
func (w *podWorker) killAllNow() {
	w.mu.Lock()
	pgids := make([]int, 0, len(w.pgids))
	for _, p := range w.pgids {
		pgids = append(pgids, p)
	}
	w.mu.Unlock()
	for _, p := range pgids {
		_ = syscall.Kill(-p, syscall.SIGCONT)
		_ = syscall.Kill(-p, syscall.SIGTERM)
	}
	deadline := time.Now().Add(2 * time.Second)
	for _, p := range pgids {
		for time.Now().Before(deadline) && syscall.Kill(-p, 0) == nil {
			time.Sleep(50 * time.Millisecond)
		}
		_ = syscall.Kill(-p, syscall.SIGKILL)
	}
}

// signal sends sig to the process group of one container (or all); it
// returns how many groups it signalled.
func (w *podWorker) signal(container string, sig syscall.Signal) int {
	w.mu.Lock()
	defer w.mu.Unlock()
	n := 0
	for name, p := range w.pgids {
		if container != "" && name != container {
			continue
		}
		if syscall.Kill(-p, sig) == nil {
			n++
		}
	}
	return n
}

func (w *podWorker) describe() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.summary
}

func (w *podWorker) setPgid(name string, pgid int) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if pgid == 0 {
		delete(w.pgids, name)
	} else {
		w.pgids[name] = pgid
	}
}

func condition(typ corev1.PodConditionType, ok bool, reason, msg string, prev []corev1.PodCondition) corev1.PodCondition {
	c := corev1.PodCondition{Type: typ, Status: corev1.ConditionFalse, Reason: reason, Message: msg, LastTransitionTime: metav1.Now()}
	if ok {
		c.Status, c.Reason, c.Message = corev1.ConditionTrue, "", ""
	}
	for _, p := range prev {
		if p.Type == typ && p.Status == c.Status {
			c.LastTransitionTime = p.LastTransitionTime
		}
	}
	return c
}

func (w *podWorker) buildStatus() corev1.PodStatus {
	prev := w.pod.Status.Conditions
	if w.lastSent != nil {
		prev = w.lastSent.Conditions
	}
	st := corev1.PodStatus{
		HostIP:    "127.0.0.1",
		HostIPs:   []corev1.HostIP{{IP: "127.0.0.1"}},
		PodIP:     w.podIP,
		PodIPs:    []corev1.PodIP{{IP: w.podIP}},
		StartTime: &w.startTime,
		QOSClass:  w.pod.Status.QOSClass,
	}
	initDone := w.initDone()
	allReady, anyRunning, allDone, anyFailed := true, false, true, false
	var noProcess []string
	for _, c := range w.ctrs {
		cs := c.status(initDone)
		if c.init {
			st.InitContainerStatuses = append(st.InitContainerStatuses, cs)
			if !c.succeeded() && !(c.running && c.isSidecar()) && c.term != nil && !c.willRestart() {
				anyFailed = true
			}
			continue
		}
		st.ContainerStatuses = append(st.ContainerStatuses, cs)
		if !cs.Ready {
			allReady = false
		}
		if c.running {
			anyRunning = true
		}
		if c.running || c.term == nil || c.willRestart() {
			allDone = false
		} else if c.term.ExitCode != 0 {
			anyFailed = true
		}
		if c.kind == kindPlaceholder && c.running {
			noProcess = append(noProcess, fmt.Sprintf("%s (image %s)", c.spec.Name, c.spec.Image))
		}
	}
	switch {
	case anyFailed && (allDone || !initDone):
		st.Phase = corev1.PodFailed
	case initDone && allDone && len(st.ContainerStatuses) > 0:
		st.Phase = corev1.PodSucceeded
	case initDone && (anyRunning || w.startedOnce()):
		st.Phase = corev1.PodRunning
	default:
		st.Phase = corev1.PodPending
	}
	containersReady := initDone && allReady && anyRunning
	ready := containersReady
	for _, g := range w.pod.Spec.ReadinessGates {
		ok := false
		for _, c := range w.pod.Status.Conditions {
			if c.Type == g.ConditionType && c.Status == corev1.ConditionTrue {
				ok = true
			}
		}
		ready = ready && ok
	}
	notReadyMsg := "containers with unready status"
	st.Conditions = []corev1.PodCondition{
		condition(corev1.PodReadyToStartContainers, w.volumes.ready, "", w.volErr, prev),
		condition(corev1.PodInitialized, initDone, "ContainersNotInitialized", "containers with incomplete status", prev),
		condition(corev1.ContainersReady, containersReady, "ContainersNotReady", notReadyMsg, prev),
		condition(corev1.PodReady, ready, "ContainersNotReady", notReadyMsg, prev),
		condition(corev1.PodScheduled, true, "", "", prev),
	}
	if len(noProcess) > 0 {
		sort.Strings(noProcess)
		st.Message = "loopback-kubelet: running without a process (image not runnable locally): " + strings.Join(noProcess, ", ")
		c := condition(noProcessCondition, true, "", "", prev)
		c.Reason, c.Message = "ImageNotRunnableLocally", st.Message
		st.Conditions = append(st.Conditions, c)
	}
	return st
}

func (w *podWorker) startedOnce() bool {
	for _, c := range w.ctrs {
		if !c.init && (c.running || c.term != nil || c.lastTerm != nil) {
			return true
		}
	}
	return false
}

// syncStatus posts the pod status when it differs from what was last sent.
// A strategic-merge patch keeps conditions owned by others (readiness gates,
// DisruptionTarget) while replacing container statuses whole.
func (w *podWorker) syncStatus() {
	st := w.buildStatus()
	w.updateSummary(st)
	if w.lastSent != nil && reflect.DeepEqual(*w.lastSent, st) {
		// Unchanged since we sent it; but if someone else rewrote what we own
		// (the node-lifecycle controller marks pods NotReady), put it back,
		// as the kubelet's status manager reconciles with the API.
		if time.Since(w.lastSentAt) < 2*time.Second || !ownedDiffers(w.pod.Status, st) {
			return
		}
	}
	raw, _ := json.Marshal(st)
	var m map[string]interface{}
	_ = json.Unmarshal(raw, &m)
	if st.Message == "" {
		m["message"] = nil
	}
	var conds []interface{}
	for _, c := range st.Conditions {
		cb, _ := json.Marshal(c)
		var cm map[string]interface{}
		_ = json.Unmarshal(cb, &cm)
		for _, f := range []string{"reason", "message"} {
			if _, ok := cm[f]; !ok {
				cm[f] = nil // a strategic merge would keep the old value
			}
		}
		conds = append(conds, cm)
	}
	if st.Message == "" {
		conds = append(conds, map[string]interface{}{"type": string(noProcessCondition), "$patch": "delete"})
	}
	m["conditions"] = conds
	patch, _ := json.Marshal(map[string]interface{}{"status": m})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_, err := w.k.client.CoreV1().Pods(w.namespace).Patch(ctx, w.name, types.StrategicMergePatchType, patch, metav1.PatchOptions{}, "status")
	if err != nil {
		if !apierrors.IsNotFound(err) {
			log.Printf("pod=%s/%s status update failed (will retry): %v", w.namespace, w.name, err)
		}
		return
	}
	w.lastSent = &st
	w.lastSentAt = time.Now()
}

func containerStateKind(s corev1.ContainerState) string {
	switch {
	case s.Running != nil:
		return "running"
	case s.Terminated != nil:
		return "terminated"
	}
	return "waiting"
}

// ownedDiffers compares the parts of a pod status the kubelet owns.
func ownedDiffers(api, want corev1.PodStatus) bool {
	if api.Phase != want.Phase || api.PodIP != want.PodIP || len(api.ContainerStatuses) != len(want.ContainerStatuses) {
		return true
	}
	for i, cs := range want.ContainerStatuses {
		a := api.ContainerStatuses[i]
		if a.Name != cs.Name || a.Ready != cs.Ready || a.RestartCount != cs.RestartCount || containerStateKind(a.State) != containerStateKind(cs.State) {
			return true
		}
	}
	for _, c := range want.Conditions {
		found := false
		for _, a := range api.Conditions {
			if a.Type == c.Type {
				found = a.Status == c.Status
			}
		}
		if !found {
			return true
		}
	}
	return false
}

func (w *podWorker) updateSummary(st corev1.PodStatus) {
	var parts []string
	for _, c := range w.ctrs {
		state := "waiting"
		switch {
		case c.running && c.kind == kindPlaceholder:
			state = "running(no-process)"
		case c.running:
			state = fmt.Sprintf("running(pid=%d)", c.pid)
		case c.term != nil:
			state = fmt.Sprintf("terminated(%d)", c.term.ExitCode)
		}
		parts = append(parts, fmt.Sprintf("%s=%s,ready=%v,restarts=%d", c.spec.Name, state, c.isReady(), c.restartCount))
	}
	w.mu.Lock()
	w.summary = fmt.Sprintf("%s/%s ip=%s phase=%s %s", w.namespace, w.name, w.podIP, st.Phase, strings.Join(parts, " "))
	w.mu.Unlock()
}
