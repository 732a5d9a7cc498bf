// Static checks of the chart: lint, what it renders with default values and
// with watchNamespace set, least-privilege RBAC, deterministic output, the
// CRD copy, and values the schema must reject with a clear message. They need
// helm only, not a running cluster.
package helm

import (
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"
)

// What the operator does with the API, per resource ("group/resource"); the
// chart may grant exactly these verbs and nothing else. Derived from
// operator/src (the reconciler's children, the informers, the event
// recorder, leader election): it reads MemcachedClusters and writes only
// their status; finalizers/update lets it set blockOwnerDeletion on its
// children's ownerReference (OwnerReferencesPermissionEnforcement); children
// are written by server-side apply (patch, create when missing), never
// updated; the deletes are a PodDisruptionBudget, NetworkPolicy or
// ServiceMonitor the spec turned off and the pod a Warm rolling update
// restarts (the garbage collector deletes the rest); Secrets are read by name
// (get), never listed or watched.
var neededVerbs = map[string][]string{
	"memcached.operator.io/memcachedclusters":            {"get", "list", "watch"},
	"memcached.operator.io/memcachedclusters/status":     {"patch", "update"},
	"memcached.operator.io/memcachedclusters/finalizers": {"update"},
	"apps/statefulsets":                                  {"get", "list", "watch", "create", "patch"},
	"/services":                                          {"get", "list", "watch", "create", "patch"},
	"/configmaps":                                        {"get", "list", "watch", "create", "patch"},
	"policy/poddisruptionbudgets":                        {"get", "list", "watch", "create", "patch", "delete"},
	"networking.k8s.io/networkpolicies":                  {"get", "list", "watch", "create", "patch", "delete"},
	"monitoring.coreos.com/servicemonitors":              {"get", "list", "watch", "create", "patch", "delete"},
	"/secrets":                                           {"get"},
	"/pods":                                              {"get", "list", "watch", "delete"},
	"/events":                                            {"create", "patch"},
}

// The Lease the replicas elect a leader on: a Role in one namespace only.
var leaseVerbs = map[string][]string{
	"coordination.k8s.io/leases": {"create", "get", "update"},
}

func render(t *testing.T, args ...string) string {
	t.Helper()
	base := []string{"template", releaseName, chartDir, "--namespace", "memcached-system"}
	return helm(t, nil, append(base, args...)...)
}

func TestChartLint(t *testing.T) {
	for _, args := range [][]string{
		nil,
		{"--set", "watchNamespace=apps"},
		{"--set", "replicaCount=1", "--set", "leaderElection.enabled=false"},
		{"--set", "listenOnPodIP=true", "--set", "metrics.serviceMonitor.enabled=true"},
	} {
		out := helm(t, nil, append([]string{"lint", "--strict", chartDir}, args...)...)
		if strings.Contains(out, "[WARNING]") || strings.Contains(out, "[ERROR]") {
			t.Errorf("helm lint %v is not clean:\n%s", args, out)
		}
	}
}

