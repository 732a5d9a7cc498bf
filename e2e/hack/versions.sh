# Versions of the components the local cluster is built from (sourced by the
# other scripts). Bumping one of them makes the next `e2e/cluster up` build it
# again into a new directory keyed by that version; older builds stay cached.
KUBERNETES_VERSION="${KUBERNETES_VERSION:-v1.36.3}"
ETCD_VERSION="${ETCD_VERSION:-v3.6.16}"
HELM_VERSION="${HELM_VERSION:-v3.22.0}"
# The memcached exporter the operator's monitoring sidecar runs (its image
# quay.io/prometheus/memcached-exporter:<this>); the loopback kubelet runs this build for it.
MEMCACHED_EXPORTER_VERSION="${MEMCACHED_EXPORTER_VERSION:-v0.15.0}"

# Everything built or fetched lives outside the repo.
MCOP_CACHE="${MCOP_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/memcached-operator}"
K8S_DIR="$MCOP_CACHE/k8s-$KUBERNETES_VERSION"
ETCD_DIR="$MCOP_CACHE/etcd-$ETCD_VERSION"
HELM_DIR="$MCOP_CACHE/helm-$HELM_VERSION"
EXPORTER_DIR="$MCOP_CACHE/memcached-exporter-$MEMCACHED_EXPORTER_VERSION"
