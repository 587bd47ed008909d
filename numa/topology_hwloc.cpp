// numa/topology_hwloc.cpp -- Topology::load with hwloc: reads the machine, copies
// what placement needs into plain data, and lets the hwloc handle go.
#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <map>

#include <fmt/format.h>

#include "numa/cpulist.h"
#include "numa/hwloc_handle.h"
#include "numa/topology.h"

namespace pp::numa {

namespace {

using detail::Bitmap;
using detail::make_bitmap;
using detail::TopologyPtr;

std::vector<int> bits(hwloc_const_bitmap_t set) {
  std::vector<int> out;
  for (int i = hwloc_bitmap_first(set); i >= 0; i = hwloc_bitmap_next(set, i)) out.push_back(i);
  return out;
}

std::string describe_source(const Source& source) {
  switch (source.kind) {
    case Source::Kind::host:
      return "this host";
    case Source::Kind::xml:
      return fmt::format("xml: {}", source.text);
    case Source::Kind::synthetic:
      return fmt::format("synthetic: {}", source.text);
  }
  return "?";
}

// Opens hwloc on `source`. I/O objects are kept (PCI devices and their OS devices)
// so NIC locality is known; disallowed PUs are kept too so that describe() can
// show the whole machine and errors can name CPUs the process may not use.
TopologyPtr open(const Source& source, std::string& error) {
  hwloc_topology_t raw = nullptr;
  if (hwloc_topology_init(&raw) != 0) {
    error = fmt::format("hwloc_topology_init failed: {}", std::strerror(errno));
    return nullptr;
  }
  TopologyPtr topo(raw);
  hwloc_topology_set_flags(raw, HWLOC_TOPOLOGY_FLAG_INCLUDE_DISALLOWED);
  hwloc_topology_set_io_types_filter(raw, HWLOC_TYPE_FILTER_KEEP_IMPORTANT);
  if (source.kind == Source::Kind::xml) {
    std::error_code ec;
    if (!std::filesystem::is_regular_file(source.text, ec)) {
      error = fmt::format("cannot read topology XML '{}': no such file", source.text);
      return nullptr;
    }
    if (hwloc_topology_set_xml(raw, source.text.c_str()) != 0) {
      error = fmt::format("cannot read topology XML '{}': not an hwloc XML topology ({})",
                          source.text, std::strerror(errno));
      return nullptr;
    }
  } else if (source.kind == Source::Kind::synthetic) {
    if (hwloc_topology_set_synthetic(raw, source.text.c_str()) != 0) {
      error = fmt::format(
          "bad synthetic topology '{}': see HWLOC_SYNTHETIC in hwloc's manual "
          "(e.g. \"pack:2 numa:2 core:8 pu:2\")",
          source.text);
      return nullptr;
    }
  }
  if (hwloc_topology_load(raw) != 0) {
    error =
        fmt::format("hwloc could not load {}: {}", describe_source(source), std::strerror(errno));
    return nullptr;
  }
  return topo;
}

// The PUs this process may use: hwloc's allowed set (the cgroup's cpuset), the
// process's affinity on the host (taskset, sched_setaffinity by a launcher), and
// the source's own test restriction.
Bitmap allowed_cpus(hwloc_topology_t topo, const Source& source, std::string& error) {
  Bitmap allowed(hwloc_bitmap_dup(hwloc_topology_get_allowed_cpuset(topo)));
  if (source.kind == Source::Kind::host) {
    // PROCESS: the union over the process's threads, so a thread already pinned
    // (a worker, a test) does not shrink what the next plan may use.
    Bitmap bound = make_bitmap();
    if (hwloc_get_cpubind(topo, bound.get(), HWLOC_CPUBIND_PROCESS) == 0 &&
        !hwloc_bitmap_iszero(bound.get()))
      hwloc_bitmap_and(allowed.get(), allowed.get(), bound.get());
  }
  if (!source.allowed_cpus.empty()) {
    std::string why;
    auto list = parse_cpu_list(source.allowed_cpus, why);
    if (!list) {
      error = fmt::format("bad allowed-CPU restriction '{}': {}", source.allowed_cpus, why);
      return nullptr;
    }
    Bitmap only = make_bitmap();
    for (int cpu : *list) hwloc_bitmap_set(only.get(), static_cast<unsigned>(cpu));
    hwloc_bitmap_and(allowed.get(), allowed.get(), only.get());
  }
  return allowed;
}

// Which package a set of CPUs lies in: its index, or -1 when it spans several.
int package_of(hwloc_topology_t topo, hwloc_const_cpuset_t cpus) {
  int packages = hwloc_get_nbobjs_by_type(topo, HWLOC_OBJ_PACKAGE);
  if (packages <= 0) return 0;  // no Package objects: one implicit package
  int found = -1;
  for (int i = 0; i < packages; ++i) {
    hwloc_obj_t pack = hwloc_get_obj_by_type(topo, HWLOC_OBJ_PACKAGE, i);
    if (!hwloc_bitmap_intersects(pack->cpuset, cpus)) continue;
    if (found >= 0) return -1;
    found = i;
  }
  return found;
}

// Memory-less nodes (Seastar #2747) and disallowed nodes get their workers' memory
// from the nearest allowed node that has memory: by hwloc's latency matrix when
// the firmware provides one (SLIT/HMAT), else the closest in the hierarchy.
void choose_memory_nodes(hwloc_topology_t topo, Topology& t) {
  std::vector<const NumaNode*> candidates;
  for (const auto& node : t.nodes)
    if (node.has_memory() && node.allowed) candidates.push_back(&node);

  unsigned count = 1;
  hwloc_distances_s* latency = nullptr;
  if (hwloc_distances_get_by_type(topo, HWLOC_OBJ_NUMANODE, &count, &latency,
                                  HWLOC_DISTANCES_KIND_MEANS_LATENCY, 0) != 0 ||
      count == 0)
    latency = nullptr;

  for (auto& node : t.nodes) {
    node.memory_node = node.os_index;
    if ((node.has_memory() && node.allowed) || candidates.empty()) continue;
    hwloc_obj_t self = hwloc_get_numanode_obj_by_os_index(topo, node.os_index);
    const NumaNode* best = nullptr;
    if (latency) {
      hwloc_uint64_t best_value = 0;
      for (const NumaNode* c : candidates) {
        hwloc_uint64_t to = 0, from = 0;
        hwloc_obj_t other = hwloc_get_numanode_obj_by_os_index(topo, c->os_index);
        if (hwloc_distances_obj_pair_values(latency, self, other, &to, &from) != 0) continue;
        if (!best || to < best_value) best = c, best_value = to;
      }
    }
    for (hwloc_obj_t up = self->parent; !best && up; up = up->parent)
      for (const NumaNode* c : candidates)
        if (hwloc_bitmap_isset(up->nodeset, static_cast<unsigned>(c->os_index))) {
          best = c;
          break;
        }
    if (best) node.memory_node = best->os_index;
  }
  if (latency) hwloc_distances_release(topo, latency);
}

void read_nics(hwloc_topology_t topo, Topology& t) {
  for (hwloc_obj_t dev = hwloc_get_next_osdev(topo, nullptr); dev;
       dev = hwloc_get_next_osdev(topo, dev)) {
    auto type = dev->attr->osdev.type;
    if (type != HWLOC_OBJ_OSDEV_NETWORK && type != HWLOC_OBJ_OSDEV_OPENFABRICS) continue;
    Nic nic;
    nic.name = dev->name ? dev->name : "?";
    for (hwloc_obj_t up = dev->parent; up && hwloc_obj_type_is_io(up->type); up = up->parent)
      if (up->type == HWLOC_OBJ_PCI_DEVICE) {
        const auto& pci = up->attr->pcidev;
        nic.pci = fmt::format("{:04x}:{:02x}:{:02x}.{:x}", pci.domain, pci.bus, pci.dev, pci.func);
        break;
      }
    hwloc_obj_t home = hwloc_get_non_io_ancestor_obj(topo, dev);
    auto nodes = home ? bits(home->nodeset) : std::vector<int>{};
    if (nodes.size() == 1) {
      nic.node = nodes[0];
      nic.locality = fmt::format("node {}", nodes[0]);
    } else if (!home || home->parent == nullptr || t.nodes.size() <= 1) {
      nic.locality = "whole machine (hwloc does not know a closer node)";
    } else {
      nic.locality = fmt::format("{} {} (nodes {})", hwloc_obj_type_string(home->type),
                                 home->logical_index, format_cpu_list(nodes));
    }
    t.nics.push_back(std::move(nic));
  }
}

}  // namespace

std::optional<Topology> Topology::load(const Source& source, std::string& error) {
  TopologyPtr holder = open(source, error);
  if (!holder) return std::nullopt;
  hwloc_topology_t topo = holder.get();
  Bitmap allowed = allowed_cpus(topo, source, error);
  if (!allowed) return std::nullopt;
  hwloc_const_nodeset_t allowed_nodes = hwloc_topology_get_allowed_nodeset(topo);

  Topology t;
  t.origin = describe_source(source);
  t.can_bind = source.kind == Source::Kind::host;

  int packages = hwloc_get_nbobjs_by_type(topo, HWLOC_OBJ_PACKAGE);
  for (int i = 0; i < std::max(packages, 1); ++i) t.packages.push_back({i, {}});

  for (hwloc_obj_t obj = hwloc_get_next_obj_by_type(topo, HWLOC_OBJ_NUMANODE, nullptr); obj;
       obj = hwloc_get_next_obj_by_type(topo, HWLOC_OBJ_NUMANODE, obj)) {
    NumaNode node;
    node.os_index = static_cast<int>(obj->os_index);
    node.memory_bytes = obj->attr->numanode.local_memory;
    node.allowed = hwloc_bitmap_isset(allowed_nodes, obj->os_index);
    if (!hwloc_bitmap_iszero(obj->cpuset)) {
      node.package = package_of(topo, obj->cpuset);
    } else {  // memory-only node: the package it hangs under, if any
      hwloc_obj_t pack = hwloc_get_ancestor_obj_by_type(topo, HWLOC_OBJ_PACKAGE, obj);
      node.package = pack ? static_cast<int>(pack->logical_index) : (packages <= 0 ? 0 : -1);
    }
    if (node.package >= 0) t.packages[node.package].nodes.push_back(node.os_index);
    t.nodes.push_back(std::move(node));
  }
  std::sort(t.nodes.begin(), t.nodes.end(),
            [](const NumaNode& a, const NumaNode& b) { return a.os_index < b.os_index; });

  std::map<hwloc_obj_t, int> core_of;  // hwloc Core object -> index into t.cores
  int synthetic_core = hwloc_get_nbobjs_by_type(topo, HWLOC_OBJ_CORE);
  for (hwloc_obj_t obj = hwloc_get_next_obj_by_type(topo, HWLOC_OBJ_PU, nullptr); obj;
       obj = hwloc_get_next_obj_by_type(topo, HWLOC_OBJ_PU, obj)) {
    Pu pu;
    pu.os_index = static_cast<int>(obj->os_index);
    pu.node = hwloc_bitmap_first(obj->nodeset);
    pu.allowed = hwloc_bitmap_isset(allowed.get(), obj->os_index);
    // Machines without Core objects (some VMs, "pack:1 pu:4"): each PU is a core.
    hwloc_obj_t core = hwloc_get_ancestor_obj_by_type(topo, HWLOC_OBJ_CORE, obj);
    auto [it, fresh] = core_of.try_emplace(core ? core : obj, static_cast<int>(t.cores.size()));
    if (fresh) {
      Core c;
      c.index = core ? static_cast<int>(core->logical_index) : synthetic_core++;
      c.package = package_of(topo, obj->cpuset);
      c.node = pu.node;
      t.cores.push_back(std::move(c));
    }
    pu.core = it->second;
    pu.smt_rank = static_cast<int>(t.cores[pu.core].pus.size());
    t.cores[pu.core].pus.push_back(pu.os_index);
    for (auto& node : t.nodes)
      if (node.os_index == pu.node) node.pus.push_back(pu.os_index);
    t.pus.push_back(pu);
  }

  choose_memory_nodes(topo, t);
  read_nics(topo, t);
  return t;
}

}  // namespace pp::numa