func TestChartDefaultRender(t *testing.T) {
	objs := parseManifests(t, render(t))
	got := kinds(objs)
	want := map[string]int{
		"ServiceAccount": 1, "ClusterRole": 1, "ClusterRoleBinding": 1, "Role": 1, "RoleBinding": 1,
		"Service": 1, "Deployment": 1, "PodDisruptionBudget": 1,
		"ValidatingAdmissionPolicy": 1, "ValidatingAdmissionPolicyBinding": 1,
	}
	for k, n := range want {
		if got[k] != n {
			t.Errorf("want %d %s, rendered %d (all: %v)", n, k, got[k], got)
		}
	}
	if got["ServiceMonitor"] != 0 {
		t.Errorf("a ServiceMonitor rendered by default")
	}
	for _, o := range objs {
		switch o.kind() {
		case "ClusterRole", "ClusterRoleBinding", "ValidatingAdmissionPolicy", "ValidatingAdmissionPolicyBinding":
			if o.namespace() != "" {
				t.Errorf("%s %s has a namespace", o.kind(), o.name())
			}
		default:
			if o.namespace() != "memcached-system" {
				t.Errorf("%s %s: namespace %q, want the release namespace memcached-system", o.kind(), o.name(), o.namespace())
			}
		}
		if str(o, "metadata", "labels", "app.kubernetes.io/managed-by") != "Helm" ||
			str(o, "metadata", "labels", "app.kubernetes.io/name") != "memcached-operator" {
			t.Errorf("%s %s lacks the standard labels: %v", o.kind(), o.name(), get(o, "metadata", "labels"))
		}
	}

	dep := find(objs, "Deployment", "")
	if r, _ := get(dep, "spec", "replicas").(float64); r != 2 {
		t.Errorf("Deployment replicas = %v, want 2", get(dep, "spec", "replicas"))
	}
	pod := get(dep, "spec", "template", "spec")
	wantEq[any](t, "pod runAsNonRoot", get(pod, "securityContext", "runAsNonRoot"), true)
	wantEq[any](t, "pod runAsUser", get(pod, "securityContext", "runAsUser"), float64(65532))
	wantEq(t, "pod seccompProfile", str(pod, "securityContext", "seccompProfile", "type"), "RuntimeDefault")
	wantEq(t, "serviceAccountName", str(pod, "serviceAccountName"), find(objs, "ServiceAccount", "").name())
	c := get(pod, "containers", 0)
	wantEq(t, "image", str(c, "image"), "ghcr.io/memcached-operator/memcached-operator:0.1.0")
	wantEq(t, "command", strings.Join(strList(get(c, "command")), " "), "/usr/local/bin/memcached-operator")
	wantEq[any](t, "readOnlyRootFilesystem", get(c, "securityContext", "readOnlyRootFilesystem"), true)
	wantEq[any](t, "allowPrivilegeEscalation", get(c, "securityContext", "allowPrivilegeEscalation"), false)
	wantEq(t, "capabilities.drop", strings.Join(strList(get(c, "securityContext", "capabilities", "drop")), ","), "ALL")
	wantEq(t, "container seccompProfile", str(c, "securityContext", "seccompProfile", "type"), "RuntimeDefault")
	wantEq(t, "liveness path", str(c, "livenessProbe", "httpGet", "path"), "/healthz")
	wantEq(t, "liveness port", str(c, "livenessProbe", "httpGet", "port"), "health")
	wantEq(t, "readiness path", str(c, "readinessProbe", "httpGet", "path"), "/readyz")
	wantEq(t, "readiness port", str(c, "readinessProbe", "httpGet", "port"), "health")
	ports := map[string]float64{}
	for i := 0; get(c, "ports", i) != nil; i++ {
		ports[str(c, "ports", i, "name")], _ = get(c, "ports", i, "containerPort").(float64)
	}
	wantEq(t, "metrics port", ports["metrics"], float64(8080))
	wantEq(t, "health port", ports["health"], float64(8081))
	env := map[string]string{}
	for i := 0; get(c, "env", i) != nil; i++ {
		env[str(c, "env", i, "name")] = str(c, "env", i, "valueFrom", "fieldRef", "fieldPath")
	}
	wantEq(t, "env POD_NAME", env["POD_NAME"], "metadata.name")
	wantEq(t, "env POD_NAMESPACE", env["POD_NAMESPACE"], "metadata.namespace")
	args := strList(get(c, "args"))
	for _, a := range []string{
		"--log-format=json", "--leader-elect", "--leader-election-namespace=memcached-system",
		"--leader-election-id=mcop-memcached-operator", "--lease-duration=15s", "--renew-deadline=10s",
		"--retry-period=2s", "--metrics-bind-address=:8080", "--health-probe-bind-address=:8081",
		"--stale-copy-sweep-timeout=120s", "--watch-idle-timeout=3m",
	} {
		if !slices.Contains(args, a) {
			t.Errorf("operator args lack %s: %v", a, args)
		}
	}
	for _, a := range args {
		if strings.HasPrefix(a, "--namespace") {
			t.Errorf("all-namespaces mode passes %s", a)
		}
	}

	svc := find(objs, "Service", "")
	wantEq[any](t, "metrics service port", get(svc, "spec", "ports", 0, "port"), float64(8080))
	wantEq(t, "metrics service targetPort", str(svc, "spec", "ports", 0, "targetPort"), "metrics")

	checkRBAC(t, objs, "")
}

