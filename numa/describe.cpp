// numa/describe.cpp -- see describe.h.
#include "numa/describe.h"

#include <algorithm>

#include <fmt/format.h>

#include "numa/cpulist.h"

namespace pp::numa {

namespace {

std::string bytes(std::uint64_t n) {
  constexpr double gib = 1024.0 * 1024 * 1024;
  if (n >= (1ull << 30)) return fmt::format("{:.1f} GiB", n / gib);
  return fmt::format("{} MiB", n >> 20);
}

std::string plural(std::size_t n, std::string_view word) {
  return fmt::format("{} {}{}", n, word, n == 1 ? "" : "s");
}

void describe_node(const Topology& t, const NumaNode& node, std::string& out) {
  std::vector<int> cores;
  std::vector<int> allowed;
  for (int os : node.pus) {
    const Pu* pu = t.find_pu(os);
    if (!pu) continue;
    int core = t.cores[pu->core].index;
    if (std::find(cores.begin(), cores.end(), core) == cores.end()) cores.push_back(core);
    if (pu->allowed) allowed.push_back(os);
  }
  out += fmt::format("    node {}: ", node.os_index);
  if (node.has_memory())
    out += bytes(node.memory_bytes);
  else
    out += "no memory";
  if (!node.allowed) out += " (memory not allowed for this process)";
  if (node.memory_node != node.os_index && node.memory_node >= 0)
    out += fmt::format(", its workers' memory comes from node {}", node.memory_node);
  if (node.pus.empty()) {
    out += ", no CPUs\n";
    return;
  }
  out += fmt::format(", cores {}, PUs {}", format_cpu_list(cores), format_cpu_list(node.pus));
  if (allowed.size() != node.pus.size())
    out += allowed.empty() ? " (none allowed)"
                           : fmt::format(" (allowed: {})", format_cpu_list(allowed));
  out += '\n';
}

}  // namespace

std::string describe_machine(const Topology& t) {
  std::string out = fmt::format("Machine ({})\n", t.origin);
  out += fmt::format("  {}, {}, {}, {}; this process may use {}: {}\n",
                     plural(t.packages.size(), "package"), plural(t.nodes.size(), "NUMA node"),
                     plural(t.cores.size(), "core"), plural(t.pus.size(), "PU"),
                     plural(t.allowed_pus().size(), "PU"), format_cpu_list(t.allowed_pus()));
  if (!have_hwloc && !t.can_bind)
    out += "  built without hwloc: NUMA layout unknown, workers run unpinned\n";
  for (const auto& package : t.packages) {
    out += fmt::format("  package {}\n", package.index);
    for (int id : package.nodes)
      if (const NumaNode* node = t.find_node(id)) describe_node(t, *node, out);
  }
  bool spanning = false;
  for (const auto& node : t.nodes)
    if (node.package < 0) {
      if (!spanning) out += "  nodes spanning several packages\n";
      spanning = true;
      describe_node(t, node, out);
    }
  for (const auto& nic : t.nics)
    out += fmt::format("  NIC {}{}: {}\n", nic.name,
                       nic.pci.empty() ? "" : fmt::format(" (PCI {})", nic.pci), nic.locality);
  if (t.nics.empty() && t.can_bind) out += "  no network device known to hwloc\n";
  return out;
}

std::string describe(const Topology& t, const Plan& plan) {
  std::string out = describe_machine(t);
  out += fmt::format("Plan: policy {}, {}{}\n", plan.policy, plural(plan.slots.size(), "worker"),
                     plan.pinned() ? "" : ", unpinned (the kernel places threads and memory)");
  out +=
      fmt::format("  {:>6}  {:>4}  {:>4}  {:>4}  {}\n", "worker", "PU", "core", "node", "memory");
  auto cell = [](int v) { return v < 0 ? std::string("-") : fmt::format("{}", v); };
  for (std::size_t i = 0; i < plan.slots.size(); ++i) {
    const auto& slot = plan.slots[i];
    const Pu* pu = slot.cpu >= 0 ? t.find_pu(slot.cpu) : nullptr;
    int home = pu ? pu->node : -1;
    std::string memory;
    if (slot.node < 0)
      memory = "first touch, wherever the kernel runs the thread";
    else if (const NumaNode* node = t.find_node(home); node && home != slot.node)
      memory = fmt::format("node {} (node {} {})", slot.node, home,
                           node->has_memory() ? "is not allowed" : "has no memory");
    else
      memory = fmt::format("node {}", slot.node);
    out += fmt::format("  {:>6}  {:>4}  {:>4}  {:>4}  {}\n", i, cell(slot.cpu), cell(slot.core),
                       cell(home), memory);
  }
  return out;
}

}  // namespace pp::numa
