// Server-side validation of what the chart renders: every object, with the
// default values, with watchNamespace set and with every optional value set,
// passes the real API server's schema and admission in a dry run (strict
// field validation: an unknown or misplaced field fails).
package helm

import (
	"context"
	"os"
	"path/filepath"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/rand"
)

func TestHelmRenderPassesServerValidation(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	e.ns = "mcop-helm-validate-" + rand.String(5)
	if _, err := e.kube.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: e.ns}}, metav1.CreateOptions{}); err != nil {
		t.Fatalf("namespace: %v", err)
	}
	t.Cleanup(func() { _ = e.kube.CoreV1().Namespaces().Delete(context.Background(), e.ns, metav1.DeleteOptions{}) })
	for name, args := range map[string][]string{
		"default":        nil,
		"watchNamespace": {"--set", "watchNamespace=" + e.ns},
		"all-values":     {"-f", "e2e/helm/testdata/all-values.yaml"},
	} {
		out := e.helm(append([]string{"template", releaseName, chartDir, "--namespace", e.ns}, args...)...)
		file := filepath.Join(t.TempDir(), name+".yaml")
		if err := os.WriteFile(file, []byte(out), 0o644); err != nil {
			t.Fatal(err)
		}
		if r := e.kubectlRun("apply", "--dry-run=server", "--validate=strict", "-f", file); r.err != nil {
			t.Errorf("%s values: the API server rejects the rendered chart:\n%s", name, r)
		}
	}
}
