// Drift check. isSubset: "is the desired object already true of the live one?" The reconciler
// applies a child only when this is false, which is what makes the steady state write nothing:
// the API server adds defaults, status and metadata to every object, so equality would never
// hold, but the fields we own must all be there with our values.
// Thread-safety: pure functions.
#pragma once

#include "memcached/json_util.h"

namespace mcop::memcached {

// Objects: every key of `desired` is in `live` with a subset value (extra live keys are fine).
// Arrays: equal length, elementwise subset (order matters: args, ports, tolerations).
// Scalars: equal; numbers by value; two strings that are both Kubernetes quantities compare by
// amount ("1Gi" == "1024Mi", "500m" == "0.5"), because the server rewrites quantities to its
// canonical form and that must not look like drift.
bool isSubset(const Json& desired, const Json& live);

}  // namespace mcop::memcached
