// The CRD rejects bad specs at admission with messages a user can act on, fills in the
// documented defaults, keeps configMapName immutable, and serves the scale subresource.
package operator

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

func TestInvalidSpecsAreRejected(t *testing.T) {
	e := newEnv(t)
	cases := []struct {
		name, spec, want string
	}{
		{"drain", `{drain: {minSeconds: 60, timeoutSeconds: 30}}`, "drain.timeoutSeconds must be >= drain.minSeconds"},
		{"extra-short", `{memcached: {extraArgs: ["-m", "128"]}}`, `memcached.extraArgs "-m": -m/--memory-limit is not allowed: set spec.memcached.memoryMB instead`},
		{"extra-attached", `{memcached: {extraArgs: ["-p11212"]}}`, `memcached.extraArgs "-p11212": -p/--port is not allowed`},
		{"extra-long", `{memcached: {extraArgs: ["--memory-limit=128"]}}`, `memcached.extraArgs "--memory-limit=128": -m/--memory-limit is not allowed`},
		{"item-half", `{memcached: {memoryMB: 64, maxItemSize: "64m"}}`, "memcached.maxItemSize must be at most half of memcached.memoryMB"},
		{"conns-threads", `{memcached: {threads: 8, maxConnections: 32}}`, "memcached.maxConnections must be at least 5 × memcached.threads + 10"},
		{"item-small", `{memcached: {maxItemSize: "512"}}`, "memcached.maxItemSize must be at least 1k"},
		{"item-unit", `{memcached: {maxItemSize: "1g"}}`, "spec.memcached.maxItemSize in body should match"},
		{"replicas", `{replicas: -1}`, "spec.replicas in body should be greater than or equal to 0"},
		{"anti", `{antiAffinity: sometimes}`, `supported values: "soft", "hard"`},
		{"hashing", `{clientConfig: {hashing: modula}}`, `supported values: "ketama-libmemcached", "ketama-libketama"`},
		{"cm-name", `{clientConfig: {configMapName: "Not_A_Name"}}`, "spec.clientConfig.configMapName in body should match"},
		{"port", `{port: 70000}`, "spec.port in body should be less than or equal to 65535"},
		{"transition-mode", `{transition: {mode: warm}}`, `supported values: "Cold", "Warm"`},
		{"transition-window", `{transition: {windowSeconds: 86401}}`, "spec.transition.windowSeconds in body should be less than or equal to 86400"},
		{"transition-copy", `{transition: {copy: {timeoutSeconds: 0}}}`, "spec.transition.copy.timeoutSeconds in body should be greater than or equal to 1"},
	}
	for _, c := range cases {
		out, err := e.applyYAML(fmt.Sprintf("apiVersion: memcached.operator.io/v1alpha1\nkind: MemcachedCluster\nmetadata: {name: bad-%s}\nspec: %s\n", c.name, c.spec))
		if err == nil {
			t.Errorf("%s: %s was accepted", c.name, c.spec)
			continue
		}
		if !strings.Contains(out, c.want) {
			t.Errorf("%s: rejected with\n  %s\nwant a message containing %q", c.name, out, c.want)
		} else {
			t.Logf("%s: %s", c.name, out)
		}
	}
	long := "a" + strings.Repeat("b", 52)
	out, err := e.applyYAML(fmt.Sprintf("apiVersion: memcached.operator.io/v1alpha1\nkind: MemcachedCluster\nmetadata: {name: %s}\nspec: {}\n", long))
	if err == nil || !strings.Contains(out, "metadata.name must be at most 52 characters") {
		t.Errorf("53-character name: %v\n%s", err, out)
	}
}

