// The scale-down sweep of stale copies with real memcached: keys written through the published
// ring with 2 servers, a scale to 3 that moves some of them to the new pod (where the app writes
// newer values), then a scale back to 2. The moved keys return to their first owner, which
// still held the copies from before the scale-up; the operator must have deleted those before it
// published the list of 2, so a client now misses instead of reading a stale value, while the
// keys that never moved are still hits.
package operator

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
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

func TestScaleDownRemovesStaleCopiesBeforePublishing(t *testing.T) {
	bin := filepath.Join(repoRoot(t), "build", "bin", "clientconfig")
	if _, err := os.Stat(bin); err != nil {
		t.Fatalf("%s is not built (make build)", bin)
	}
	e := newEnv(t)
	op := e.startOperator()
	e.createCluster(clusterName, fmt.Sprintf("  replicas: 2\n  drain:\n    minSeconds: %d\n    timeoutSeconds: 60\n", minSeconds))
	e.waitAvailable(clusterName, 90*time.Second)
	waitServers := func(n int) (endpoints, string) {
		var ep endpoints
		var text string
		e.waitFor(60*time.Second, fmt.Sprintf("%d servers published", n), func() (bool, error) {
			got, c, ok := e.endpointsOf(cmName)
			if !ok {
				return false, fmt.Errorf("no ConfigMap")
			}
			ep, text = got, c.Data["endpoints.json"]
			return len(ep.Servers) == n, fmt.Errorf("published %v", ep.Names())
		})
		return ep, text
	}

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
