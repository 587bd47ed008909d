// numa/bind.h -- putting a worker and its memory where its WorkerSlot says.
#pragma once

#include <cstddef>
#include <string>

#include "core/placement.h"

namespace pp::numa {

/// Pins the calling thread to `slot.cpu` and makes `slot.node` its preferred
/// memory node, so that everything the thread allocates afterwards (malloc arenas,
/// connection state) lands there. Call it first thing on each worker thread, with
/// that worker's slot from make_plan. A slot with cpu -1 is left unpinned (true).
///
/// Returns false with `error` set only when the thread cannot be pinned. A memory
/// policy the kernel refuses (containers whose seccomp profile blocks
/// set_mempolicy without CAP_SYS_NICE) is reported once on stderr and is not an
/// error: a pinned thread's first touch already allocates on its own node.
bool bind_current_thread(const pp::WorkerSlot& slot, std::string& error);

/// The per-thread start hook for core/'s worker pool: bind_current_thread, and on
/// failure one log line naming the worker's slot; the worker then runs unpinned.
void worker_start_hook(const pp::WorkerSlot& slot);

/// Allocates `size` bytes (rounded up to pages) on NUMA node `node` (-1: wherever
/// the kernel puts them on first touch). Use it for a worker's long-lived, large
/// buffers: backend buffer rings, connection-state slabs, arenas. Small objects go
/// in those arenas, not here: every call is an mmap. Returns null when out of
/// memory. Release with free_local and the same size.
void* alloc_local(std::size_t size, int node);

/// Releases memory from alloc_local.
void free_local(void* ptr, std::size_t size);

/// The NUMA node holding the pages of [ptr, ptr+size): its OS index, or -1 when no
/// page is resident yet (touch them first), they span several nodes, or the build
/// has no hwloc. For tests and diagnostics; it asks the kernel page by page.
int memory_node_of(const void* ptr, std::size_t size);

}  // namespace pp::numa
