// interpreter/parallel/topology.cpp -- `pyparallel --topology`.
#include "interpreter/parallel/topology.h"

#include <fmt/format.h>

#include <string>
#include <vector>

#if defined(__linux__)
#include <sched.h>
#include <unistd.h>
#endif

#include "core/loop.h"
#include "numa/describe.h"
#include "numa/plan.h"
#include "numa/topology.h"

namespace pp {
namespace {

// "0-3,8" for the CPUs in this process's affinity mask ("?" where unknown).
std::string allowed_cpu_list() {
#if defined(__linux__)
  cpu_set_t set;
  if (sched_getaffinity(0, sizeof(set), &set) != 0) return "?";
  std::string text;
  for (int cpu = 0; cpu < CPU_SETSIZE; ++cpu) {
    if (!CPU_ISSET(cpu, &set)) continue;
    int last = cpu;
    while (last + 1 < CPU_SETSIZE && CPU_ISSET(last + 1, &set)) ++last;
    if (!text.empty()) text += ',';
    text += last == cpu ? fmt::format("{}", cpu) : fmt::format("{}-{}", cpu, last);
    cpu = last;
  }
  return text;
#else
  return "?";
#endif
}

}  // namespace

int print_topology(const RuntimeOptions& options, std::FILE* out) {
  unsigned cpus = allowed_cpu_count();
  fmt::print(out, "machine\n");
#if defined(__linux__)
  fmt::print(out, "  cpus online: {}\n", sysconf(_SC_NPROCESSORS_ONLN));
#endif
  fmt::print(out, "  cpus allowed: {} ({})\n", cpus, allowed_cpu_list());
  std::vector<std::string> names;
  for (BackendKind kind : available_backends()) names.emplace_back(to_string(kind));
  fmt::print(out, "  backends available: {}\n",
             names.empty() ? std::string("none") : fmt::format("{}", fmt::join(names, ", ")));

  unsigned workers = options.workers == 0 ? cpus : options.workers;
  fmt::print(out, "options\n");
  fmt::print(out, "  workers: {} ({}{})\n", workers, to_string(options.origin(OptionId::workers)),
             options.workers == 0 ? ", one per allowed cpu" : "");
  fmt::print(out, "  backend: {} ({})\n", to_string(options.backend),
             to_string(options.origin(OptionId::backend)));
  fmt::print(out, "  numa policy: {} ({})\n", options.numa_policy,
             to_string(options.origin(OptionId::numa_policy)));

  // The machine as hwloc sees it and the placement parallel.run() would use.
  std::string error;
  auto topology = numa::Topology::load(numa::Source::host(), error);
  if (!topology) {
    fmt::print(out, "numa: no topology ({}); workers run unpinned\n", error);
    for (unsigned i = 0; i < workers; ++i) fmt::print(out, "  worker {}: unpinned\n", i);
    return 0;
  }
  auto plan = numa::make_plan(*topology, options.numa_policy, static_cast<int>(workers), error);
  if (plan) {
    fmt::print(out, "{}", numa::describe(*topology, *plan));
    return 0;
  }
  fmt::print(out, "{}", numa::describe_machine(*topology));
  if (options.given(OptionId::numa_policy)) {
    // An impossible policy someone asked for is an error, as it is at run().
    fmt::print(stderr, "pyparallel: error: numa policy '{}': {}\n", options.numa_policy, error);
    return 2;
  }
  fmt::print(out, "Plan: {}; the default policy gives way and workers run unpinned\n", error);
  for (unsigned i = 0; i < workers; ++i) fmt::print(out, "  worker {}: unpinned\n", i);
  return 0;
}

}  // namespace pp
