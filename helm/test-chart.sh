#!/usr/bin/env bash
# Static checks of the Helm chart, no cluster needed (`make test` runs them):
# the chart's crds/ equals crds/, helm lint, helm template with default values
# and with watchNamespace set, least-privilege RBAC (no wildcards, no Secrets,
# no verbs the operator does not use; the owned-objects admission policy),
# deterministic rendering, and values the schema must reject with a clear
# message. The checks live in e2e/helm
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
