// The CRD rejects bad specs at admission with messages a user can act on, fills in the
// documented defaults, keeps configMapName immutable, and serves the scale subresource.
package operator

import (
	"fmt"
	"strings"
	"testing"
)

func TestInvalidSpecsAreRejected(t *testing.T) {
	e := newEnv(t)
	cases := []struct {
		name, spec, want string
	}{
		{"drain", `{drain: {minSeconds: 60, timeoutSeconds: 30}}`, "drain.timeoutSeconds must be >= drain.minSeconds"},
		{"extra-short", `{memcached: {extraArgs: ["-m", "128"]}}`, "memcached.extraArgs must not set -p, -U, -l, -m"},
		{"extra-attached", `{memcached: {extraArgs: ["-p11212"]}}`, "memcached.extraArgs must not set"},
		{"extra-long", `{memcached: {extraArgs: ["--memory-limit=128"]}}`, "memcached.extraArgs must not set"},
		{"item-half", `{memcached: {memoryMB: 64, maxItemSize: "64m"}}`, "memcached.maxItemSize must be at most half of memcached.memoryMB"},
		{"item-small", `{memcached: {maxItemSize: "512"}}`, "memcached.maxItemSize must be at least 1k"},
		{"item-unit", `{memcached: {maxItemSize: "1g"}}`, "spec.memcached.maxItemSize in body should match"},
		{"replicas", `{replicas: -1}`, "spec.replicas in body should be greater than or equal to 0"},
		{"anti", `{antiAffinity: sometimes}`, `supported values: "soft", "hard"`},
		{"hashing", `{clientConfig: {hashing: modula}}`, `supported values: "ketama-libmemcached", "ketama-libketama"`},
		{"cm-name", `{clientConfig: {configMapName: "Not_A_Name"}}`, "spec.clientConfig.configMapName in body should match"},
		{"port", `{port: 70000}`, "spec.port in body should be less than or equal to 65535"},
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
	}
	for k, v := range want {
		if got := fmt.Sprint(spec[k]); got != v {
			t.Errorf("default spec.%s = %s, want %s", k, got, v)
		}
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
