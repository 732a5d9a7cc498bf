// End-to-end test of libclientconfig's watcher against the real API server:
// a ConfigMap is mirrored by `e2e/cluster project-configmap` into a local
// directory with the kubelet's atomic layout (KEY -> ..data/KEY, ..data
// swapped by rename, after a delay), and `build/bin/clientconfig watch`
// follows it, as an application that mounts the ConfigMap would (docs/configmap-contract.md,
// "Reading the mounted ConfigMap").
package clientconfig_test

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
	"unsafe"

	"memcached-operator/e2e/framework"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
)

const (
	cmName          = "sessions-endpoints"
	projectionDelay = time.Second
	// Bound on API update -> watcher line: the 1s projection delay plus an
	// informer event and an inotify wake-up, with room for a loaded machine.
	updateBound = 15 * time.Second
	// The watcher's poll fallback, set far beyond updateBound so that only its inotify path can
	// deliver an update in time.
	pollInterval = 10 * time.Minute
)

type server = framework.EndpointServer

func members(ns string, addresses ...string) []server {
	var out []server
	for i, a := range addresses {
		name := fmt.Sprintf("sessions-%d", i)
		out = append(out, server{Name: name, Host: fmt.Sprintf("%s.sessions.%s.svc.cluster.local", name, ns),
			Address: a, Port: 11211, Weight: 1, State: "active"})
	}
	return out
}

func endpointsJSON(t *testing.T, ns string, version int, servers []server) string {
	t.Helper()
	b, err := json.MarshalIndent(framework.Endpoints{Schema: "memcached.operator.io/endpoints/v1", Cluster: ns + "/sessions",
		Version: int64(version), Hashing: "ketama-libmemcached", Servers: servers}, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	return string(b) + "\n"
}

func serversFile(servers []server) string {
	var b strings.Builder
	for _, s := range servers {
		fmt.Fprintf(&b, "%s:%d\n", s.Host, s.Port)
	}
	return b.String()
}

// lines collects a process's output line by line with the time each line was
// read, so latencies are measured at arrival, not at the next poll.
type lines struct {
	mu    sync.Mutex
	items []line
	done  chan struct{}
}

type line struct {
	at   time.Time
	text string
}

func collect(r io.Reader) *lines {
	l := &lines{done: make(chan struct{})}
	go func() {
		defer close(l.done)
		sc := bufio.NewScanner(r)
		for sc.Scan() {
			l.mu.Lock()
			l.items = append(l.items, line{time.Now(), sc.Text()})
			l.mu.Unlock()
		}
	}()
	return l
}

func (l *lines) snapshot() []line {
	l.mu.Lock()
	defer l.mu.Unlock()
	return slices.Clone(l.items)
}

func (l *lines) String() string {
	var b strings.Builder
	for _, x := range l.snapshot() {
		fmt.Fprintf(&b, "  %s %s\n", x.at.Format("15:04:05.000000"), x.text)
	}
	return b.String()
}

// waitMatch waits until a line at index >= from matches re and returns its
// index and line.
func (l *lines) waitMatch(t *testing.T, from int, re *regexp.Regexp, timeout time.Duration, what string) (int, line) {
	t.Helper()
	var idx int
	var found line
	framework.WaitFor(t, timeout, what, func() (bool, error) {
		items := l.snapshot()
		for i := from; i < len(items); i++ {
			if re.MatchString(items[i].text) {
				idx, found = i, items[i]
				return true, nil
			}
		}
		return false, fmt.Errorf("no line matching %q among %d lines after #%d", re, len(items)-from, from)
	})
	return idx, found
}

// proc is a background process in its own process group.
type proc struct {
	name   string
	cmd    *exec.Cmd
	out    *lines
	err    *lines
	exited chan struct{}
	werr   error
}

func start(t *testing.T, name string, cmd *exec.Cmd) *proc {
	t.Helper()
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatalf("starting %s: %v", name, err)
	}
	p := &proc{name: name, cmd: cmd, out: collect(stdout), err: collect(stderr), exited: make(chan struct{})}
	go func() {
		<-p.out.done
		<-p.err.done
		p.werr = cmd.Wait()
		close(p.exited)
	}()
	t.Cleanup(func() {
		p.stop(t)
		if t.Failed() {
			t.Logf("%s stdout:\n%s%s stderr:\n%s", name, p.out, name, p.err)
		}
	})
	t.Logf("started %s (pid %d): %s", name, cmd.Process.Pid, strings.Join(cmd.Args, " "))
	return p
}

