// numa/topology_fallback.cpp -- Topology::load without hwloc: the host's allowed
// CPUs only, each its own core, NUMA layout unknown. Plans are unpinned (plan.cpp).
#include <sched.h>

#include <fmt/format.h>

#include "numa/topology.h"

namespace pp::numa {

std::optional<Topology> Topology::load(const Source& source, std::string& error) {
  if (source.kind != Source::Kind::host || !source.allowed_cpus.empty()) {
    error =
        "this build has no hwloc (meson -Dnuma=disabled or libhwloc-dev missing): only the "
        "host's own topology can be read";
    return std::nullopt;
  }
  Topology t;
  t.origin = "this host, without hwloc";
  t.packages.push_back({0, {}});
  cpu_set_t set;
  CPU_ZERO(&set);
  if (sched_getaffinity(0, sizeof set, &set) != 0) CPU_SET(0, &set);
  for (int cpu = 0; cpu < CPU_SETSIZE; ++cpu) {
    if (!CPU_ISSET(cpu, &set)) continue;
    int core = static_cast<int>(t.cores.size());
    t.cores.push_back({core, 0, -1, {cpu}});
    t.pus.push_back({cpu, core, -1, 0, true});
  }
  return t;
}

}  // namespace pp::numa