func TestChartWatchNamespaceRender(t *testing.T) {
	objs := parseManifests(t, render(t, "--set", "watchNamespace=apps"))
	got := kinds(objs)
	if got["ClusterRole"] != 0 || got["ClusterRoleBinding"] != 0 {
		t.Errorf("watchNamespace set, yet cluster-wide RBAC rendered: %v", got)
	}
	if got["Role"] != 2 || got["RoleBinding"] != 2 {
		t.Errorf("want 2 Roles and 2 RoleBindings (apps, and the Lease's), got %v", got)
	}
	dep := find(objs, "Deployment", "")
	if args := strList(get(dep, "spec", "template", "spec", "containers", 0, "args")); !slices.Contains(args, "--namespace=apps") {
		t.Errorf("operator args lack --namespace=apps: %v", args)
	}
	checkRBAC(t, objs, "apps")
}

// checkRBAC: no wildcards, Secrets get only, nothing beyond neededVerbs (and the
// Lease), everything in neededVerbs granted, in the right scope.
func checkRBAC(t *testing.T, objs []object, watchNamespace string) {
	t.Helper()
	granted := map[string][]string{}
	for _, o := range objs {
		if o.kind() != "Role" && o.kind() != "ClusterRole" {
			continue
		}
		isLeaseRole := strings.HasSuffix(o.name(), "-leader-election")
		for i := 0; get(o, "rules", i) != nil; i++ {
			rule := get(o, "rules", i)
			groups, resources, verbs := strList(get(rule, "apiGroups")), strList(get(rule, "resources")), strList(get(rule, "verbs"))
			names := strList(get(rule, "resourceNames"))
			for _, l := range [][]string{groups, resources, verbs, names} {
				if slices.Contains(l, "*") {
					t.Errorf("%s %s rule %d has a wildcard: %v", o.kind(), o.name(), i, rule)
				}
			}
			if get(rule, "nonResourceURLs") != nil {
				t.Errorf("%s %s grants nonResourceURLs: %v", o.kind(), o.name(), rule)
			}
			for _, g := range groups {
				for _, r := range resources {
					key := g + "/" + r
					if r == "secrets" && slices.ContainsFunc(verbs, func(v string) bool { return v != "get" }) {
						t.Errorf("%s %s grants more than get on secrets: %v", o.kind(), o.name(), verbs)
					}
					allowed, ok := neededVerbs[key]
					if isLeaseRole {
						allowed, ok = leaseVerbs[key]
						if o.kind() != "Role" {
							t.Errorf("the Lease is granted by a %s, want a Role", o.kind())
						}
						if slices.ContainsFunc(verbs, func(v string) bool { return v != "create" }) && len(names) != 1 {
							t.Errorf("%s %s: get/update on leases not limited to the one Lease: %v", o.kind(), o.name(), rule)
						}
					}
					if !ok {
						t.Errorf("%s %s grants %s, which the operator does not use", o.kind(), o.name(), key)
						continue
					}
					for _, v := range verbs {
						if !slices.Contains(allowed, v) {
							t.Errorf("%s %s grants %s on %s, which the operator does not use", o.kind(), o.name(), v, key)
						}
					}
					if !isLeaseRole {
						if watchNamespace == "" && o.kind() != "ClusterRole" {
							t.Errorf("all-namespaces mode grants %s through a %s", key, o.kind())
						}
						if watchNamespace != "" && (o.kind() != "Role" || o.namespace() != watchNamespace) {
							t.Errorf("watchNamespace=%s grants %s through %s %s/%s", watchNamespace, key, o.kind(), o.namespace(), o.name())
						}
					}
					granted[key] = append(granted[key], verbs...)
				}
			}
		}
	}
	for key, verbs := range neededVerbs {
		for _, v := range verbs {
			if !slices.Contains(granted[key], v) {
				t.Errorf("the operator needs %s on %s; the chart does not grant it", v, key)
			}
		}
	}
	for key, verbs := range leaseVerbs {
		for _, v := range verbs {
			if !slices.Contains(granted[key], v) {
				t.Errorf("leader election needs %s on %s; the chart does not grant it", v, key)
			}
		}
	}
	for _, o := range objs {
		if o.kind() != "RoleBinding" && o.kind() != "ClusterRoleBinding" {
			continue
		}
		if str(o, "subjects", 0, "kind") != "ServiceAccount" || str(o, "subjects", 0, "namespace") != "memcached-system" {
			t.Errorf("%s %s binds %v, want the chart's ServiceAccount in the release namespace", o.kind(), o.name(), get(o, "subjects"))
		}
	}
}

