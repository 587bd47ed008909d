// numa/bind_fallback.cpp -- the build without hwloc: plans are unpinned (plan.cpp
// says so once), so there is nothing to bind; memory comes from plain mmap.
#include <sys/mman.h>

#include "numa/bind.h"

namespace pp::numa {

bool bind_current_thread(const pp::WorkerSlot& slot, std::string& error) {
  if (slot.cpu < 0) return true;
  error = "this build has no hwloc: workers run unpinned";
  return false;
}

void worker_start_hook(const pp::WorkerSlot&) {}

void* alloc_local(std::size_t size, int) {
  void* p = mmap(nullptr, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  return p == MAP_FAILED ? nullptr : p;
}

void free_local(void* ptr, std::size_t size) {
  if (ptr) munmap(ptr, size);
}

int memory_node_of(const void*, std::size_t) {
  return -1;
}

}  // namespace pp::numa
