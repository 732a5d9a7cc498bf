// A leader that is paused for longer than its lease (SIGSTOP: a long GC pause, a frozen VM, a
// node that lost the network and came back) finds, when it resumes, that another replica took
// over meanwhile. It must not write anything from then on, although its workers resume in the
// middle of their work and its informers deliver everything that happened while it slept, and it
// must exit non-zero so that it restarts as a clean candidate (client-go's OnStoppedLeading).
// What it sends is recorded by an apiProxy in front of it.
package operator

import (
	"context"
	"fmt"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

func TestPausedLeaderWritesNothingAfterItResumes(t *testing.T) {
	e := newEnv(t)
	election := []string{"--leader-elect", "--leader-election-namespace=" + e.ns, "--leader-election-id=fence-test",
		"--lease-duration=4s", "--renew-deadline=3s", "--retry-period=1s"}
	px := newAPIProxy(t)
	a := e.startOperatorWith(px.kubeconfig, election...)
	identity := regexp.MustCompile(`leader elected .*identity=(\S+)`)
	var aID string
	e.waitFor(30*time.Second, "operator A leading", func() (bool, error) {
		m := identity.FindStringSubmatch(a.logText())
		if m != nil {
			aID = m[1]
		}
		return m != nil, fmt.Errorf("not leading yet")
	})
	e.createCluster("c0", "  replicas: 1\n")
	e.waitStatefulSet("c0", 60*time.Second)

	b := e.startOperator(election...)
	e.waitFor(30*time.Second, "operator B synced and waiting", func() (bool, error) {
		return strings.Contains(b.logText(), "informer synced resource=pods"), nil
	})
	time.Sleep(2 * time.Second) // A idle: nothing in flight but its Lease renewals

	// Pause A for longer than the lease; B takes over and the world moves on without A.
	if err := syscall.Kill(-a.pid(), syscall.SIGSTOP); err != nil {
		t.Fatalf("SIGSTOP: %v", err)
	}
	stoppedAt := time.Now()
	resumed := false
	defer func() {
		if !resumed {
			_ = syscall.Kill(-a.pid(), syscall.SIGCONT)
		}
	}()
	e.waitFor(30*time.Second, "the Lease held by another than A", func() (bool, error) {
		l, err := e.kube.CoordinationV1().Leases(e.ns).Get(context.Background(), "fence-test", metav1.GetOptions{})
		if err != nil {
			return false, err
		}
		h := ""
		if l.Spec.HolderIdentity != nil {
			h = *l.Spec.HolderIdentity
		}
		return h != "" && h != aID, fmt.Errorf("holder %q", h)
	})
	tookOver := time.Since(stoppedAt)
	// Work for A to find when it wakes up: new clusters, and a changed one.
	for i := 1; i <= 4; i++ {
		e.createCluster(fmt.Sprintf("c%d", i), "  replicas: 1\n")
	}
	e.kubectlOK("scale", "memcachedcluster/c0", "--replicas=2")
	for i := 1; i <= 4; i++ {
		e.waitStatefulSet(fmt.Sprintf("c%d", i), 60*time.Second)
	}

	resumedAt := time.Now()
	if err := syscall.Kill(-a.pid(), syscall.SIGCONT); err != nil {
		t.Fatalf("SIGCONT: %v", err)
	}
	resumed = true
	select {
	case <-a.done:
	case <-time.After(20 * time.Second):
		t.Fatalf("operator A still running 20 s after it resumed without the Lease")
	}
	exitedAfter := time.Since(resumedAt)
	code := a.exitCode()

	var attempts, effective []proxiedRequest
	for _, r := range px.requestsSince(resumedAt) {
		if !r.write() {
			continue
		}
		attempts = append(attempts, r)
		// A Lease update already on the wire when A stopped may arrive now; the API server
		// rejects it (409: B changed the Lease). Anything else, or any accepted write, counts.
		if !strings.Contains(r.Path, "/leases/") || (r.Code >= 200 && r.Code < 300) {
			effective = append(effective, r)
		}
	}
	refused := strings.Count(a.logText(), "write refused")
	t.Logf("figure: paused leader: B took over %.1f s after A stopped (lease 4 s); A exited %.2f s after resuming with code %d; writes A sent after resuming: %d (%d effective), writes its fence refused: %d",
		tookOver.Seconds(), exitedAfter.Seconds(), code, len(attempts), len(effective), refused)
	for _, r := range attempts {
		t.Logf("write sent by A after resuming: %s", r)
	}
	if len(effective) != 0 {
		t.Errorf("operator A wrote %d times after it resumed without the Lease", len(effective))
	}
	if code == 0 {
		t.Errorf("operator A exited with 0 after losing the Lease; want non-zero so that it restarts")
	}
	if !strings.Contains(a.logText(), "leader election lost") {
		t.Errorf("operator A did not log the loss of leadership")
	}
	if !b.running() {
		t.Errorf("operator B exited")
	}
}
