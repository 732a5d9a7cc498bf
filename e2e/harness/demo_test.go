package harness_test

import (
	"context"
	"net"
	"os"
	"os/exec"
	"regexp"
	"strings"
	"testing"
	"time"
)

// demoFirstAPIPort is the API server port of e2e/demo's first slot (port base 20400 + 43).
const demoFirstAPIPort = "20443"

// `make demo` where the demo's first slot is busy (another demo, or any program on its API
// server port): it takes the next free slot, as e2e/run-tests does, and runs to the end on a
// cluster of its own, next to the one these tests run on.
func TestDemoTakesAFreeSlotWhenItsPortIsBusy(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:"+demoFirstAPIPort)
	if err != nil {
		t.Logf("port %s is already taken (%v); the demo must avoid it all the same", demoFirstAPIPort, err)
	} else {
		defer l.Close()
	}
	ctx, cancel := context.WithTimeout(context.Background(), 8*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "../demo")
	// The demo picks its own cluster: nothing of the test cluster's environment may leak in.
	for _, kv := range os.Environ() {
		name := kv[:strings.IndexByte(kv, '=')]
		if name == "KUBECONFIG" || strings.HasPrefix(name, "MCOP_E2E_") || strings.HasPrefix(name, "MCOP_DEMO_") {
			continue
		}
		cmd.Env = append(cmd.Env, kv)
	}
	start := time.Now()
	out, err := cmd.CombinedOutput()
	tail := string(out)
	if len(tail) > 4000 {
		tail = tail[len(tail)-4000:]
	}
	if err != nil {
		t.Fatalf("e2e/demo with port %s busy: %v\n%s", demoFirstAPIPort, err, tail)
	}
	m := regexp.MustCompile(`demo: state (\S+), API server port (\d+), pods (\S+)`).FindStringSubmatch(string(out))
	if m == nil {
		t.Fatalf("e2e/demo did not say which slot it took:\n%s", tail)
	}
	if m[2] == demoFirstAPIPort {
		t.Errorf("e2e/demo used API server port %s, which was busy", m[2])
	}
	for _, want := range []string{"published version", "the versions of demo/sessions-endpoints", "cluster down"} {
		if !strings.Contains(string(out), want) {
			t.Errorf("e2e/demo output lacks %q:\n%s", want, tail)
		}
	}
	t.Logf("demo ran on API server port %s, pods %s, state %s in %s", m[2], m[3], m[1], time.Since(start).Round(time.Second))
}