func TestChartRenderIsDeterministic(t *testing.T) {
	for _, args := range [][]string{nil, {"--set", "watchNamespace=apps"}} {
		a, b := render(t, args...), render(t, args...)
		if a != b {
			t.Errorf("two renders with %v differ", args)
		}
	}
}

func TestChartServiceMonitorOnlyWithItsAPI(t *testing.T) {
	without := kinds(parseManifests(t, render(t, "--set", "metrics.serviceMonitor.enabled=true")))
	if without["ServiceMonitor"] != 0 {
		t.Errorf("ServiceMonitor rendered although monitoring.coreos.com/v1 is absent")
	}
	with := parseManifests(t, render(t, "--set", "metrics.serviceMonitor.enabled=true",
		"--api-versions", "monitoring.coreos.com/v1/ServiceMonitor"))
	sm := find(with, "ServiceMonitor", "")
	if sm == nil {
		t.Fatalf("no ServiceMonitor with the API present")
	}
	wantEq(t, "ServiceMonitor port", str(sm, "spec", "endpoints", 0, "port"), "metrics")
}

func TestChartListenOnPodIP(t *testing.T) {
	dep := find(parseManifests(t, render(t, "--set", "listenOnPodIP=true")), "Deployment", "")
	c := get(dep, "spec", "template", "spec", "containers", 0)
	args := strList(get(c, "args"))
	for _, a := range []string{"--metrics-bind-address=$(POD_IP):8080", "--health-probe-bind-address=$(POD_IP):8081"} {
		if !slices.Contains(args, a) {
			t.Errorf("args lack %s: %v", a, args)
		}
	}
	found := false
	for i := 0; get(c, "env", i) != nil; i++ {
		found = found || (str(c, "env", i, "name") == "POD_IP" && str(c, "env", i, "valueFrom", "fieldRef", "fieldPath") == "status.podIP")
	}
	if !found {
		t.Errorf("no POD_IP from status.podIP")
	}
}

// Values a user can get wrong fail at install time with a message naming them.
func TestChartSchemaRejectsBadValues(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--set-string", "replicaCount=two"}, "at '/replicaCount': got string, want integer"},
		{[]string{"--set", "replicaCont=3"}, "additional properties 'replicaCont' not allowed"},
		{[]string{"--set", "image.tgs=1"}, "additional properties 'tgs' not allowed"},
		{[]string{"--set", "logFormat=xml"}, "at '/logFormat': value must be one of 'json', 'text'"},
		{[]string{"--set", "image.pullPolicy=Sometimes"}, "at '/image/pullPolicy'"},
		{[]string{"--set", "watchNamespace=Apps_1"}, "at '/watchNamespace'"},
		{[]string{"--set", "leaderElection.leaseDuration=15"}, "at '/leaderElection/leaseDuration': got number, want string"},
		{[]string{"--set", "leaderElection.retryPeriod=2 seconds"}, "at '/leaderElection/retryPeriod'"},
		{[]string{"--set", "metrics.port=70000"}, "at '/metrics/port'"},
		{[]string{"--set", "staleCopySweepTimeout=2 minutes"}, "at '/staleCopySweepTimeout'"},
		{[]string{"--set", "watchIdleTimeout=-1s"}, "at '/watchIdleTimeout'"},
		{[]string{"--set", "leaderElection.renewDeadline=20s"}, "leaderElection.leaseDuration (15s) must be longer than leaderElection.renewDeadline (20s)"},
		{[]string{"--set", "leaderElection.enabled=false"}, "replicaCount is 2 but leaderElection.enabled is false"},
		{[]string{"--set", "health.port=8080"}, "metrics.port and health.port must differ"},
	} {
		r := run(t, nil, time.Minute, helmBin(t), append([]string{"template", releaseName, chartDir}, tc.args...)...)
		if r.err == nil {
			t.Errorf("helm template %v succeeded; want it rejected with %q", tc.args, tc.want)
			continue
		}
		if !strings.Contains(r.stderr, tc.want) {
			t.Errorf("helm template %v failed without %q:\n%s", tc.args, tc.want, r.stderr)
		}
	}
}

