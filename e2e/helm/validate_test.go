// Server-side validation of what the chart renders: every object, with the
// default values, with watchNamespace set and with every optional value set,
// passes the real API server's schema and admission in a dry run (strict
// field validation: an unknown or misplaced field fails), and its pods would pass the
// Restricted Pod Security Standard (no PodSecurity warning).
package helm

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/rand"

	"memcached-operator/e2e/framework"
)

func TestHelmRenderPassesServerValidation(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	e.ns = "mcop-helm-validate-" + rand.String(5)
	// Restricted Pod Security enforced (as on every test namespace): a dry run of the
	// Deployment is not refused for it (only pods are), but the API server warns.
	if _, err := e.kube.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{
		ObjectMeta: metav1.ObjectMeta{Name: e.ns, Labels: framework.RestrictedNamespaceLabels()}}, metav1.CreateOptions{}); err != nil {
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
		r := e.kubectlRun("apply", "--dry-run=server", "--validate=strict", "-f", file)
		if r.err != nil {
			t.Errorf("%s values: the API server rejects the rendered chart:\n%s", name, r)
		}
		if strings.Contains(r.stderr, "PodSecurity") {
			t.Errorf("%s values: the operator's pods would break the Restricted Pod Security Standard:\n%s", name, r.stderr)
		}
	}
}
