#!/usr/bin/env bash
# Static checks of the Helm chart, no cluster needed (`make test` runs them):
# the chart's crds/ equals crds/, helm lint, helm template with default values
# and with watchNamespace set, least-privilege RBAC (no wildcards,
# Secrets get only, no verbs the operator does not use; the owned-objects policy),
# deterministic rendering, values the schema must reject with a clear
# message, and the Grafana dashboard (below). The Go checks live in e2e/helm
# (TestChart*); the install on the local cluster is e2e/helm's TestHelm*, run
# by e2e/run-tests.
set -euo pipefail
repo="$(cd "$(dirname "$(readlink -f "${BASH_SOURCE[0]}")")/.." && pwd)"
. "$repo/e2e/hack/versions.sh"

"$repo/helm/sync-crds.sh" --check

# The harness's helm (the version the e2e tests use), built once into the cache.
if [[ -z "${HELM:-}" ]]; then
  [[ -x "$HELM_DIR/bin/helm" ]] || "$repo/e2e/hack/build-components.sh" helm
  export HELM="$HELM_DIR/bin/helm"
fi
echo "test-chart: $("$HELM" version --short) on helm/memcached-operator"
cd "$repo/e2e"
GOTOOLCHAIN=local go test -count=1 -run '^TestChart' ./helm/ "$@"

# The Grafana dashboard: off by default; when on, one ConfigMap with the sidecar's label carrying
# dashboards/memcached-operator.json, which parses, and whose every series is one the exporter
# (memcached_exporter v0.15.0) or the operator (operator/src, by name) exports.
echo "test-chart: grafana dashboard"
if "$HELM" template mcop "$repo/helm/memcached-operator" -n memcached-system | grep -q grafana_dashboard; then
  echo "test-chart: the dashboard ConfigMap is rendered by default" >&2
  exit 1
fi
"$HELM" template mcop "$repo/helm/memcached-operator" -n memcached-system \
  --set grafanaDashboard.enabled=true --show-only templates/grafana-dashboard.yaml |
  python3 -c '
import json, re, subprocess, sys
repo, text = sys.argv[1], sys.stdin.read()
if text.count("grafana_dashboard: \"1\"") != 1:
    sys.exit("want one ConfigMap labelled grafana_dashboard: \"1\"")
body = text.split("memcached-operator.json: |-\n", 1)[1]
rendered = "\n".join(l[4:] for l in body.splitlines())
shipped = open(repo + "/helm/memcached-operator/dashboards/memcached-operator.json").read()
if json.loads(rendered) != json.loads(shipped):
    sys.exit("the ConfigMap does not carry dashboards/memcached-operator.json")
dash = json.loads(shipped)
exprs = [t["expr"] for p in dash["panels"] for t in p.get("targets", [])]
series = set(re.findall(r"\b(memcached_[a-z_]+)", " ".join(exprs)))
exporter = {"memcached_commands_total", "memcached_items_evicted_total", "memcached_current_connections",
            "memcached_connections_total", "memcached_current_bytes", "memcached_limit_bytes", "memcached_up"}
for want in ["memcached_commands_total", "memcached_items_evicted_total", "memcached_current_connections",
             "memcached_operator_config_version", "memcached_operator_drain_duration_seconds_count",
             "memcached_operator_transition_copied_items_total"]:
    if want not in series:
        sys.exit("the dashboard lacks %s" % want)
src = subprocess.run(["grep", "-rhoE", "\"memcached_operator_[a-z_]+\"", repo + "/operator/src"],
                     capture_output=True, text=True).stdout
known = {s.strip("\"") for s in src.split()}
for s in sorted(series - exporter):
    if re.sub(r"_(bucket|count|sum)$", "", s) not in known:
        sys.exit("the dashboard queries %s, which neither the exporter nor the operator exports" % s)
print("test-chart: dashboard ok (%d panels, %d series)" % (len(dash["panels"]), len(series)))
' "$repo"
