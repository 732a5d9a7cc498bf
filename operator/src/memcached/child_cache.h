// The child caches' transform. The child informers (StatefulSets, Services, ConfigMaps, PDBs,
// NetworkPolicies, ServiceMonitors) watch every object of their kind, not only ours, so that a
// name missing from a cache means no such object exists and a new cluster needs no API read to
// know its child names are free. To keep that cheap, only our objects are cached whole; every
// other object is reduced to a stub that says "this name is taken, and by whom".
// Thread-safety: pure functions.
#pragma once

#include <functional>

#include "kube/api_client.h"

namespace mcop::memcached {

// Ours: labelled app.kubernetes.io/managed-by=memcached-operator, or controlled by a
// MemcachedCluster (an object of ours whose label someone removed must still be seen whole, so
// that drift on it is repaired and a conflict names its owner).
bool isOurChild(const kube::Object& obj);

// Drops managedFields from ours (kube::stripManagedFields) and reduces any other object to
// metadata.name, namespace, uid, resourceVersion and ownerReferences. A stub carries no labels,
// so the caches' label index (and ObjectStore::list by labels) still finds only ours, and no
// data or spec, so nothing can be built or published from it.
void cacheChildOrStub(kube::Object& obj);

}  // namespace mcop::memcached