// The chart's crds/ is a byte-for-byte copy of the top-level crds/ (the one
// source); helm/sync-crds.sh brings it up to date.
func TestChartCRDsMatchTopLevel(t *testing.T) {
	root := repoRoot(t)
	list := func(dir string) []string {
		var names []string
		entries, _ := os.ReadDir(dir)
		for _, e := range entries {
			if !e.IsDir() && (strings.HasSuffix(e.Name(), ".yaml") || strings.HasSuffix(e.Name(), ".yml")) {
				names = append(names, e.Name())
			}
		}
		sort.Strings(names)
		return names
	}
	top, chart := filepath.Join(root, "crds"), filepath.Join(root, chartDir, "crds")
	a, b := list(top), list(chart)
	if len(a) == 0 {
		t.Fatalf("no CRDs in %s: nothing to compare", top)
	}
	if !slices.Equal(a, b) {
		t.Fatalf("crds/ holds %v, the chart's crds/ holds %v: run helm/sync-crds.sh", a, b)
	}
	for _, n := range a {
		x, _ := os.ReadFile(filepath.Join(top, n))
		y, _ := os.ReadFile(filepath.Join(chart, n))
		if string(x) != string(y) {
			t.Errorf("%s differs between crds/ and the chart's crds/: run helm/sync-crds.sh", n)
		}
	}
}

func wantEq[T comparable](t *testing.T, what string, got, want T) {
	t.Helper()
	if got != want {
		t.Errorf("%s = %v, want %v", what, got, want)
	}
}

// testdata/all-values.yaml sets every optional value; each lands where it should.
func TestChartAllValuesRender(t *testing.T) {
	objs := parseManifests(t, render(t, "-f", "e2e/helm/testdata/all-values.yaml"))
	dep := find(objs, "Deployment", "mco")
	if dep == nil {
		t.Fatalf("no Deployment mco (fullnameOverride) in %v", kinds(objs))
	}
	pod := get(dep, "spec", "template", "spec")
	c := get(pod, "containers", 0)
	wantEq(t, "image", str(c, "image"), "ghcr.io/memcached-operator/memcached-operator@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef")
	wantEq(t, "imagePullSecrets", str(pod, "imagePullSecrets", 0, "name"), "regcred")
	wantEq(t, "serviceAccountName", str(pod, "serviceAccountName"), "mco-operator")
	wantEq(t, "priorityClassName", str(pod, "priorityClassName"), "system-cluster-critical")
	wantEq(t, "nodeSelector", str(pod, "nodeSelector", "kubernetes.io/os"), "linux")
	wantEq(t, "toleration", str(pod, "tolerations", 0, "key"), "dedicated")
	wantEq(t, "topologySpreadConstraints", str(pod, "topologySpreadConstraints", 0, "topologyKey"), "topology.kubernetes.io/zone")
	if get(pod, "affinity", "nodeAffinity") == nil || get(pod, "affinity", "podAntiAffinity") != nil {
		t.Errorf("affinity given: want it as given, got %v", get(pod, "affinity"))
	}
	wantEq(t, "pod label", str(dep, "spec", "template", "metadata", "labels", "team"), "cache")
	wantEq(t, "pod annotation", str(dep, "spec", "template", "metadata", "annotations", "example.com/a"), "1")
	wantEq(t, "extraEnv", str(c, "env", 2, "name"), "FOO")
	args := strList(get(c, "args"))
	for _, a := range []string{"--cluster-domain=example.internal", "--leader-election-id=mco-lease", "--lease-duration=30s",
		"--renew-deadline=20s", "--retry-period=5s", "--log-level=debug", "--log-format=text", "--workers=8",
		"--stale-copy-sweep-timeout=5m", "--watch-idle-timeout=90s"} {
		if !slices.Contains(args, a) {
			t.Errorf("args lack %s: %v", a, args)
		}
	}
	if r, _ := get(dep, "spec", "replicas").(float64); r != 3 {
		t.Errorf("replicas = %v, want 3", get(dep, "spec", "replicas"))
	}
	wantEq(t, "PDB maxUnavailable", str(find(objs, "PodDisruptionBudget", "mco"), "spec", "maxUnavailable"), "50%")
	wantEq(t, "metrics Service type", str(find(objs, "Service", "mco-metrics"), "spec", "type"), "NodePort")
	wantEq(t, "ServiceAccount annotation", str(find(objs, "ServiceAccount", "mco-operator"), "metadata", "annotations", "example.com/role"), "operator")
	lease := find(objs, "Role", "mco-leader-election")
	wantEq(t, "lease resourceName", strings.Join(strList(get(lease, "rules", 1, "resourceNames")), ","), "mco-lease")
	checkRBACSubject(t, objs, "mco-operator")
}