// stop sends SIGTERM to the process group, then SIGKILL after 5s; it reports
// whether the process exited by itself on SIGTERM.
func (p *proc) stop(t *testing.T) (clean bool, err error) {
	select {
	case <-p.exited:
		return false, p.werr
	default:
	}
	_ = syscall.Kill(-p.cmd.Process.Pid, syscall.SIGTERM)
	select {
	case <-p.exited:
		return true, p.werr
	case <-time.After(5 * time.Second):
		t.Errorf("%s did not exit within 5s of SIGTERM; killing its process group", p.name)
		_ = syscall.Kill(-p.cmd.Process.Pid, syscall.SIGKILL)
		<-p.exited
		return false, p.werr
	}
}

func updateConfigMap(t *testing.T, c kubernetes.Interface, ns string, data map[string]string) (time.Time, string) {
	t.Helper()
	ctx := context.Background()
	cm, err := c.CoreV1().ConfigMaps(ns).Get(ctx, cmName, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	cm.Data = data
	// The time is taken as the request is sent: the projector's watch can deliver the
	// change before Update returns, so a later time would shorten every figure measured
	// from it (and could make the projection look faster than its own delay).
	sent := time.Now()
	cm, err = c.CoreV1().ConfigMaps(ns).Update(ctx, cm, metav1.UpdateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return sent, cm.ResourceVersion
}

// run runs the clientconfig CLI and returns stdout, stderr and its error.
func run(bin string, args ...string) (string, string, error) {
	cmd := exec.Command(bin, args...)
	var stdout, stderr strings.Builder
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	return stdout.String(), stderr.String(), err
}

// plainCopy copies the file dir/endpoints.json (through its symlinks) to a
// plain file in a new directory and returns that file.
func plainCopy(t *testing.T, dir string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(dir, "endpoints.json"))
	if err != nil {
		t.Fatal(err)
	}
	f := filepath.Join(t.TempDir(), "endpoints.json")
	if err := os.WriteFile(f, b, 0o644); err != nil {
		t.Fatal(err)
	}
	return f
}

type routed struct{ key, name, endpoint string }

// routeKeys runs `clientconfig route PATH KEY...` and parses "KEY\tNAME ADDR:PORT".
func routeKeys(t *testing.T, bin, path string, keys []string) []routed {
	t.Helper()
	out, stderr, err := run(bin, append([]string{"route", path}, keys...)...)
	if err != nil {
		t.Fatalf("clientconfig route %s: %v\n%s", path, err, stderr)
	}
	var res []routed
	for _, ln := range strings.Split(strings.TrimRight(out, "\n"), "\n") {
		f := strings.Split(ln, "\t")
		if len(f) < 2 {
			t.Fatalf("clientconfig route %s: unexpected line %q", path, ln)
		}
		name, ep, ok := strings.Cut(f[1], " ")
		if !ok {
			t.Fatalf("clientconfig route %s: unexpected owner %q in %q", path, f[1], ln)
		}
		res = append(res, routed{f[0], name, ep})
	}
	if len(res) != len(keys) {
		t.Fatalf("clientconfig route %s: %d lines for %d keys:\n%s", path, len(res), len(keys), out)
	}
	for i := range keys {
		if res[i].key != keys[i] {
			t.Fatalf("clientconfig route %s: line %d is for %q, want %q", path, i, res[i].key, keys[i])
		}
	}
	return res
}

func checkOwners(t *testing.T, what string, got []routed, servers []server) {
	t.Helper()
	for _, r := range got {
		if !slices.ContainsFunc(servers, func(s server) bool {
			return s.Name == r.name && r.endpoint == fmt.Sprintf("%s:%d", s.Address, s.Port)
		}) {
			t.Errorf("%s: key %s routed to %s %s, which is not a server of that version %v", what, r.key, r.name, r.endpoint, servers)
		}
	}
}

// report logs a figure and appends it to $MCOP_E2E_STATE/results/clientconfig-projection.txt.
func report(t *testing.T, format string, args ...any) {
	msg := fmt.Sprintf(format, args...)
	t.Log(msg)
	fmt.Println("clientconfig e2e: " + msg)
	if dir := os.Getenv("MCOP_E2E_STATE"); dir != "" {
		_ = os.MkdirAll(filepath.Join(dir, "results"), 0o755)
		if f, err := os.OpenFile(filepath.Join(dir, "results", "clientconfig-projection.txt"), os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644); err == nil {
			fmt.Fprintf(f, "%s %s\n", time.Now().UTC().Format(time.RFC3339), msg)
			f.Close()
		}
	}
}

// swaps records when `..data` is renamed into dir (the kubelet's atomic
// swap), observed with inotify from this process.
type swaps struct {
	mu    sync.Mutex
	times []time.Time
}

func watchSwaps(t *testing.T, dir string) *swaps {
	t.Helper()
	fd, err := syscall.InotifyInit1(syscall.IN_CLOEXEC | syscall.IN_NONBLOCK)
	if err != nil {
		t.Fatalf("inotify_init1: %v", err)
	}
	if _, err := syscall.InotifyAddWatch(fd, dir, syscall.IN_MOVED_TO); err != nil {
		syscall.Close(fd)
		t.Fatalf("inotify_add_watch %s: %v", dir, err)
	}
	f := os.NewFile(uintptr(fd), "inotify") // non-blocking: Read parks in the poller, Close ends it
	s := &swaps{}
	done := make(chan struct{})
	go func() {
		defer close(done)
		buf := make([]byte, 64*1024)
		for {
			n, err := f.Read(buf)
			if err != nil {
				return
			}
			now := time.Now()
			for off := 0; off+syscall.SizeofInotifyEvent <= n; {
				ev := (*syscall.InotifyEvent)(unsafe.Pointer(&buf[off]))
				name := strings.TrimRight(string(buf[off+syscall.SizeofInotifyEvent:off+syscall.SizeofInotifyEvent+int(ev.Len)]), "\x00")
				if name == "..data" {
					s.mu.Lock()
					s.times = append(s.times, now)
					s.mu.Unlock()
				}
				off += syscall.SizeofInotifyEvent + int(ev.Len)
			}
		}
	}()
	t.Cleanup(func() { f.Close(); <-done })
	return s
}

func (s *swaps) count() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.times)
}

