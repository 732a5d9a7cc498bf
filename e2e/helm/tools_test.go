// Tests of the Helm chart (helm/memcached-operator): static checks of what it
// renders (chart_test.go) and an install on the local cluster whose loopback
// kubelet runs the chart's operator pods from the locally built binary
// (install_test.go). This file finds the tools: the repo, helm, kubectl and
// the local cluster's environment. Tests run one at a time (no t.Parallel).
package helm

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"sigs.k8s.io/yaml"
)

const (
	chartDir    = "helm/memcached-operator"
	releaseName = "mcop"
)

var (
	rootOnce sync.Once
	rootDir  string
)

// repoRoot is the directory holding e2e/cluster, found from the test's cwd.
func repoRoot(t *testing.T) string {
	t.Helper()
	rootOnce.Do(func() {
		dir, err := os.Getwd()
		if err != nil {
			return
		}
		for {
			if _, err := os.Stat(filepath.Join(dir, "e2e", "cluster")); err == nil {
				rootDir = dir
				return
			}
			parent := filepath.Dir(dir)
			if parent == dir {
				return
			}
			dir = parent
		}
	})
	if rootDir == "" {
		t.Fatal("cannot find the repository root (a directory with e2e/cluster) above the working directory")
	}
	return rootDir
}

// harnessVar reads a variable that e2e/hack/versions.sh defines (HELM_DIR, K8S_DIR).
func harnessVar(t *testing.T, name string) string {
	t.Helper()
	out, err := exec.Command("bash", "-c", `. "$1/e2e/hack/versions.sh" && printf %s "${!2}"`, "_", repoRoot(t), name).Output()
	if err != nil {
		t.Fatalf("reading %s from e2e/hack/versions.sh: %v", name, err)
	}
	return string(out)
}

// helmBin is $HELM, else the harness's helm (built by e2e/cluster up), else helm on PATH.
func helmBin(t *testing.T) string {
	t.Helper()
	if h := os.Getenv("HELM"); h != "" {
		return h
	}
	if h := filepath.Join(harnessVar(t, "HELM_DIR"), "bin", "helm"); isExecutable(h) {
		return h
	}
	if h, err := exec.LookPath("helm"); err == nil {
		return h
	}
	t.Fatal("no helm: run e2e/cluster up (it builds helm into the cache) or set HELM")
	return ""
}

func kubectlBin(t *testing.T) string {
	t.Helper()
	if k := filepath.Join(harnessVar(t, "K8S_DIR"), "bin", "kubectl"); isExecutable(k) {
		return k
	}
	if k, err := exec.LookPath("kubectl"); err == nil {
		return k
	}
	t.Fatal("no kubectl: run e2e/cluster up (it builds kubectl into the cache)")
	return ""
}

func isExecutable(p string) bool {
	st, err := os.Stat(p)
	return err == nil && !st.IsDir() && st.Mode()&0o111 != 0
}

// result of one command: stdout, stderr and the error (nil on exit 0).
type result struct {
	stdout, stderr string
	err            error
}

func (r result) String() string {
	return fmt.Sprintf("err=%v\nstdout:\n%s\nstderr:\n%s", r.err, r.stdout, r.stderr)
}

// run runs a command in the repo root with env added to the test's environment.
func run(t *testing.T, env []string, timeout time.Duration, name string, args ...string) result {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Dir = repoRoot(t)
	cmd.Env = append(os.Environ(), env...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	if ctx.Err() != nil {
		err = fmt.Errorf("%s %s: timed out after %s", filepath.Base(name), strings.Join(args, " "), timeout)
	}
	return result{stdout.String(), stderr.String(), err}
}

// helm runs helm and fails the test if it fails.
func helm(t *testing.T, env []string, args ...string) string {
	t.Helper()
	r := run(t, env, 5*time.Minute, helmBin(t), args...)
	if r.err != nil {
		t.Fatalf("helm %s:\n%s", strings.Join(args, " "), r)
	}
	return r.stdout
}

// object is one rendered or fetched Kubernetes object.
type object map[string]any

func (o object) kind() string      { s, _ := o["kind"].(string); return s }
func (o object) name() string      { return str(o, "metadata", "name") }
func (o object) namespace() string { return str(o, "metadata", "namespace") }

// get walks nested maps (string keys) and lists (int keys).
func get(v any, path ...any) any {
	for _, p := range path {
		switch k := p.(type) {
		case string:
			m, ok := v.(map[string]any)
			if !ok {
				if o, ok2 := v.(object); ok2 {
					m = o
				} else {
					return nil
				}
			}
			v = m[k]
		case int:
			l, ok := v.([]any)
			if !ok || k >= len(l) {
				return nil
			}
			v = l[k]
		}
	}
	return v
}

func str(v any, path ...any) string { s, _ := get(v, path...).(string); return s }

func strList(v any) []string {
	l, _ := v.([]any)
	out := make([]string, 0, len(l))
	for _, e := range l {
		s, _ := e.(string)
		out = append(out, s)
	}
	return out
}

// parseManifests splits helm template output into objects.
func parseManifests(t *testing.T, manifests string) []object {
	t.Helper()
	var out []object
	for _, doc := range splitDocs(manifests) {
		var o object
		if err := yaml.Unmarshal([]byte(doc), &o); err != nil {
			t.Fatalf("rendered YAML does not parse: %v\n%s", err, doc)
		}
		if len(o) == 0 {
			continue
		}
		out = append(out, o)
	}
	return out
}

func splitDocs(s string) []string {
	var docs []string
	var cur strings.Builder
	sc := bufio.NewScanner(strings.NewReader(s))
	sc.Buffer(make([]byte, 1<<20), 1<<24)
	for sc.Scan() {
		line := sc.Text()
		if strings.TrimRight(line, " ") == "---" {
			docs = append(docs, cur.String())
			cur.Reset()
			continue
		}
		cur.WriteString(line)
		cur.WriteByte('\n')
	}
	return append(docs, cur.String())
}

func find(objs []object, kind, name string) object {
	for _, o := range objs {
		if o.kind() == kind && (name == "" || o.name() == name) {
			return o
		}
	}
	return nil
}

func kinds(objs []object) map[string]int {
	m := map[string]int{}
	for _, o := range objs {
		m[o.kind()]++
	}
	return m
}