// The hardening issue's extraArgs, each of which turned on what the operator keeps off (UDP,
// another port or listen address, daemon mode, the shutdown command, the binary protocol), are
// refused at admission with a message naming the item and the flag; safe tuning options in
// every spelling memcached reads are accepted (server-side dry run: the real API server's CEL).
func TestExtraArgsAllowList(t *testing.T) {
	e := newEnv(t)
	manifest := func(name, args string) string {
		return fmt.Sprintf("apiVersion: memcached.operator.io/v1alpha1\nkind: MemcachedCluster\nmetadata: {name: %s}\nspec: {memcached: {extraArgs: %s}}\n", name, args)
	}
	refused := []struct{ args, want string }{
		{`["-vU11211"]`, `"-vU11211": -U/--udp-port is not allowed: the operator keeps UDP off (-U 0)`},
		{`["--udp="]`, `"--udp=": -U/--udp-port is not allowed`},
		{`["--por="]`, `"--por=": -p/--port is not allowed`},
		{`["--memory-l="]`, `"--memory-l=": -m/--memory-limit is not allowed`},
		{`["--conn="]`, `"--conn=": -c/--conn-limit is not allowed`},
		{`["--thr="]`, `"--thr=": -t/--threads is not allowed`},
		{`["--max-i="]`, `"--max-i=": -I/--max-item-size is not allowed`},
		{`["--lis="]`, `"--lis=": --lis is ambiguous (--listen, --listen-backlog)`},
		{`["--d"]`, `"--d": --d is ambiguous (--disable-evictions, --daemon, --disable-cas, ...)`},
		{`["-vl"]`, `"-vl": -l/--listen is not allowed`},
		{`["-vp"]`, `"-vp": -p/--port is not allowed`},
		{`["-vm"]`, `"-vm": -m/--memory-limit is not allowed`},
		{`["-vd"]`, `"-vd": -d/--daemon is not allowed`},
		{`["-A"]`, `"-A": -A/--enable-shutdown is not allowed: it enables the unauthenticated shutdown command`},
		{`["-B", "binary"]`, `"-B": -B/--protocol binary is not allowed: use ascii or auto`},
		{`["--proto", "binary"]`, `"--proto": -B/--protocol binary is not allowed`},
		{`["-v", "-o", "modern,ssl_chain_cert=/tls/c.pem"]`, `"-o": extended option "ssl_chain_cert" is not allowed`},
		{`["-X"]`, `"-X": -X/--disable-dumping is not allowed: the operator's stale-copy sweep needs the LRU crawler's metadump`},
		{`["-s", "/tmp/mc.sock"]`, `"-s": -s/--unix-socket is not allowed`},
		{`["modern"]`, `"modern": not an option (memcached would ignore it)`},
		{`["--foo"]`, `"--foo": --foo is not a memcached option`},
		{`["-f"]`, `"-f": -f/--slab-growth-factor needs a value`},
		{`["--lock-memory=1"]`, `"--lock-memory=1": -k/--lock-memory takes no value`},
		{`["-v\n-U0"]`, `memcached.extraArgs items must not contain a line break`},
	}
	for i, c := range refused {
		out, err := e.applyYAML(manifest(fmt.Sprintf("bad-args-%d", i), c.args))
		if err == nil {
			t.Errorf("extraArgs %s was accepted", c.args)
			continue
		}
		if !strings.Contains(out, c.want) {
			t.Errorf("extraArgs %s: rejected with\n  %s\nwant a message containing %q", c.args, out, c.want)
		} else {
			t.Logf("%s: %s", c.args, out)
		}
	}
	accepted := []string{
		`[]`,
		`["-v"]`, `["-vv"]`, `["--verbose=2"]`,
		`["-o", "modern"]`, `["-omodern,lru_crawler"]`, `["--extended", "slab_reassign,slab_automove=2"]`,
		`["--enable-largepages"]`, `["-kMC", "-f", "1.1"]`, `["--slab-g=1.2", "-n48"]`,
		`["-B", "ascii"]`, `["--proto=auto"]`, `["-D", ":"]`, `["--listen-backlog", "2048"]`,
	}
	for i, args := range accepted {
		cmd := exec.Command("kubectl", "apply", "--dry-run=server", "-n", e.ns, "-f", "-")
		cmd.Stdin = strings.NewReader(manifest(fmt.Sprintf("good-args-%d", i), args))
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Errorf("extraArgs %s was refused: %v\n%s", args, err, out)
		}
	}
}

