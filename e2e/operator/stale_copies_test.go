// The scale-down sweep of stale copies with real memcached: keys written through the published
// ring with 2 servers, a scale to 3 that moves some of them to the new pod (where the app writes
// newer values), then a scale back to 2. The moved keys return to their first owner, which
// still held the copies from before the scale-up; the operator must have deleted those before it
// published the list of 2, so a client now misses instead of reading a stale value, while the
// keys that never moved are still hits. And the same sweep while memcached's own LRU crawler is
// busy on a member that stays: the sweep waits for it instead of failing.
package operator

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
)

// mcSet stores key=value with the text protocol and checks the answer.
func mcSet(t *testing.T, addr, key, value string) {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, 3*time.Second)
	if err != nil {
		t.Fatalf("connecting to %s: %v", addr, err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(3 * time.Second))
	fmt.Fprintf(c, "set %s 0 0 %d\r\n%s\r\n", key, len(value), value)
	line, err := bufio.NewReader(c).ReadString('\n')
	if err != nil || line != "STORED\r\n" {
		t.Fatalf("set %s at %s: %q, %v", key, addr, line, err)
	}
}

// mcGet reads key; ok is false on a miss.
func mcGet(t *testing.T, addr, key string) (value string, ok bool) {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, 3*time.Second)
	if err != nil {
		t.Fatalf("connecting to %s: %v", addr, err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(3 * time.Second))
	fmt.Fprintf(c, "get %s\r\n", key)
	r := bufio.NewReader(c)
	line, err := r.ReadString('\n')
	if err != nil {
		t.Fatalf("get %s at %s: %v", key, addr, err)
	}
	if line == "END\r\n" {
		return "", false
	}
	var k string
	var flags, n int
	if _, err := fmt.Sscanf(line, "VALUE %s %d %d", &k, &flags, &n); err != nil {
		t.Fatalf("get %s at %s: unexpected %q", key, addr, line)
	}
	buf := make([]byte, n+2)
	if _, err := io.ReadFull(r, buf); err != nil {
		t.Fatalf("get %s at %s: %v", key, addr, err)
	}
	return string(buf[:n]), true
}

// mcCommand sends one command line and returns memcached's first answer line (without CRLF).
func mcCommand(t *testing.T, addr, line string) string {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, 3*time.Second)
	if err != nil {
		t.Fatalf("connecting to %s: %v", addr, err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(5 * time.Second))
	fmt.Fprintf(c, "%s\r\n", line)
	answer, err := bufio.NewReader(c).ReadString('\n')
	if err != nil {
		t.Fatalf("%s at %s: %v", line, addr, err)
	}
	return strings.TrimRight(answer, "\r\n")
}

// mcFill stores n one-byte items prefix0 ... prefix(n-1) at addr, pipelined.
func mcFill(t *testing.T, addr, prefix string, n int) {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, 3*time.Second)
	if err != nil {
		t.Fatalf("connecting to %s: %v", addr, err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(30 * time.Second))
	w := bufio.NewWriter(c)
	for i := 0; i < n; i++ {
		fmt.Fprintf(w, "set %s%d 0 0 1 noreply\r\nx\r\n", prefix, i)
	}
	fmt.Fprintf(w, "version\r\n")
	if err := w.Flush(); err != nil {
		t.Fatalf("filling %s: %v", addr, err)
	}
	if line, err := bufio.NewReader(c).ReadString('\n'); err != nil || !strings.HasPrefix(line, "VERSION ") {
		t.Fatalf("filling %s: %q, %v", addr, line, err)
	}
}

type owner struct{ name, addr string }

