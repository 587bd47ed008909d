// numa/bind_hwloc.cpp -- thread pinning and node-local memory through hwloc.
#include <cerrno>
#include <cstring>
#include <mutex>

#include <fmt/format.h>

#include "core/log.h"
#include "numa/bind.h"
#include "numa/hwloc_handle.h"

namespace pp::numa {

namespace {

using detail::single_bit;

// One host topology for binding, loaded on first use and kept for the process's
// life: binding takes OS indexes, so it need not be the instance the plan was made
// from, and workers starting together should not each re-read /sys.
hwloc_topology_t host() {
  static hwloc_topology_t topo = [] {
    hwloc_topology_t t = nullptr;
    if (hwloc_topology_init(&t) != 0) return static_cast<hwloc_topology_t>(nullptr);
    if (hwloc_topology_load(t) != 0) {
      hwloc_topology_destroy(t);
      return static_cast<hwloc_topology_t>(nullptr);
    }
    return t;
  }();
  return topo;
}

void say_memory_policy_refused(int node, int err) {
  static std::once_flag said;
  std::call_once(said, [&] {
    pp::log_warning(
        "cannot set the memory policy toward node {} ({}); pinned workers still allocate "
        "on their node by first touch",
        node, std::strerror(err));
  });
}

}  // namespace

bool bind_current_thread(const pp::WorkerSlot& slot, std::string& error) {
  hwloc_topology_t topo = host();
  if (!topo) {
    error = "hwloc could not read this host's topology";
    return slot.cpu < 0;
  }
  if (slot.cpu >= 0) {
    auto cpus = single_bit(slot.cpu);
    if (hwloc_set_cpubind(topo, cpus.get(), HWLOC_CPUBIND_THREAD) != 0) {
      error = fmt::format("cannot pin this thread to CPU {}: {}", slot.cpu, std::strerror(errno));
      return false;
    }
  }
  if (slot.node >= 0) {
    // Non-strict BIND is MPOL_PREFERRED on Linux: the node first, other nodes when
    // it is full, instead of the OOM killer that strict MPOL_BIND would call.
    auto nodes = single_bit(slot.node);
    if (hwloc_set_membind(topo, nodes.get(), HWLOC_MEMBIND_BIND,
                          HWLOC_MEMBIND_THREAD | HWLOC_MEMBIND_BYNODESET) != 0)
      say_memory_policy_refused(slot.node, errno);
  }
  return true;
}

void worker_start_hook(const pp::WorkerSlot& slot) {
  std::string error;
  if (!bind_current_thread(slot, error))
    pp::log_warning("worker for CPU {} (core {}, node {}) runs unpinned: {}", slot.cpu, slot.core,
            slot.node, error);
}

// hwloc_alloc_membind rather than first touch from the pinned thread: the pages'
// node is fixed by the mapping's policy (mbind), whoever touches them first. A
// worker's buffers are often first written by someone else -- the pool zeroing
// them before the workers start, the main thread registering io_uring buffer rings
// -- and first touch would then put them on that thread's node, silently. The
// policy also survives the thread being migrated before it touches the pages, it
// names the memory node chosen for a memory-less node instead of leaving it to the
// kernel's fallback order, and it can be checked (memory_node_of). Non-strict, so
// a full node spills over instead of failing the allocation.
void* alloc_local(std::size_t size, int node) {
  hwloc_topology_t topo = host();
  if (!topo) return nullptr;
  if (node < 0) return hwloc_alloc(topo, size);
  auto nodes = single_bit(node);
  void* p =
      hwloc_alloc_membind(topo, size, nodes.get(), HWLOC_MEMBIND_BIND, HWLOC_MEMBIND_BYNODESET);
  if (!p && (errno == ENOSYS || errno == EPERM || errno == EXDEV || errno == EINVAL)) {
    // The kernel refused the policy (seccomp, no NUMA support): fall back to first
    // touch, right whenever the caller is a thread pinned on `node`.
    say_memory_policy_refused(node, errno);
    p = hwloc_alloc(topo, size);
  }
  return p;
}

void free_local(void* ptr, std::size_t size) {
  if (ptr && host()) hwloc_free(host(), ptr, size);
}

int memory_node_of(const void* ptr, std::size_t size) {
  hwloc_topology_t topo = host();
  if (!topo || !ptr) return -1;
  auto where = detail::make_bitmap();
  if (hwloc_get_area_memlocation(topo, ptr, size, where.get(), HWLOC_MEMBIND_BYNODESET) != 0)
    return -1;
  return hwloc_bitmap_weight(where.get()) == 1 ? hwloc_bitmap_first(where.get()) : -1;
}

}  // namespace pp::numa
