// Event predicates: which update events are worth a reconcile. An informer delivers every
// change of a watched object; without a filter, each status write of a cluster would come back
// as an update of that cluster and wake it again for nothing. As in controller-runtime, a
// predicate looks at the old and the new object of an update; creations and deletions always
// pass.
//  - For the primary object (the one a controller reconciles): what its owner changed, i.e. the
//    spec (metadata.generation), labels, annotations, finalizers or deletionTimestamp. Its own
//    status is the controller's output, not its input.
//  - For the objects it watches on the primary's behalf (children, pods): any change but the
//    API server's bookkeeping (resourceVersion, managedFields). Their status is input: a
//    StatefulSet's readyReplicas, a Pod's readiness.
// Thread-safety: pure functions.
#pragma once

#include <functional>

#include "kube/api_client.h"

namespace mcop::controller {

// True when the update should enqueue. An empty UpdatePredicate lets every update through.
using UpdatePredicate = std::function<bool(const kube::Object& old_obj, const kube::Object& new_obj)>;

bool generationChanged(const kube::Object& old_obj, const kube::Object& new_obj);
bool labelsChanged(const kube::Object& old_obj, const kube::Object& new_obj);
bool annotationsChanged(const kube::Object& old_obj, const kube::Object& new_obj);
bool finalizersChanged(const kube::Object& old_obj, const kube::Object& new_obj);
bool deletionTimestampChanged(const kube::Object& old_obj, const kube::Object& new_obj);

// For primary objects: generation, labels, annotations, finalizers or deletionTimestamp changed.
// An object without metadata.generation (a type without a status subresource) counts every
// change but bookkeeping, since its spec changes would otherwise go unseen.
bool ownerIntentChanged(const kube::Object& old_obj, const kube::Object& new_obj);

// For watched children: anything changed but metadata.resourceVersion and
// metadata.managedFields.
bool changedBeyondBookkeeping(const kube::Object& old_obj, const kube::Object& new_obj);

}  // namespace mcop::controller