// waitSwap waits for swap number i (0-based) and returns its time.
func (s *swaps) waitSwap(t *testing.T, i int, timeout time.Duration) time.Time {
	t.Helper()
	var at time.Time
	framework.WaitFor(t, timeout, fmt.Sprintf("..data swap #%d", i+1), func() (bool, error) {
		s.mu.Lock()
		defer s.mu.Unlock()
		if len(s.times) > i {
			at = s.times[i]
			return true, nil
		}
		return false, fmt.Errorf("%d swaps seen", len(s.times))
	})
	return at
}

// projectedAt is when project-configmap logged the projection of resourceVersion rv.
func projectedAt(t *testing.T, proj *proc, rv string) line {
	t.Helper()
	_, l := proj.err.waitMatch(t, 0, regexp.MustCompile(`projected configmap=\S+ resourceVersion=`+regexp.QuoteMeta(rv)+` `),
		updateBound, "project-configmap to log resourceVersion "+rv)
	return l
}

// The watcher follows a ConfigMap projected with the kubelet's atomic layout
// and delay: a new version is picked up, a broken endpoints.json is reported
// and never replaces the last good list, and the next good version is picked
// up; `clientconfig route` on the directory agrees with a plain copy.
func TestWatcherFollowsProjectedConfigMap(t *testing.T) {
	wd, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	repo := filepath.Join(wd, "..", "..")
	bin := filepath.Join(repo, "build", "bin", "clientconfig")
	if _, err := os.Stat(bin); err != nil {
		t.Fatalf("%s not built (cmake -S . -B build -G Ninja && cmake --build build): %v", bin, err)
	}

	c := framework.Client(t)
	ctx := context.Background()
	ns := framework.NewNamespace(t, c, "clientconfig")

	// 1. The ConfigMap: version 1, 2 servers.
	v1 := members(ns, "127.99.0.10", "127.99.0.11")
	if _, err := c.CoreV1().ConfigMaps(ns).Create(ctx, &corev1.ConfigMap{
		ObjectMeta: metav1.ObjectMeta{Name: cmName},
		Data:       map[string]string{"endpoints.json": endpointsJSON(t, ns, 1, v1), "servers": serversFile(v1)},
	}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}

	// 2. Mirror it with the kubelet's layout and delay.
	dir := filepath.Join(t.TempDir(), "endpoints")
	proj := start(t, "project-configmap",
		framework.ClusterCommand("project-configmap", ns+"/"+cmName, dir, "--delay", projectionDelay.String()))
	framework.WaitFor(t, 20*time.Second, "initial projection in "+dir, func() (bool, error) {
		_, err := os.Stat(filepath.Join(dir, "endpoints.json"))
		return err == nil, err
	})
	data, err := os.Readlink(filepath.Join(dir, "..data"))
	if err != nil || !strings.HasPrefix(data, "..") {
		t.Fatalf("%s/..data should be a symlink to a ..<timestamp> dir, got %q, %v", dir, data, err)
	}
	for _, k := range []string{"endpoints.json", "servers"} {
		if target, err := os.Readlink(filepath.Join(dir, k)); err != nil || target != filepath.Join("..data", k) {
			t.Fatalf("%s/%s should be a symlink to ..data/%s, got %q, %v", dir, k, k, target, err)
		}
	}
	if out, stderr, err := run(bin, "show", dir); err != nil || !strings.Contains(out, "version=1 ") {
		t.Fatalf("clientconfig show %s: %v, want version 1:\n%s%s", dir, err, out, stderr)
	}

	swapped := watchSwaps(t, dir)

	// 3. The watcher.
	watch := start(t, "clientconfig watch", exec.Command(bin, fmt.Sprintf("--poll-interval-ms=%d", pollInterval.Milliseconds()), "watch", dir))
	versionLine := regexp.MustCompile(`^version=\d+ `)
	i1, _ := watch.out.waitMatch(t, 0, regexp.MustCompile(`^version=1 servers=2 hashing=ketama-libmemcached$`),
		10*time.Second, "the watcher to print version 1")

	// 4. Version 2, 3 servers: picked up within the bound; measure it.
	v2 := members(ns, "127.99.0.10", "127.99.0.11", "127.99.0.12")
	updated, rv2 := updateConfigMap(t, c, ns, map[string]string{"endpoints.json": endpointsJSON(t, ns, 2, v2), "servers": serversFile(v2)})
	i2, l2 := watch.out.waitMatch(t, i1+1, regexp.MustCompile(`^version=2 servers=3 hashing=ketama-libmemcached$`),
		updateBound, "the watcher to print version 2")
	if between := watch.out.snapshot()[i1+1 : i2]; len(between) > 0 {
		t.Errorf("watcher printed %v between version 1 and version 2", between)
	}
	projectedAt(t, proj, rv2)
	swap2 := swapped.waitSwap(t, 0, updateBound)
	if n := swapped.count(); n != 1 {
		t.Errorf("%d ..data swaps for one update, want 1", n)
	}
	total, toSwap, swapToWatcher := l2.at.Sub(updated), swap2.Sub(updated), l2.at.Sub(swap2)
	report(t, "API update -> clientconfig watch line: %s (API update -> ..data swap: %s, ..data swap -> watcher line: %s; project-configmap --delay %s)",
		total.Round(time.Millisecond), toSwap.Round(time.Millisecond), swapToWatcher.Round(time.Microsecond), projectionDelay)
	// The watcher runs with its poll fallback at pollInterval, far beyond updateBound, so seeing
	// version 2 at all means it reacted to the swap itself (inotify), as the client contract asks.
	// How fast is a figure (reported above, and by bench_reload_latency), not an assertion.
	if swapToWatcher >= pollInterval {
		t.Errorf("watcher printed version 2 %s after the ..data swap: only the poll fallback saw it", swapToWatcher)
	}
	if total < projectionDelay {
		t.Errorf("watcher saw version 2 %s after the API update, before the %s projection delay: not following the projection?", total, projectionDelay)
	}
	good := plainCopy(t, dir)
	if out, stderr, err := run(bin, "show", good); err != nil || !strings.Contains(out, "version=2 ") {
		t.Fatalf("clientconfig show %s (copy of version 2): %v\n%s%s", good, err, out, stderr)
	}
	keys := []string{"user:100", "product:50"}
	for i := 0; i < 200; i++ {
		keys = append(keys, fmt.Sprintf("key:%d", i))
	}
	routeV2 := routeKeys(t, bin, dir, keys)
	checkOwners(t, "route on version 2", routeV2, v2)

	// 5. A broken endpoints.json: reported, never replaces version 2.
	full := endpointsJSON(t, ns, 3, v2)
	broken := full[:len(full)/2]
	errsBefore := len(watch.err.snapshot())
	outBefore := len(watch.out.snapshot())
	_, rvBroken := updateConfigMap(t, c, ns, map[string]string{"endpoints.json": broken, "servers": serversFile(v2)})
	_, errLine := watch.err.waitMatch(t, errsBefore,
		regexp.MustCompile(`^error: .*endpoints\.json.* \(keeping the last good snapshot\)$`), updateBound,
		"the watcher to report the broken endpoints.json")
	t.Logf("watcher reported: %s", errLine.text)
	projectedAt(t, proj, rvBroken)
	// `show` reads the file afresh, so it must fail now (and name the file).
	if out, stderr, err := run(bin, "show", dir); err == nil || !strings.Contains(stderr, "endpoints.json") {
		t.Errorf("clientconfig show %s on the broken file: err=%v, want a failure naming endpoints.json:\n%s%s", dir, err, out, stderr)
	}
	time.Sleep(2 * projectionDelay) // any (wrong) reload would have printed by now
	if after := watch.out.snapshot()[outBefore:]; len(after) > 0 {
		t.Errorf("watcher printed %v after the broken endpoints.json; it must keep version 2", after)
	}
	select {
	case <-watch.exited:
		t.Fatalf("watcher exited on the broken file: %v", watch.werr)
	default:
	}
	// The last good copy (what the watcher keeps serving) still routes.
	if got := routeKeys(t, bin, good, keys); !slices.Equal(got, routeV2) {
		t.Errorf("route on the saved version 2 copy differs from the route on version 2 before the break")
	}

	// A fixed version 3 is picked up. mc-2 was rescheduled: new address, same host.
	v3 := members(ns, "127.99.0.10", "127.99.0.11", "127.99.0.22")
	errsBeforeFix := len(watch.err.snapshot())
	updateConfigMap(t, c, ns, map[string]string{"endpoints.json": endpointsJSON(t, ns, 3, v3), "servers": serversFile(v3)})
	i3, _ := watch.out.waitMatch(t, i2+1, regexp.MustCompile(`^version=3 servers=3 hashing=ketama-libmemcached$`),
		updateBound, "the watcher to print version 3")
	for _, l := range watch.out.snapshot()[i2+1 : i3] {
		if versionLine.MatchString(l.text) {
			t.Errorf("watcher printed %q between version 2 and version 3", l.text)
		}
	}
	if errs := watch.err.snapshot()[errsBeforeFix:]; len(errs) > 0 {
		t.Errorf("watcher reported errors on the fixed version 3: %v", errs)
	}
	t.Logf("watcher reported %d error line(s) for the broken file", len(watch.err.snapshot())-errsBefore)

	// 6. Routing on the directory: version 3's servers, the same ring as a
	// plain copy, and the same owners as version 2 (only an address changed).
	routeV3 := routeKeys(t, bin, dir, keys)
	checkOwners(t, "route on version 3", routeV3, v3)
	if plain := routeKeys(t, bin, plainCopy(t, dir), keys); !slices.Equal(plain, routeV3) {
		for i := range plain {
			if plain[i] != routeV3[i] {
				t.Errorf("key %s: route on %s gives %s %s, on a plain copy %s %s", keys[i], dir, routeV3[i].name, routeV3[i].endpoint, plain[i].name, plain[i].endpoint)
			}
		}
	}
	moved := 0
	for i := range keys {
		if routeV3[i].name != routeV2[i].name {
			t.Errorf("key %s moved from %s to %s although only an address changed (the ring hashes host)", keys[i], routeV2[i].name, routeV3[i].name)
		}
		if routeV3[i].endpoint != routeV2[i].endpoint {
			moved++
		}
	}
	if moved == 0 {
		t.Errorf("no key of %d routes to the rescheduled address 127.99.0.22: route did not read version 3", len(keys))
	}
	t.Logf("route %s %s: %v; %d of %d keys now connect to the rescheduled sessions-2", dir, strings.Join(keys[:2], " "), routeV3[:2], moved, len(keys))

	// 7. The watcher exits cleanly on SIGTERM.
	clean, werr := watch.stop(t)
	var ee *exec.ExitError
	if !clean || (werr != nil && !errors.As(werr, &ee)) || (werr != nil && ee.ExitCode() != 0) {
		t.Errorf("clientconfig watch on SIGTERM: exited by itself %v, status %v; want a clean exit 0", clean, werr)
	}
}

