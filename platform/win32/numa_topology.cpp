// platform/win32/numa_topology.cpp -- numa/'s Topology::load and binding on Windows
// without hwloc (Debian ships no mingw hwloc): the Win32 processor-group API.
//
// The topology comes from GetLogicalProcessorInformationEx: cores (RelationProcessorCore)
// with their SMT siblings, NUMA nodes (RelationNumaNode) and packages. A PU's OS index is
// group * 64 + bit, the number Windows tools show for machines with several processor
// groups. Pinning uses SetThreadGroupAffinity, node-local memory VirtualAllocExNuma.
// `can_bind` is set, so numa/plan.cpp pins workers as it does with hwloc.
#include <algorithm>
#include <map>
#include <memory>
#include <vector>

#include <fmt/format.h>

#include "core/log.h"
#include "numa/bind.h"
#include "numa/topology.h"
#include "platform/win32/winsock.h"

namespace pp::numa {
namespace {

int pu_index(WORD group, int bit) {
  return static_cast<int>(group) * 64 + bit;
}

template <class Fn>
bool for_each_relation(LOGICAL_PROCESSOR_RELATIONSHIP rel, Fn&& fn) {
  DWORD len = 0;
  ::GetLogicalProcessorInformationEx(rel, nullptr, &len);
  if (len == 0) return false;
  auto buf = std::make_unique<char[]>(len);
  auto* info = reinterpret_cast<SYSTEM_LOGICAL_PROCESSOR_INFORMATION_EX*>(buf.get());
  if (!::GetLogicalProcessorInformationEx(rel, info, &len)) return false;
  for (DWORD at = 0; at < len;) {
    auto* item = reinterpret_cast<SYSTEM_LOGICAL_PROCESSOR_INFORMATION_EX*>(buf.get() + at);
    fn(*item);
    at += item->Size;
  }
  return true;
}

}  // namespace

std::optional<Topology> Topology::load(const Source& source, std::string& error) {
  if (source.kind != Source::Kind::host || !source.allowed_cpus.empty()) {
    error =
        "this Windows build has no hwloc: only the host's own topology can be read "
        "(processor-group API)";
    return std::nullopt;
  }
  Topology t;
  t.origin = "this host (Windows processor groups)";
  t.can_bind = true;
  std::map<int, int> node_of_pu;
  for_each_relation(RelationNumaNode, [&](const SYSTEM_LOGICAL_PROCESSOR_INFORMATION_EX& r) {
    const GROUP_AFFINITY& g = r.NumaNode.GroupMask;
    NumaNode n;
    n.os_index = static_cast<int>(r.NumaNode.NodeNumber);
    n.package = 0;
    ULONGLONG avail = 0;
    if (::GetNumaAvailableMemoryNodeEx(static_cast<USHORT>(n.os_index), &avail))
      n.memory_bytes = avail;
    n.memory_node = n.os_index;
    for (int bit = 0; bit < 64; ++bit)
      if (g.Mask & (KAFFINITY{1} << bit)) {
        n.pus.push_back(pu_index(g.Group, bit));
        node_of_pu[pu_index(g.Group, bit)] = n.os_index;
      }
    t.nodes.push_back(std::move(n));
  });
  // A one-node machine whose node reports no available memory (Wine does) has all of it.
  if (t.nodes.size() == 1 && t.nodes[0].memory_bytes == 0) {
    MEMORYSTATUSEX mem{};
    mem.dwLength = sizeof mem;
    if (::GlobalMemoryStatusEx(&mem)) t.nodes[0].memory_bytes = mem.ullTotalPhys;
  }
  std::sort(t.nodes.begin(), t.nodes.end(),
            [](const NumaNode& a, const NumaNode& b) { return a.os_index < b.os_index; });
  t.packages.push_back({0, {}});
  for (const NumaNode& n : t.nodes) t.packages[0].nodes.push_back(n.os_index);
  // The process's allowed processors: its affinity within its group (a process with
  // threads in several groups reports the first; workers are pinned explicitly anyway).
  DWORD_PTR process_mask = 0, system_mask = 0;
  ::GetProcessAffinityMask(::GetCurrentProcess(), &process_mask, &system_mask);
  USHORT groups[4] = {};
  USHORT group_count = 4;
  WORD process_group = 0;
  if (::GetProcessGroupAffinity(::GetCurrentProcess(), &group_count, groups) && group_count > 0)
    process_group = groups[0];
  bool ok = for_each_relation(
      RelationProcessorCore, [&](const SYSTEM_LOGICAL_PROCESSOR_INFORMATION_EX& r) {
        const GROUP_AFFINITY& g = r.Processor.GroupMask[0];
        Core c;
        c.index = static_cast<int>(t.cores.size());
        c.package = 0;
        int rank = 0;
        for (int bit = 0; bit < 64; ++bit) {
          if (!(g.Mask & (KAFFINITY{1} << bit))) continue;
          int os = pu_index(g.Group, bit);
          auto node = node_of_pu.find(os);
          c.node = node == node_of_pu.end() ? -1 : node->second;
          c.pus.push_back(os);
          bool allowed = g.Group != process_group || (process_mask & (DWORD_PTR{1} << bit)) != 0;
          t.pus.push_back({os, c.index, c.node, rank++, allowed});
        }
        t.cores.push_back(std::move(c));
      });
  if (!ok || t.pus.empty()) {
    error = fmt::format("GetLogicalProcessorInformationEx: Windows error {}", ::GetLastError());
    return std::nullopt;
  }
  return t;
}

bool bind_current_thread(const pp::WorkerSlot& slot, std::string& error) {
  if (slot.cpu < 0) return true;
  GROUP_AFFINITY affinity{};
  affinity.Group = static_cast<WORD>(slot.cpu / 64);
  affinity.Mask = KAFFINITY{1} << (slot.cpu % 64);
  if (!::SetThreadGroupAffinity(::GetCurrentThread(), &affinity, nullptr)) {
    error = fmt::format("SetThreadGroupAffinity to processor {}: Windows error {}", slot.cpu,
                        ::GetLastError());
    return false;
  }
  // Windows allocates from the node of the processor the thread runs on (first touch
  // after pinning), which is the node the plan chose for this slot.
  return true;
}

void worker_start_hook(const pp::WorkerSlot& slot) {
  std::string error;
  if (!bind_current_thread(slot, error))
    pp::log_warning("numa: worker on cpu {} runs unpinned: {}", slot.cpu, error);
}

void* alloc_local(std::size_t size, int node) {
  if (node >= 0)
    return ::VirtualAllocExNuma(::GetCurrentProcess(), nullptr, size, MEM_RESERVE | MEM_COMMIT,
                                PAGE_READWRITE, static_cast<DWORD>(node));
  return ::VirtualAlloc(nullptr, size, MEM_RESERVE | MEM_COMMIT, PAGE_READWRITE);
}

void free_local(void* ptr, std::size_t) {
  if (ptr) ::VirtualFree(ptr, 0, MEM_RELEASE);
}

int memory_node_of(const void*, std::size_t) {
  // QueryWorkingSetEx could tell; nothing on Windows needs it yet.
  return -1;
}

}  // namespace pp::numa