// owners routes keys by a published endpoints.json with `clientconfig route` (libclientconfig's
// ring: the clients' routing, bit for bit).
func owners(t *testing.T, bin, endpointsJSON string, keys []string) map[string]owner {
	t.Helper()
	f := filepath.Join(t.TempDir(), "endpoints.json")
	if err := os.WriteFile(f, []byte(endpointsJSON), 0o644); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(bin, append([]string{"route", f}, keys...)...).Output()
	if err != nil {
		t.Fatalf("clientconfig route: %v", err)
	}
	res := map[string]owner{}
	for _, ln := range strings.Split(strings.TrimRight(string(out), "\n"), "\n") {
		key, rest, ok := strings.Cut(ln, "\t")
		rest, _, _ = strings.Cut(rest, "\t") // next=/previous= during a transition
		name, addr, ok2 := strings.Cut(rest, " ")
		if !ok || !ok2 {
			t.Fatalf("clientconfig route: unexpected line %q", ln)
		}
		res[key] = owner{name, addr}
	}
	if len(res) != len(keys) {
		t.Fatalf("clientconfig route: %d owners for %d keys", len(res), len(keys))
	}
	return res
}

// waitServers waits until the endpoints ConfigMap lists n servers; it returns the endpoints and
// the endpoints.json text.
func (e *env) waitServers(n int, timeout time.Duration) (endpoints, string) {
	e.t.Helper()
	var ep endpoints
	var text string
	e.waitFor(timeout, fmt.Sprintf("%d servers published", n), func() (bool, error) {
		got, c, ok := e.endpointsOf(cmName)
		if !ok {
			return false, fmt.Errorf("no ConfigMap")
		}
		ep, text = got, c.Data["endpoints.json"]
		return len(ep.Servers) == n, fmt.Errorf("published %v", ep.Names())
	})
	return ep, text
}

func clientconfigBinary(t *testing.T) string {
	bin := filepath.Join(repoRoot(t), "build", "bin", "clientconfig")
	if _, err := os.Stat(bin); err != nil {
		t.Fatalf("%s is not built (make build)", bin)
	}
	return bin
}

func TestScaleDownRemovesStaleCopiesBeforePublishing(t *testing.T) {
	bin := clientconfigBinary(t)
	e := newEnv(t)
	op := e.startOperator()
	e.createCluster(clusterName, fmt.Sprintf("  replicas: 2\n  drain:\n    minSeconds: %d\n    timeoutSeconds: 60\n", minSeconds))
	e.waitAvailable(clusterName, 90*time.Second)
	waitServers := func(n int) (endpoints, string) { return e.waitServers(n, 60*time.Second) }

	// Two servers: every key written at its owner (v1).
	_, ep2 := waitServers(2)
	var keys []string
	for i := 0; i < 300; i++ {
		keys = append(keys, fmt.Sprintf("product:%d", i))
	}
	first := owners(t, bin, ep2, keys)
	for _, k := range keys {
		mcSet(t, first[k].addr, k, "v1")
	}

	// Three servers: the keys that moved to cache-2 get a newer value there (a read-through
	// miss, then a write at the new owner), as the app would.
	e.kubectlOK("scale", "mcc/"+clusterName, "--replicas=3")
	_, ep3 := waitServers(3)
	second := owners(t, bin, ep3, keys)
	var moved []string
	for _, k := range keys {
		if second[k].name != first[k].name {
			if second[k].name != "cache-2" {
				t.Fatalf("%s moved %s -> %s: consistent hashing moves keys only to the new server", k, first[k].name, second[k].name)
			}
			moved = append(moved, k)
			if _, hit := mcGet(t, second[k].addr, k); hit {
				t.Fatalf("%s: hit on the new pod before anything was written there", k)
			}
			mcSet(t, second[k].addr, k, "v2")
		}
	}
	if len(moved) == 0 {
		t.Fatalf("no key of %d moved to cache-2", len(keys))
	}
	t.Logf("%d of %d keys moved to cache-2 and were rewritten there", len(moved), len(keys))

	// Back to two: the moved keys return to their first owner, which must not serve v1 again.
	scaled := time.Now()
	e.kubectlOK("scale", "mcc/"+clusterName, "--replicas=2")
	epFinal, text := waitServers(2)
	t.Logf("figure: kubectl scale (down, with the sweep) -> ConfigMap version %d in %s", epFinal.Version, time.Since(scaled).Round(10*time.Millisecond))
	final := owners(t, bin, text, keys)
	stale, lost := 0, 0
	for _, k := range keys {
		if final[k] != first[k] {
			t.Fatalf("%s: owner %v after the scale-down, %v before the scale-up", k, final[k], first[k])
		}
		v, hit := mcGet(t, final[k].addr, k)
		if slices.Contains(moved, k) {
			if hit {
				stale++
				t.Errorf("%s at %s: hit %q after the scale-down; want a miss (the copy from before the scale-up)", k, final[k].name, v)
			}
		} else if !hit || v != "v1" {
			lost++
			t.Errorf("%s at %s: %q, %v; a key that never moved must keep its value", k, final[k].name, v, hit)
		}
	}
	t.Logf("after the scale-down: %d moved keys are misses (stale hits %d), %d unmoved keys still hits (lost %d)",
		len(moved)-stale, stale, len(keys)-len(moved)-lost, lost)

	evs := e.eventsWithReason(clusterName, "StaleCopiesRemoved")
	if len(evs) != 1 {
		t.Fatalf("%d StaleCopiesRemoved events, want 1", len(evs))
	}
	want := fmt.Sprintf("removed %d of %d items from cache-0, cache-1", len(moved), len(keys))
	if !strings.Contains(evs[0].Message, want) {
		t.Errorf("StaleCopiesRemoved: %q, want it to say %q", evs[0].Message, want)
	}
	if n := len(e.eventsWithReason(clusterName, "StaleCopySweepFailed")); n != 0 {
		t.Errorf("%d StaleCopySweepFailed events", n)
	}
	if b, err := os.ReadFile(op.log); err == nil {
		for _, ln := range strings.Split(string(b), "\n") {
			if strings.Contains(ln, "stale copy sweep done") {
				t.Logf("figure: %s", ln[strings.Index(ln, "stale copy sweep done"):])
			}
		}
	}

	// The drain goes on as before: cache-2 is deleted after minSeconds.
	e.waitFor(60*time.Second, "StatefulSet lowered to 2", func() (bool, error) {
		return e.stsReplicas(clusterName) == 2, nil
	})
}