// The projection loses endpoints.json, goes back a version, and is re-created at
// version 1, as the kubelet projects those changes (the key's link removed after the
// ..data swap, the old content kept while the ConfigMap is gone): `clientconfig watch`
// keeps its list without ever switching to the `servers` file, reports what it holds
// back, and follows the re-created cluster once its lower versions have stayed for the
// grace period.
func TestWatcherHoldsItsListThroughAMissingKeyAndLowerVersions(t *testing.T) {
	wd, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(wd, "..", "..", "build", "bin", "clientconfig")
	if _, err := os.Stat(bin); err != nil {
		t.Fatalf("%s not built (make build): %v", bin, err)
	}
	const grace = 10 * time.Second // --version-regression-grace-ms: short, for the test

	c := framework.Client(t)
	ctx := context.Background()
	ns := framework.NewNamespace(t, c, "clientconfig-held")
	v3 := members(ns, "127.99.0.10", "127.99.0.11")
	if _, err := c.CoreV1().ConfigMaps(ns).Create(ctx, &corev1.ConfigMap{
		ObjectMeta: metav1.ObjectMeta{Name: cmName},
		Data:       map[string]string{"endpoints.json": endpointsJSON(t, ns, 3, v3), "servers": serversFile(v3)},
	}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(t.TempDir(), "endpoints")
	proj := start(t, "project-configmap",
		framework.ClusterCommand("project-configmap", ns+"/"+cmName, dir, "--delay", projectionDelay.String()))
	framework.WaitFor(t, 20*time.Second, "initial projection in "+dir, func() (bool, error) {
		_, err := os.Stat(filepath.Join(dir, "endpoints.json"))
		return err == nil, err
	})
	watch := start(t, "clientconfig watch", exec.Command(bin, fmt.Sprintf("--poll-interval-ms=%d", pollInterval.Milliseconds()),
		fmt.Sprintf("--version-regression-grace-ms=%d", grace.Milliseconds()), "watch", dir))
	watch.out.waitMatch(t, 0, regexp.MustCompile(`^version=3 servers=2 hashing=ketama-libmemcached$`), 10*time.Second,
		"the watcher to print version 3")
	noNewVersion := func(from int, what string) {
		t.Helper()
		if after := watch.out.snapshot()[from:]; len(after) > 0 {
			t.Errorf("watcher printed %v after %s; it must keep its list", after, what)
		}
	}
	quoted := regexp.QuoteMeta(dir)

	// 1. endpoints.json leaves the ConfigMap (only `servers` stays): the projection swaps
	// ..data, then removes the key's link. The watcher keeps version 3, never version 0
	// from `servers`, and reports the missing file once it has stayed missing.
	outBefore, errBefore := len(watch.out.snapshot()), len(watch.err.snapshot())
	_, rv := updateConfigMap(t, c, ns, map[string]string{"servers": serversFile(v3)})
	projectedAt(t, proj, rv)
	if _, err := os.Lstat(filepath.Join(dir, "endpoints.json")); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("the projection still has %s/endpoints.json (%v)", dir, err)
	}
	watch.err.waitMatch(t, errBefore, regexp.MustCompile(`^error: `+quoted+`/endpoints\.json: missing \(this directory had it\); keeping version 3 `),
		updateBound, "the watcher to report endpoints.json missing")
	time.Sleep(2 * projectionDelay)
	noNewVersion(outBefore, "endpoints.json left the projection")
	if out, _, _ := run(bin, "show", dir); !strings.Contains(out, "source=servers") {
		t.Errorf("clientconfig show %s: want the one-shot read to use servers now:\n%s", dir, out)
	}

	// 2. It comes back, version 4: followed as usual.
	v4 := members(ns, "127.99.0.10", "127.99.0.11", "127.99.0.12")
	updateConfigMap(t, c, ns, map[string]string{"endpoints.json": endpointsJSON(t, ns, 4, v4), "servers": serversFile(v4)})
	i4, _ := watch.out.waitMatch(t, outBefore, regexp.MustCompile(`^version=4 servers=3 hashing=ketama-libmemcached$`),
		updateBound, "the watcher to print version 4")
	noNewVersion(i4+1, "version 4")

	// 3. A stale copy, version 2: held back and reported.
	errBefore = len(watch.err.snapshot())
	updateConfigMap(t, c, ns, map[string]string{"endpoints.json": endpointsJSON(t, ns, 2, v3), "servers": serversFile(v3)})
	_, held := watch.err.waitMatch(t, errBefore, regexp.MustCompile(`^error: `+quoted+`/endpoints\.json: version 2 is lower than the current version 4 of cluster `+regexp.QuoteMeta(ns)+`/sessions; keeping version 4 `),
		updateBound, "the watcher to hold version 2 back")

	// 4. The cluster is re-created: the ConfigMap deleted (the projection keeps its content,
	// as the kubelet does) and created again at version 1.
	if err := c.CoreV1().ConfigMaps(ns).Delete(ctx, cmName, metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	v1 := members(ns, "127.99.1.10", "127.99.1.11")
	if _, err := c.CoreV1().ConfigMaps(ns).Create(ctx, &corev1.ConfigMap{
		ObjectMeta: metav1.ObjectMeta{Name: cmName},
		Data:       map[string]string{"endpoints.json": endpointsJSON(t, ns, 1, v1), "servers": serversFile(v1)},
	}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	watch.err.waitMatch(t, errBefore, regexp.MustCompile(`^error: .*version 1 is lower than the current version 4 `),
		updateBound, "the watcher to hold version 1 back")
	noNewVersion(i4+1, "versions 2 and 1")
	// Lower versions for the whole grace period: the re-created cluster is followed, with a warning.
	iNew, applied := watch.out.waitMatch(t, i4+1, regexp.MustCompile(`^version=1 servers=2 hashing=ketama-libmemcached$`),
		grace+updateBound, "the watcher to follow the re-created cluster")
	watch.err.waitMatch(t, errBefore, regexp.MustCompile(`^warning: applying `+quoted+`/endpoints\.json: version 1 of cluster `+regexp.QuoteMeta(ns)+`/sessions although it is lower than version 4: lower versions have stayed for 10s, so the cluster was re-created$`),
		updateBound, "the warning for the re-created cluster")
	// Held since version 2 was first read (its report is printed in the same pass), so
	// never applied before the grace period is over.
	if heldFor := applied.at.Sub(held.at); heldFor < grace-500*time.Millisecond {
		t.Errorf("version 1 applied %s after the first lower version was held back, before the %s grace period", heldFor, grace)
	}
	report(t, "lower versions held %s before the re-created cluster was followed (grace %s)", applied.at.Sub(held.at).Round(time.Millisecond), grace)
	noNewVersion(iNew+1, "version 1")
	if clean, werr := watch.stop(t); !clean || werr != nil {
		t.Errorf("clientconfig watch on SIGTERM: exited by itself %v, status %v; want a clean exit 0", clean, werr)
	}
}
