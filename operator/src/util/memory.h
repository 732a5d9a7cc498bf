// The process's heap (glibc malloc) kept close to what is live, so that resident memory at rest
// reflects the caches and not the peaks of a start or a relist.
// Thread-safety: limitMallocArenas() before any thread exists; releaseFreeMemory() from any
// thread.
#pragma once

namespace mcop::util {

// glibc gives threads that allocate at once arenas of their own, up to 8 per core; freed
// memory stays in the arena that held it, so a start that parses lists on a dozen threads
// leaves a dozen partly used heaps. Two arenas (with glibc's per-thread caches in front) keep
// the allocation paths of the few busy threads apart without that spread.
void limitMallocArenas(int arenas = 2);

// Returns the heap's free pages to the system (malloc_trim): after a list's response and its
// parse are dropped, and now and then at rest. Costs a walk of the free lists, a few ms at most.
void releaseFreeMemory();

}  // namespace mcop::util