// memcached runs one LRU crawl at a time and answers `lru_crawler metadump` with BUSY while its
// crawler walks for itself. Here it does so on cache-0, a member that stays, slowed down so the
// walk lasts, when the scale-down starts: the operator's sweep of cache-0 waits for the crawler
// (the status says so, nothing fails, the list of three stays published), cache-1 is swept
// meanwhile, and once the crawler is done the sweep finishes, the stale copies are gone and the
// list of two is published.
func TestScaleDownSweepWaitsForABusyCrawler(t *testing.T) {
	bin := clientconfigBinary(t)
	e := newEnv(t)
	op := e.startOperator()
	e.createCluster(clusterName, fmt.Sprintf("  replicas: 3\n  drain:\n    minSeconds: %d\n    timeoutSeconds: 60\n", minSeconds))
	e.waitAvailable(clusterName, 90*time.Second)
	ep3, text3 := e.waitServers(3, 60*time.Second)
	var addr0 string
	for _, s := range ep3.Servers {
		if s.Name == "cache-0" {
			addr0 = net.JoinHostPort(s.Address, strconv.Itoa(s.Port))
		}
	}
	if addr0 == "" {
		t.Fatalf("cache-0 is not published: %v", ep3.Names())
	}

	// Every key at its owner; cache-0 also holds copies of the keys it does not own (what a
	// member keeps from an earlier ring), which the sweep must delete.
	var keys []string
	for i := 0; i < 300; i++ {
		keys = append(keys, fmt.Sprintf("user:%d", i))
	}
	own := owners(t, bin, text3, keys)
	var home, elsewhere []string
	for _, k := range keys {
		mcSet(t, own[k].addr, k, "v1")
		if own[k].name == "cache-0" {
			home = append(home, k)
		} else {
			mcSet(t, addr0, k, "stale")
			elsewhere = append(elsewhere, k)
		}
	}
	if len(home) == 0 || len(elsewhere) == 0 {
		t.Fatalf("%d keys owned by cache-0, %d elsewhere", len(home), len(elsewhere))
	}

	// 20,000 items on cache-0 and its crawler asleep 1 s every 1,000 items: a crawl of about
	// 20 s, until the test puts the crawler back to memcached's default pace.
	mcFill(t, addr0, "filler:", 20000)
	if got := mcCommand(t, addr0, "lru_crawler sleep 1000000"); got != "OK" {
		t.Fatalf("lru_crawler sleep: %q", got)
	}
	freed := false
	free := func() {
		if !freed {
			freed = true
			if got := mcCommand(t, addr0, "lru_crawler sleep 100"); got != "OK" {
				t.Errorf("lru_crawler sleep 100: %q", got)
			}
		}
	}
	t.Cleanup(free)
	started := ""
	for i := 0; i < 100 && started != "OK"; i++ {
		if started = mcCommand(t, addr0, "lru_crawler crawl all"); started != "OK" {
			time.Sleep(20 * time.Millisecond) // BUSY: memcached's own autocrawl is running
		}
	}
	if started != "OK" {
		t.Fatalf("lru_crawler crawl all: %q", started)
	}
	if got := mcCommand(t, addr0, "lru_crawler metadump all"); !strings.HasPrefix(got, "BUSY") {
		t.Fatalf("lru_crawler metadump while the crawler runs: %q, want BUSY", got)
	}

	scaled := time.Now()
	e.kubectlOK("scale", "mcc/"+clusterName, "--replicas=2")
	want := "sweeping stale copies from cache-0 (1 of 2 done) before publishing the endpoints without cache-2"
	e.waitFor(15*time.Second, "Progressing: "+want, func() (bool, error) {
		c := statusOf(e.mcc(clusterName)).condition("Progressing")
		return c.Message == want, fmt.Errorf("Progressing is %q", c.Message)
	})
	t.Logf("figure: kubectl scale -> status %q in %s", want, time.Since(scaled).Round(10*time.Millisecond))
	// Still waiting a few seconds later, and nothing failed or moved.
	time.Sleep(3 * time.Second)
	if c := statusOf(e.mcc(clusterName)).condition("Progressing"); c.Message != want {
		t.Errorf("Progressing %q after 3 s more, want still %q", c.Message, want)
	}
	if evs := e.eventsWithReason(clusterName, "StaleCopySweepFailed"); len(evs) != 0 {
		t.Fatalf("StaleCopySweepFailed while memcached's crawler was busy: %q", evs[0].Message)
	}
	if ep, _, _ := e.endpointsOf(cmName); len(ep.Servers) != 3 {
		t.Fatalf("published %v before cache-0 was swept", ep.Names())
	}

	free()
	freedAt := time.Now()
	epFinal, _ := e.waitServers(2, 60*time.Second)
	t.Logf("figure: crawler freed -> ConfigMap version %d (2 servers) in %s", epFinal.Version, time.Since(freedAt).Round(10*time.Millisecond))
	if n := len(e.eventsWithReason(clusterName, "StaleCopySweepFailed")); n != 0 {
		t.Errorf("%d StaleCopySweepFailed events", n)
	}
	evs := e.eventsWithReason(clusterName, "StaleCopiesRemoved")
	if len(evs) != 1 || !strings.Contains(evs[0].Message, "from cache-0, cache-1") {
		t.Fatalf("StaleCopiesRemoved events: %v; want one, from cache-0, cache-1", evs)
	}
	t.Logf("StaleCopiesRemoved: %s", evs[0].Message)
	for _, k := range elsewhere {
		if v, hit := mcGet(t, addr0, k); hit {
			t.Errorf("%s at cache-0: %q after the sweep; the copy of a key owned by %s must be gone", k, v, own[k].name)
		}
	}
	for _, k := range home {
		if v, hit := mcGet(t, addr0, k); !hit || v != "v1" {
			t.Errorf("%s at cache-0 (its owner): %q, %v; want v1", k, v, hit)
		}
	}

	// The operator's log: cache-0's dump was refused while the crawler ran, then went through.
	b, err := os.ReadFile(op.log)
	if err != nil {
		t.Fatal(err)
	}
	re := regexp.MustCompile(`swept stale copies cluster=\S+ pod=cache-0 .*busy_waits=(\d+) took_ms=(\d+)`)
	m := re.FindSubmatch(b)
	if m == nil {
		t.Fatalf("no \"swept stale copies ... pod=cache-0\" line in the operator log")
	}
	if n, _ := strconv.Atoi(string(m[1])); n < 1 {
		t.Errorf("cache-0 swept with busy_waits=%d; want the dump refused at least once", n)
	}
	t.Logf("figure: %s", m[0])
}

