#include "util/memory.h"

#include <malloc.h>

namespace mcop::util {

void limitMallocArenas(int arenas) { mallopt(M_ARENA_MAX, arenas); }

void releaseFreeMemory() { malloc_trim(0); }

}  // namespace mcop::util
