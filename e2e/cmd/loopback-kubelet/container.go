// A container of a pod: how it maps to a local process (memcached, the
// operator, or nothing), and its lifecycle. Fields are owned by the pod
// worker's goroutine except where noted.
package main

import (
	"context"
	"fmt"
	"log"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"k8s.io/utils/ptr"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

type containerKind int

const (
	kindPlaceholder containerKind = iota
	kindMemcached
	kindOperator // the operator image, or any other --image-binary mapping
)

type container struct {
	w    *podWorker
	spec corev1.Container
	init bool
	kind containerKind
	args []string // arguments after the executable
	exe  string   // for kindOperator: the local executable

	gen            int // bumped on each start; stale events are dropped
	proc           *os.Process
	pid            int
	done           chan struct{} // closed when the current process has exited
	running        bool
	startedAt      metav1.Time
	startupDone    bool
	probeReady     bool
	livenessKilled bool
	cancelProbes   context.CancelFunc
	restartCount   int32
	term           *corev1.ContainerStateTerminated // the last run's end, while not restarting
	lastTerm       *corev1.ContainerStateTerminated
	waitReason     string
	waitMessage    string
	nextStart      time.Time
	backoff        time.Duration
}

// imageRepoBase is "memcached" for "docker.io/library/memcached:1.6@sha256:...".
func imageRepoBase(image string) string {
	if i := strings.Index(image, "@"); i >= 0 {
		image = image[:i]
	}
	if i := strings.LastIndex(image, ":"); i > strings.LastIndex(image, "/") {
		image = image[:i]
	}
	return path.Base(image)
}

func newContainer(w *podWorker, spec corev1.Container, init bool) *container {
	c := &container{w: w, spec: spec, init: init, waitReason: "ContainerCreating"}
	first := ""
	if len(spec.Command) > 0 {
		first = spec.Command[0]
	} else if len(spec.Args) > 0 {
		first = spec.Args[0]
	}
	repo := imageRepoBase(spec.Image)
	switch {
	case path.Base(first) == "memcached":
		c.kind = kindMemcached
		if len(spec.Command) > 0 {
			c.args = append(append([]string{}, spec.Command[1:]...), spec.Args...)
		} else {
			c.args = append([]string{}, spec.Args[1:]...)
		}
	case repo == "memcached" && len(spec.Command) == 0:
		// The official image's entrypoint runs memcached with the args.
		c.kind = kindMemcached
		c.args = append([]string{}, spec.Args...)
	case w.k.cfg.imageBinaries[repo] != "" || repo == w.k.cfg.operatorImage:
		c.kind = kindOperator
		c.exe = w.k.cfg.imageBinaries[repo]
		if len(spec.Command) > 0 {
			c.args = append(append([]string{}, spec.Command[1:]...), spec.Args...)
		} else {
			c.args = append([]string{}, spec.Args...)
		}
	default:
		c.kind = kindPlaceholder
	}
	return c
}

// memcachedArgs runs memcached on the pod's address, drops daemon mode, and
// drops root privileges the way the memcached image's USER would. args are
// already $(VAR)-expanded. Every pod here shares this host's network, so
// memcached may listen only on the pod IP: a listen address the pod asks for
// is kept when it is the pod IP; 127.0.0.1 (the pod's own loopback in a real
// pod, shared by every pod here), 0.0.0.0 and other addresses are dropped.
// What the pod asked for and what changed is returned as notes for the
// container log, so a test can tell a pod that listens on its own IP from one
// that would listen on every interface (no -l).
//
// readsVolumes: the arguments name files in the pod's volumes (TLS certificates, an auth
// file). Those live under this host's state directory, which only root may enter, and
// memcached reads its certificates again after it has dropped privileges (refresh_certs): so
// it keeps running as root instead of nobody, with a note in the log.
func memcachedArgs(args []string, podIP string, readsVolumes bool) (out []string, notes []string) {
	hasUser := false
	var asked []string
	listen := false
	for i := 0; i < len(args); i++ {
		a := args[i]
		switch {
		case a == "-l" || a == "--listen":
			listen = true
			if i+1 < len(args) {
				asked = append(asked, strings.Split(args[i+1], ",")...)
			}
			i++
		case strings.HasPrefix(a, "--listen="):
			listen = true
			asked = append(asked, strings.Split(strings.TrimPrefix(a, "--listen="), ",")...)
		case strings.HasPrefix(a, "-l") && !strings.HasPrefix(a, "--"):
			listen = true
			asked = append(asked, strings.Split(strings.TrimPrefix(a, "-l"), ",")...)
		case a == "-d" || a == "--daemon":
		default:
			if a == "-u" || a == "--user" || strings.HasPrefix(a, "--user=") || (strings.HasPrefix(a, "-u") && !strings.HasPrefix(a, "--")) {
				hasUser = true
			}
			out = append(out, a)
		}
	}
	if !listen {
		notes = append(notes, fmt.Sprintf("memcached has no -l: in a real pod it would listen on every interface; here it listens on the pod IP %s only", podIP))
	}
	for _, addr := range asked {
		switch {
		case addr == podIP:
		case addr == "127.0.0.1" || addr == "localhost" || addr == "::1" || addr == "[::1]":
			notes = append(notes, fmt.Sprintf("listen address %s dropped: a pod's loopback is this host's here, shared by every pod", addr))
		default:
			notes = append(notes, fmt.Sprintf("listen address %s dropped: only the pod IP %s is this pod's here", addr, podIP))
		}
	}
	out = append(out, "-l", podIP)
	if !hasUser && os.Geteuid() == 0 {
		user := "nobody"
		if readsVolumes {
			user = "root"
			notes = append(notes, "memcached runs as root, not nobody: it reads files of the pod's volumes (after start too, "+
				"refresh_certs), and they live under a state directory only root may enter here")
		}
		out = append(out, "-u", user)
	}
	return out, notes
}

// localArgs rewrites the container's volume mountPaths in args to the volumes' local
// directories (volumes are not mounted here); it reports whether any argument named one.
func (c *container) localArgs(args []string) ([]string, bool) {
	dirs := mountDirs(&c.spec, c.w.dir)
	out := make([]string, len(args))
	named := false
	for i, a := range args {
		var changed bool
		out[i], changed = rewriteMountPaths(a, dirs)
		named = named || changed
	}
	return out, named
}

func (c *container) isSidecar() bool {
	return c.init && c.spec.RestartPolicy != nil && *c.spec.RestartPolicy == corev1.ContainerRestartPolicyAlways
}

func (c *container) succeeded() bool { return c.term != nil && c.term.ExitCode == 0 && !c.running }

func (c *container) restartPolicy() corev1.RestartPolicy {
	if c.isSidecar() {
		return corev1.RestartPolicyAlways
	}
	p := c.w.pod.Spec.RestartPolicy
	if c.init && p == corev1.RestartPolicyAlways {
		return corev1.RestartPolicyOnFailure
	}
	return p
}

// willRestart: the container has ended and its restart policy brings it back.
func (c *container) willRestart() bool {
	if c.running || (c.term == nil && c.lastTerm == nil) {
		return false
	}
	if c.term == nil {
		return true // waiting out back-off
	}
	switch c.restartPolicy() {
	case corev1.RestartPolicyAlways:
		return true
	case corev1.RestartPolicyOnFailure:
		return c.term.ExitCode != 0
	}
	return false
}

// due: not running, never ended for good, and past any back-off.
func (c *container) due(now time.Time) bool {
	if c.running || (c.term != nil) {
		return false
	}
	return !now.Before(c.nextStart)
}

func (c *container) containerID() string {
	if c.kind == kindPlaceholder {
		return fmt.Sprintf("loopback://no-process/%s/%d", c.spec.Name, c.gen)
	}
	return fmt.Sprintf("loopback://%d", c.pid)
}

func (c *container) isReady() bool {
	if !c.running {
		return false
	}
	if c.isSidecar() || !c.init {
		started := c.spec.StartupProbe == nil || c.startupDone || c.kind == kindPlaceholder
		if !started {
			return false
		}
		return c.spec.ReadinessProbe == nil || c.probeReady || c.kind == kindPlaceholder
	}
	return false
}

func (c *container) status(initDone bool) corev1.ContainerStatus {
	cs := corev1.ContainerStatus{
		Name:         c.spec.Name,
		Image:        c.spec.Image,
		ImageID:      "loopback://" + c.spec.Image,
		RestartCount: c.restartCount,
		Ready:        c.isReady(),
		Started:      ptr.To(c.running && (c.spec.StartupProbe == nil || c.startupDone || c.kind == kindPlaceholder)),
	}
	if c.lastTerm != nil {
		cs.LastTerminationState.Terminated = c.lastTerm
	}
	switch {
	case c.running:
		cs.ContainerID = c.containerID()
		cs.State.Running = &corev1.ContainerStateRunning{StartedAt: c.startedAt}
	case c.term != nil:
		cs.ContainerID = c.term.ContainerID
		cs.State.Terminated = c.term
	default:
		reason, msg := c.waitReason, c.waitMessage
		if !c.init && !initDone {
			reason, msg = "PodInitializing", ""
		}
		if c.w.volErr != "" && reason == "ContainerCreating" {
			msg = c.w.volErr
		}
		cs.State.Waiting = &corev1.ContainerStateWaiting{Reason: reason, Message: msg}
	}
	return cs
}

func (c *container) executable() (string, error) {
	switch c.kind {
	case kindMemcached:
		return c.w.k.cfg.memcachedBinary, nil
	case kindOperator:
		b := c.exe
		if b == "" {
			return "", fmt.Errorf("no --operator-binary configured for image %s", c.spec.Image)
		}
		if _, err := os.Stat(b); err != nil {
			return "", fmt.Errorf("binary %s for image %s not found (build it first: make build): %v", b, c.spec.Image, err)
		}
		return b, nil
	}
	return "", nil
}

// start launches the container: a process in its own process group with
// stdout/stderr appended to its log file, or, for a placeholder, nothing.
func (c *container) start() {
	w := c.w
	if c.lastTerm != nil || c.gen > 0 {
		c.restartCount++
	}
	c.gen++
	c.startupDone, c.probeReady, c.livenessKilled = false, false, false
	env, err := w.containerEnv(&c.spec, c.kind == kindOperator)
	if err != nil {
		c.gen--
		if c.restartCount > 0 && c.lastTerm != nil {
			c.restartCount--
		}
		c.waitReason, c.waitMessage = "CreateContainerConfigError", err.Error()
		c.nextStart = time.Now().Add(2 * time.Second)
		return
	}
	c.startedAt = metav1.Now()
	if c.kind == kindPlaceholder && c.init && !c.isSidecar() {
		// An init container that cannot run here is taken as done, so the pod proceeds.
		c.term = &corev1.ContainerStateTerminated{ExitCode: 0, Reason: "Completed", StartedAt: c.startedAt, FinishedAt: c.startedAt,
			ContainerID: c.containerID(), Message: "loopback-kubelet: image " + c.spec.Image + " is not runnable locally; init container treated as completed"}
		return
	}
	if c.kind == kindPlaceholder {
		c.running = true
		c.pid = 0
		log.Printf("pod=%s/%s container=%s image=%s running without a process", w.namespace, w.name, c.spec.Name, c.spec.Image)
		return
	}
	exe, err := c.executable()
	args, readsVolumes := c.localArgs(expandAll(c.args, env))
	var notes []string
	switch {
	case c.kind == kindMemcached:
		args, notes = memcachedArgs(args, w.podIP, readsVolumes)
	case imageRepoBase(c.spec.Image) == exporterImage:
		args, notes = exporterArgs(args, w.podIP)
	}
	var logf *os.File
	if err == nil {
		logf, err = os.OpenFile(filepath.Join(w.logDir, c.spec.Name+".log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	}
	if err == nil {
		for _, n := range notes {
			fmt.Fprintf(logf, "=== %s loopback-kubelet: %s\n", time.Now().Format(time.RFC3339Nano), n)
		}
		fmt.Fprintf(logf, "=== %s loopback-kubelet: start #%d: %s %s\n", time.Now().Format(time.RFC3339Nano), c.restartCount, exe, strings.Join(args, " "))
		cmd := exec.Command(exe, args...)
		cmd.Env = envList(env)
		cmd.Dir = w.dir
		cmd.Stdout, cmd.Stderr = logf, logf
		cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
		err = cmd.Start()
		if err == nil {
			logf.Close()
			c.proc, c.pid, c.running = cmd.Process, cmd.Process.Pid, true
			done := make(chan struct{})
			c.done = done
			w.setPgid(c.spec.Name, c.pid)
			gen, name := c.gen, c.spec.Name
			go func() {
				err := cmd.Wait()
				ev := event{kind: evExit, name: name, gen: gen}
				if ee, ok := err.(*exec.ExitError); ok {
					if ws, ok := ee.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
						ev.exitCode, ev.signal = 128+int32(ws.Signal()), ws.Signal().String()
					} else {
						ev.exitCode = int32(ee.ExitCode())
					}
				} else if err != nil {
					ev.exitCode = 1
				}
				_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) // leftovers of the group
				c.logLine(fmt.Sprintf("pid=%d exited code=%d %s", cmd.Process.Pid, ev.exitCode, ev.signal))
				w.setPgid(name, 0)
				close(done)
				w.send(ev)
			}()
			log.Printf("pod=%s/%s container=%s started pid=%d: %s %s", w.namespace, w.name, c.spec.Name, c.pid, exe, strings.Join(args, " "))
			c.startProbes(env)
			return
		}
		logf.Close()
	}
	// Could not start: report it as a failed run, like a runtime StartError.
	log.Printf("pod=%s/%s container=%s failed to start: %v", w.namespace, w.name, c.spec.Name, err)
	c.running = false
	now := metav1.Now()
	c.finish(&corev1.ContainerStateTerminated{ExitCode: 128, Reason: "StartError", Message: err.Error(), StartedAt: now, FinishedAt: now})
}

// logLine appends a kubelet note to the container's log file. Safe from any
// goroutine (each call is one O_APPEND write).
func (c *container) logLine(msg string) {
	f, err := os.OpenFile(filepath.Join(c.w.logDir, c.spec.Name+".log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return
	}
	fmt.Fprintf(f, "=== %s loopback-kubelet: %s\n", time.Now().Format(time.RFC3339Nano), msg)
	f.Close()
}

func (c *container) exited(code int32, signal string) {
	w := c.w
	if c.cancelProbes != nil {
		c.cancelProbes()
	}
	c.running = false
	reason := "Completed"
	if code != 0 {
		reason = "Error"
	}
	msg := ""
	if signal != "" {
		msg = "killed by signal " + signal
	}
	log.Printf("pod=%s/%s container=%s pid=%d exited code=%d %s", w.namespace, w.name, c.spec.Name, c.pid, code, msg)
	c.finish(&corev1.ContainerStateTerminated{ExitCode: code, Reason: reason, Message: msg, StartedAt: c.startedAt,
		FinishedAt: metav1.Now(), ContainerID: c.containerID(), Signal: 0})
}

// finish records a run's end and schedules a restart if the policy asks.
func (c *container) finish(t *corev1.ContainerStateTerminated) {
	c.term = t
	if !c.willRestart() || (c.w.pod != nil && c.w.pod.DeletionTimestamp != nil) {
		return
	}
	ran := t.FinishedAt.Sub(t.StartedAt.Time)
	if ran > 2*c.w.k.cfg.backoffMax {
		c.backoff = 0
	}
	c.lastTerm, c.term = t, nil
	c.nextStart = time.Now().Add(c.backoff)
	if c.backoff > 0 {
		c.waitReason = "CrashLoopBackOff"
		c.waitMessage = fmt.Sprintf("back-off %s restarting failed container=%s pod=%s_%s", c.backoff, c.spec.Name, c.w.name, c.w.namespace)
	} else {
		c.waitReason, c.waitMessage = "ContainerCreating", ""
	}
	if c.backoff == 0 {
		c.backoff = c.w.k.cfg.backoffBase
	} else if c.backoff *= 2; c.backoff > c.w.k.cfg.backoffMax {
		c.backoff = c.w.k.cfg.backoffMax
	}
}

// stop runs the preStop exec hook (when given), sends SIGTERM to the process
// group, waits up to grace seconds in all, then SIGKILLs. Safe to call from
// any goroutine: it only reads fields fixed while the process runs.
func (c *container) stop(grace int64, lc *corev1.Lifecycle) {
	proc, done := c.proc, c.done
	if proc == nil || done == nil {
		return
	}
	deadline := time.Now().Add(time.Duration(grace) * time.Second)
	pgid := proc.Pid
	if lc != nil && lc.PreStop != nil {
		ctx, cancel := context.WithDeadline(context.Background(), deadline)
		if lc.PreStop.Exec != nil && len(lc.PreStop.Exec.Command) > 0 {
			env, _ := c.w.containerEnv(&c.spec, c.kind == kindOperator)
			argv, _ := c.localArgs(lc.PreStop.Exec.Command)
			cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
			cmd.Env, cmd.Dir = envList(env), c.w.dir
			out, err := cmd.CombinedOutput()
			log.Printf("pod=%s/%s container=%s preStop exec err=%v output=%q", c.w.namespace, c.w.name, c.spec.Name, err, strings.TrimSpace(string(out)))
		} else if lc.PreStop.Sleep != nil {
			select {
			case <-ctx.Done():
			case <-time.After(time.Duration(lc.PreStop.Sleep.Seconds) * time.Second):
			}
		} else if lc.PreStop.HTTPGet != nil {
			ok := c.httpProbe(ctx, lc.PreStop.HTTPGet)
			log.Printf("pod=%s/%s container=%s preStop httpGet ok=%v", c.w.namespace, c.w.name, c.spec.Name, ok)
		}
		cancel()
	}
	c.logLine(fmt.Sprintf("sending SIGTERM to pgid=%d, grace period %ds", pgid, grace))
	_ = syscall.Kill(-pgid, syscall.SIGCONT) // a SIGSTOPped process must see SIGTERM
	_ = syscall.Kill(-pgid, syscall.SIGTERM)
	select {
	case <-done:
		return
	case <-time.After(time.Until(deadline)):
	}
	log.Printf("pod=%s/%s container=%s grace period over, SIGKILL pgid=%d", c.w.namespace, c.w.name, c.spec.Name, pgid)
	c.logLine(fmt.Sprintf("grace period over, sending SIGKILL to pgid=%d", pgid))
	_ = syscall.Kill(-pgid, syscall.SIGKILL)
	select {
	case <-done:
	case <-time.After(10 * time.Second):
	}
}
