// numa/plan.cpp -- see plan.h.
#include "numa/plan.h"

#include <algorithm>
#include <mutex>

#include <fmt/format.h>

#include "core/log.h"
#include "numa/cpulist.h"

namespace pp::numa {

namespace {

// The allowed PUs of one node, grouped by core (each core's PUs in SMT order).
struct NodeCores {
  int node = -1;
  int package = -1;
  std::vector<std::vector<const Pu*>> cores;
};

// Nodes in the order their first PU appears in hwloc's logical order, each with
// its allowed PUs grouped by core. Nodes without an allowed PU are left out.
std::vector<NodeCores> group_allowed(const Topology& t) {
  std::vector<NodeCores> groups;
  std::vector<int> core_slot(t.cores.size(), -1);  // core -> position in its group
  for (const Pu& pu : t.pus) {
    if (!pu.allowed) continue;
    auto it = std::find_if(groups.begin(), groups.end(),
                           [&](const NodeCores& g) { return g.node == pu.node; });
    if (it == groups.end()) {
      const NumaNode* node = t.find_node(pu.node);
      groups.push_back({pu.node, node ? node->package : -1, {}});
      it = groups.end() - 1;
    }
    int& slot = core_slot[pu.core];
    if (slot < 0) {
      slot = static_cast<int>(it->cores.size());
      it->cores.emplace_back();
    }
    it->cores[slot].push_back(&pu);
  }
  return groups;
}

// Cores first, SMT siblings last: the r-th PU of every core before any (r+1)-th.
std::vector<const Pu*> spread_over_cores(const NodeCores& group) {
  std::vector<const Pu*> order;
  for (std::size_t rank = 0;; ++rank) {
    std::size_t before = order.size();
    for (const auto& core : group.cores)
      if (rank < core.size()) order.push_back(core[rank]);
    if (order.size() == before) return order;
  }
}

std::vector<const Pu*> compact_order(const std::vector<NodeCores>& groups) {
  std::vector<const Pu*> order;
  for (const auto& group : groups)
    for (const auto& core : group.cores) order.insert(order.end(), core.begin(), core.end());
  return order;
}

// A node's cores reordered to take packages in turn. Only matters when one node
// spans packages: two sockets with memory interleaving on (BIOS "node
// interleaving"), or a VM that hides NUMA from its guest.
NodeCores alternate_packages(const Topology& t, const NodeCores& group) {
  std::vector<int> package_ids;
  std::vector<std::vector<const std::vector<const Pu*>*>> by_package;
  for (const auto& core : group.cores) {
    int package = t.cores[core.front()->core].package;
    auto it = std::find(package_ids.begin(), package_ids.end(), package);
    if (it == package_ids.end()) {
      package_ids.push_back(package);
      by_package.emplace_back();
      it = package_ids.end() - 1;
    }
    by_package[it - package_ids.begin()].push_back(&core);
  }
  NodeCores out{group.node, group.package, {}};
  for (std::size_t i = 0; out.cores.size() < group.cores.size(); ++i)
    for (const auto& package : by_package)
      if (i < package.size()) out.cores.push_back(*package[i]);
  return out;
}

// Round-robin over nodes, taking packages in turn so that consecutive workers land
// on different sockets (2 packages x 2 nodes: 0, 2, 1, 3), then over each node's
// cores, and only then over SMT siblings.
std::vector<const Pu*> scatter_order(const Topology& t, std::vector<NodeCores> groups) {
  for (auto& group : groups) group = alternate_packages(t, group);
  std::vector<std::vector<const NodeCores*>> by_package;
  std::vector<int> package_ids;
  for (const auto& group : groups) {
    auto it = std::find(package_ids.begin(), package_ids.end(), group.package);
    if (it == package_ids.end()) {
      package_ids.push_back(group.package);
      by_package.emplace_back();
      it = package_ids.end() - 1;
    }
    by_package[it - package_ids.begin()].push_back(&group);
  }
  std::vector<const NodeCores*> nodes;
  for (std::size_t i = 0; nodes.size() < groups.size(); ++i)
    for (const auto& package : by_package)
      if (i < package.size()) nodes.push_back(package[i]);

  std::size_t max_cores = 0;
  for (const auto& group : groups) max_cores = std::max(max_cores, group.cores.size());
  std::vector<const Pu*> order;
  for (std::size_t rank = 0;; ++rank) {
    std::size_t before = order.size();
    for (std::size_t core = 0; core < max_cores; ++core)
      for (const NodeCores* node : nodes)
        if (core < node->cores.size() && rank < node->cores[core].size())
          order.push_back(node->cores[core][rank]);
    if (order.size() == before) return order;
  }
}

std::vector<int> os_indexes(const std::vector<const Pu*>& pus) {
  std::vector<int> out;
  for (const Pu* pu : pus) out.push_back(pu->os_index);
  return out;
}

std::string node_list(const Topology& t) {
  std::vector<int> ids;
  for (const auto& node : t.nodes) ids.push_back(node.os_index);
  return ids.empty() ? "none" : format_cpu_list(ids);
}

pp::WorkerSlot slot_for(const Topology& t, const Pu& pu) {
  const NumaNode* node = t.find_node(pu.node);
  return {pu.os_index, t.cores[pu.core].index, node ? node->memory_node : -1};
}

std::string too_many(std::string_view what, std::size_t available, std::vector<int> pus,
                     int workers) {
  std::sort(pus.begin(), pus.end());
  return fmt::format(
      "cannot place {} workers on {}: only {} allowed PU{} ({}); pinned workers never share "
      "a PU, so ask for at most {} workers, or use policy 'none' to let the kernel share them",
      workers, what, available, available == 1 ? "" : "s", format_cpu_list(pus), available);
}

std::optional<std::vector<const Pu*>> pick_pus(const Topology& t, const Policy& policy, int workers,
                                               std::string& error) {
  auto groups = group_allowed(t);
  std::vector<const Pu*> order;
  std::string what;
  switch (policy.kind) {
    case Policy::Kind::compact:
    case Policy::Kind::scatter:
      order =
          policy.kind == Policy::Kind::compact ? compact_order(groups) : scatter_order(t, groups);
      what = fmt::format("policy '{}'", policy.name());
      if (order.empty()) {
        error = "this process may not run on any CPU of this machine";
        return std::nullopt;
      }
      break;
    case Policy::Kind::node: {
      const NumaNode* node = t.find_node(policy.node);
      if (!node) {
        error = fmt::format(
            "policy 'node:{}': NUMA node {} does not exist; this machine has {} "
            "node{} ({})",
            policy.node, policy.node, t.nodes.size(), t.nodes.size() == 1 ? "" : "s", node_list(t));
        return std::nullopt;
      }
      if (node->pus.empty()) {
        error = fmt::format(
            "policy 'node:{}': node {} has no CPUs (memory only); pick the node "
            "whose CPUs should run the workers",
            policy.node, policy.node);
        return std::nullopt;
      }
      auto it = std::find_if(groups.begin(), groups.end(),
                             [&](const NodeCores& g) { return g.node == policy.node; });
      if (it == groups.end()) {
        error = fmt::format(
            "policy 'node:{}': none of node {}'s CPUs ({}) is in this process's "
            "allowed set ({}); check taskset and the cgroup's cpuset",
            policy.node, policy.node, format_cpu_list(node->pus), format_cpu_list(t.allowed_pus()));
        return std::nullopt;
      }
      order = spread_over_cores(*it);
      what = fmt::format("node {}", policy.node);
      break;
    }
    case Policy::Kind::cpus:
      for (int cpu : policy.cpus) {
        const Pu* pu = t.find_pu(cpu);
        if (!pu) {
          std::vector<int> all;
          for (const auto& p : t.pus) all.push_back(p.os_index);
          std::sort(all.begin(), all.end());
          error = fmt::format("policy '{}': CPU {} does not exist; this machine's CPUs are {}",
                              policy.name(), cpu, format_cpu_list(all));
          return std::nullopt;
        }
        if (!pu->allowed) {
          error = fmt::format(
              "policy '{}': CPU {} is outside this process's allowed CPUs ({}); "
              "check taskset and the cgroup's cpuset",
              policy.name(), cpu, format_cpu_list(t.allowed_pus()));
          return std::nullopt;
        }
        order.push_back(pu);
      }
      what = fmt::format("CPU list '{}'", policy.name());
      break;
    case Policy::Kind::none:
      return order;  // not reached: make_plan handles none
  }
  if (workers == 0) return order;
  if (static_cast<std::size_t>(workers) > order.size()) {
    error = too_many(what, order.size(), os_indexes(order), workers);
    return std::nullopt;
  }
  order.resize(workers);
  return order;
}

}  // namespace

bool Plan::pinned() const {
  return std::any_of(slots.begin(), slots.end(), [](const auto& s) { return s.cpu >= 0; });
}

std::optional<Plan> make_plan(const Topology& topology, const Policy& policy, int workers,
                              std::string& error) {
  if (workers < 0) {
    error = fmt::format("bad worker count {}: expected 0 (one per allowed CPU) or more", workers);
    return std::nullopt;
  }
  Plan plan;
  plan.policy = policy.name();
  bool unpinned = policy.kind == Policy::Kind::none;
  // can_bind: a topology that can pin without hwloc (Windows' processor-group API,
  // platform/win32/numa_topology.cpp).
  if (!have_hwloc && !topology.can_bind && !unpinned) {
    // The fallback build cannot pin: run unpinned rather than refuse to start.
    static std::once_flag said;
    std::call_once(said, [&] {
      pp::log_warning(
          "built without hwloc (meson -Dnuma=disabled or no libhwloc-dev): policy '{}' "
          "ignored, workers run unpinned",
          policy.name());
    });
    plan.policy = "none";
    unpinned = true;
  }
  if (unpinned) {
    std::size_t count = workers ? workers : std::max<std::size_t>(1, topology.allowed_pus().size());
    plan.slots.assign(count, pp::WorkerSlot{});
    return plan;
  }
  auto pus = pick_pus(topology, policy, workers, error);
  if (!pus) return std::nullopt;
  for (const Pu* pu : *pus) plan.slots.push_back(slot_for(topology, *pu));
  return plan;
}

std::optional<Plan> make_plan(const Topology& topology, std::string_view policy, int workers,
                              std::string& error) {
  auto parsed = parse_policy(policy, error);
  if (!parsed) return std::nullopt;
  return make_plan(topology, *parsed, workers, error);
}

}  // namespace pp::numa