// A sweep that takes long (memcached's crawler slowed to a second every 1,000 items, on a member
// holding 20,000) when the operator is told to stop: the sweep runs off the reconcile workers and
// is cancelled between two items, so the operator exits at once instead of finishing the walk.
// The next operator finds staleCopiesSwept still false and sweeps again, in full.
func TestOperatorStopsPromptlyDuringALongSweep(t *testing.T) {
	e := newEnv(t)
	op := e.startOperator()
	e.createCluster(clusterName, fmt.Sprintf("  replicas: 3\n  drain:\n    minSeconds: %d\n    timeoutSeconds: 60\n", minSeconds))
	e.waitAvailable(clusterName, 90*time.Second)
	ep3, _ := e.waitServers(3, 60*time.Second)
	addr0 := net.JoinHostPort(ep3.Servers[0].Address, strconv.Itoa(ep3.Servers[0].Port))
	mcFill(t, addr0, "filler:", 20000)
	if got := mcCommand(t, addr0, "lru_crawler sleep 1000000"); got != "OK" {
		t.Fatalf("lru_crawler sleep: %q", got)
	}
	slow := true
	fast := func() {
		if slow {
			slow = false
			if got := mcCommand(t, addr0, "lru_crawler sleep 100"); got != "OK" {
				t.Errorf("lru_crawler sleep 100: %q", got)
			}
		}
	}
	t.Cleanup(fast)

	e.kubectlOK("scale", "mcc/"+clusterName, "--replicas=2")
	e.waitFor(30*time.Second, "the drain recorded", func() (bool, error) {
		return statusOf(e.mcc(clusterName)).Drain != nil, fmt.Errorf("no drain in status")
	})
	e.waitFor(30*time.Second, "the sweep running", func() (bool, error) {
		c := statusOf(e.mcc(clusterName)).condition("Progressing")
		return strings.Contains(c.Message, "sweeping stale copies"), fmt.Errorf("%+v", c)
	})
	time.Sleep(time.Second) // well into the walk of cache-0
	stopping := time.Now()
	op.stop() // SIGTERM; fails the test if the operator takes more than 10 s
	t.Logf("figure: SIGTERM during the sweep -> operator exited in %s", time.Since(stopping).Round(10*time.Millisecond))
	b, _ := os.ReadFile(op.log)
	if !strings.Contains(string(b), `stale copy sweep cancelled cluster=`+e.ns+`/cache pod=cache-0`) ||
		!strings.Contains(string(b), `reason="sweep cancelled: the operator is stopping`) {
		t.Errorf("the operator log does not show cache-0's sweep cancelled for the shutdown")
	}
	if ep, _, _ := e.endpointsOf(cmName); len(ep.Servers) != 3 {
		t.Fatalf("published %v although the sweep never finished", ep.Names())
	}

	fast()
	op2 := e.startOperator()
	e.waitServers(2, 60*time.Second)
	b, _ = os.ReadFile(op2.log)
	if !strings.Contains(string(b), "swept stale copies cluster="+e.ns+"/cache pod=cache-0") {
		t.Errorf("the second operator did not sweep cache-0")
	}
	if n := len(e.eventsWithReason(clusterName, "StaleCopySweepFailed")); n != 0 {
		t.Errorf("%d StaleCopySweepFailed events", n)
	}
}