func TestDefaultsImmutabilityAndScale(t *testing.T) {
	e := newEnv(t)
	if out, err := e.applyYAML("apiVersion: memcached.operator.io/v1alpha1\nkind: MemcachedCluster\nmetadata: {name: defaults}\nspec: {clientConfig: {configMapName: defaults-ring}}\n"); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	spec := e.mcc("defaults").Object["spec"].(map[string]any)
	want := map[string]string{
		"replicas": "3", "image": "memcached:1.6.18", "port": "11211", "antiAffinity": "soft", "paused": "false",
		"memcached":           "map[maxConnections:1024 maxItemSize:1m memoryMB:64 threads:4]",
		"drain":               "map[connectionThreshold:0 minSeconds:60 timeoutSeconds:600]",
		"podDisruptionBudget": "map[enabled:true maxUnavailable:1]",
		"clientConfig":        "map[configMapName:defaults-ring hashing:ketama-libmemcached]",
		// No propagationSeconds: unset, the operator takes drain.minSeconds.
		"transition": "map[copy:map[itemsPerSecond:20000 maxItems:0 timeoutSeconds:600] mode:Cold windowSeconds:60]",
	}
	for k, v := range want {
		if got := fmt.Sprint(spec[k]); got != v {
			t.Errorf("default spec.%s = %s, want %s", k, got, v)
		}
	}
	// A partly given transition gets the rest of its defaults, the copy's included.
	if out, err := e.applyYAML("apiVersion: memcached.operator.io/v1alpha1\nkind: MemcachedCluster\nmetadata: {name: defaults-warm}\nspec: {replicas: 0, transition: {mode: Warm, propagationSeconds: 5}}\n"); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	const wantWarm = "map[copy:map[itemsPerSecond:20000 maxItems:0 timeoutSeconds:600] mode:Warm propagationSeconds:5 windowSeconds:60]"
	if got := fmt.Sprint(e.mcc("defaults-warm").Object["spec"].(map[string]any)["transition"]); got != wantWarm {
		t.Errorf("spec.transition = %s, want %s", got, wantWarm)
	}
	out, err := kubectl("patch", "-n", e.ns, "mcc/defaults", "--type=merge", "-p", `{"spec":{"clientConfig":{"configMapName":"other"}}}`)
	if err == nil || !strings.Contains(out, "clientConfig.configMapName is immutable") {
		t.Errorf("changing configMapName: %v\n%s", err, out)
	}
	e.kubectlOK("scale", "mcc/defaults", "--replicas=5")
	if got := fmt.Sprint(e.mcc("defaults").Object["spec"].(map[string]any)["replicas"]); got != "5" {
		t.Errorf("after kubectl scale, spec.replicas = %s", got)
	}
	if out := e.kubectlOK("get", "mcc"); !strings.Contains(out, "REPLICAS") || !strings.Contains(out, "VERSION") || !strings.Contains(out, "STATUS") {
		t.Errorf("printer columns:\n%s", out)
	}
}

// invalidSpec is a row of tests/operator/testdata/invalid_specs.json (written by
// gen_invalid_specs.py beside it): the same table the operator's unit test runs parseClusterSpec
// over, so admission and the operator refuse the same specs naming the same field.
type invalidSpec struct {
	Name          string          `json:"name"`
	Spec          json.RawMessage `json:"spec"`
	Field         string          `json:"field"`
	Admission     string          `json:"admission"`
	Operator      string          `json:"operator"`
	AdmissionOnly string          `json:"admissionOnly"`
	MetadataName  string          `json:"metadataName"`
}

// Every hostile spec of the shared table (wrong types, out-of-range numbers, bad names,
// injected memcached flags, contradictions, huge strings) is refused by the real API server with
// a message naming the exact field path, and nothing is stored.
func TestHostileSpecTableIsRejectedNamingTheField(t *testing.T) {
	raw, err := os.ReadFile(filepath.Join(repoRoot(t), "tests", "operator", "testdata", "invalid_specs.json"))
	if err != nil {
		t.Fatal(err)
	}
	var rows []invalidSpec
	if err := json.Unmarshal(raw, &rows); err != nil {
		t.Fatal(err)
	}
	if len(rows) < 30 {
		t.Fatalf("%d rows, want at least 30", len(rows))
	}
	e := newEnv(t)
	for _, r := range rows {
		name := "bad-" + r.Name
		if r.MetadataName != "" {
			name = r.MetadataName
		}
		manifest := fmt.Sprintf(`{"apiVersion": "memcached.operator.io/v1alpha1", "kind": "MemcachedCluster", "metadata": {"name": %q}, "spec": %s}`, name, r.Spec)
		out, err := e.applyYAML(manifest)
		if err == nil {
			t.Errorf("%s: %s was accepted", r.Name, r.Spec)
			continue
		}
		if !strings.Contains(out, r.Field) || !strings.Contains(out, r.Admission) {
			t.Errorf("%s: rejected with\n  %s\nwant a message naming %s and containing %q", r.Name, out, r.Field, r.Admission)
		}
		if _, err := kubectl("get", "-n", e.ns, "mcc", name); err == nil {
			t.Errorf("%s: the object was stored", r.Name)
		}
	}
}