func TestChartWithoutOptionalObjects(t *testing.T) {
	objs := parseManifests(t, render(t, "--set", "replicaCount=1", "--set", "leaderElection.enabled=false",
		"--set", "serviceAccount.create=false", "--set", "serviceAccount.name=byo", "--set", "rbac.create=false",
		"--set", "metrics.service.enabled=false"))
	got := kinds(objs)
	if len(got) != 1 || got["Deployment"] != 1 {
		t.Errorf("want only the Deployment, rendered %v", got)
	}
	dep := find(objs, "Deployment", "")
	args := strList(get(dep, "spec", "template", "spec", "containers", 0, "args"))
	if slices.Contains(args, "--leader-elect") {
		t.Errorf("leader election disabled, yet args %v", args)
	}
	wantEq(t, "serviceAccountName", str(dep, "spec", "template", "spec", "serviceAccountName"), "byo")
}

func checkRBACSubject(t *testing.T, objs []object, sa string) {
	t.Helper()
	for _, o := range objs {
		if o.kind() == "RoleBinding" || o.kind() == "ClusterRoleBinding" {
			wantEq(t, o.kind()+" "+o.name()+" subject", str(o, "subjects", 0, "name"), sa)
		}
	}
}

// The ValidatingAdmissionPolicy covers, for the operator's ServiceAccount alone,
// every resource the chart lets it write other than Events (which it creates
// and owns no other way) and the MemcachedCluster subresources; it denies.
func TestChartOwnedObjectsPolicy(t *testing.T) {
	for _, tc := range []struct {
		args []string
		sa   string
	}{
		{nil, "system:serviceaccount:memcached-system:" + releaseName + "-memcached-operator"},
		{[]string{"-f", "e2e/helm/testdata/all-values.yaml"}, "system:serviceaccount:memcached-system:mco-operator"},
		{[]string{"--set", "watchNamespace=apps"}, "system:serviceaccount:memcached-system:" + releaseName + "-memcached-operator"},
	} {
		objs := parseManifests(t, render(t, tc.args...))
		policy := find(objs, "ValidatingAdmissionPolicy", "")
		binding := find(objs, "ValidatingAdmissionPolicyBinding", "")
		if policy == nil || binding == nil {
			t.Fatalf("%v: no ValidatingAdmissionPolicy and binding in %v", tc.args, kinds(objs))
		}
		wantEq(t, "binding policyName", str(binding, "spec", "policyName"), policy.name())
		wantEq(t, "binding validationActions", strings.Join(strList(get(binding, "spec", "validationActions")), ","), "Deny")
		wantEq(t, "failurePolicy", str(policy, "spec", "failurePolicy"), "Fail")
		if cond := str(policy, "spec", "matchConditions", 0, "expression"); !strings.Contains(cond, "'"+tc.sa+"'") {
			t.Errorf("%v: matchCondition %q does not select %s", tc.args, cond, tc.sa)
		}
		covered := map[string]bool{}
		for i := 0; get(policy, "spec", "matchConstraints", "resourceRules", i) != nil; i++ {
			rule := get(policy, "spec", "matchConstraints", "resourceRules", i)
			wantEq(t, "operations", strings.Join(strList(get(rule, "operations")), ","), "CREATE,UPDATE,DELETE")
			for _, g := range strList(get(rule, "apiGroups")) {
				for _, r := range strList(get(rule, "resources")) {
					covered[g+"/"+r] = true
				}
			}
		}
		for key, verbs := range neededVerbs {
			writes := slices.ContainsFunc(verbs, func(v string) bool { return v != "get" && v != "list" && v != "watch" })
			exempt := key == "/events" || strings.HasPrefix(key, "memcached.operator.io/")
			if writes && !exempt && !covered[key] {
				t.Errorf("%v: the operator may write %s, which the policy does not cover", tc.args, key)
			}
		}
	}
	objs := parseManifests(t, render(t, "--set", "rbac.ownedObjectsPolicy=false"))
	if got := kinds(objs); got["ValidatingAdmissionPolicy"] != 0 || got["ValidatingAdmissionPolicyBinding"] != 0 {
		t.Errorf("rbac.ownedObjectsPolicy=false still renders the policy: %v", got)
	}
}
