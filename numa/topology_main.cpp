// numa/topology_main.cpp -- pyparallel-topology: prints the machine and the worker
// plan that pyparallel would use, for this host or for any machine hwloc can fake.
//
//   pyparallel-topology [--policy P] [--workers N] [--synthetic DESC | --xml FILE]
//                       [--allowed CPUS]
//
// Exit status: 0 printed; 1 the topology could not be read; 2 bad usage or a
// policy this machine cannot meet (the message says why).
#include <cstdio>
#include <cstdlib>
#include <optional>
#include <string>
#include <string_view>

#include <fmt/format.h>

#include "numa/describe.h"
#include "numa/options.h"
#include "numa/plan.h"
#include "numa/topology.h"

namespace {

constexpr std::string_view usage =
    "usage: pyparallel-topology [--policy P] [--workers N] [--synthetic DESC | --xml FILE]\n"
    "                           [--allowed CPUS]\n"
    "  --policy P        compact, scatter, node:K, a CPU list (0-3,8) or none\n"
    "                    (default: $PYPARALLEL_NUMA_POLICY, else the build's numa_policy)\n"
    "  --workers N       worker count, 0 = one per allowed PU\n"
    "                    (default: $PYPARALLEL_WORKERS, else the build's workers option)\n"
    "  --synthetic DESC  plan for an hwloc synthetic machine, e.g. \"pack:2 numa:2 core:8 pu:2\"\n"
    "  --xml FILE        plan for a machine saved with lstopo --of xml\n"
    "  --allowed CPUS    pretend only these CPUs are allowed (like taskset -c)\n";

int fail(int status, std::string_view message) {
  fmt::print(stderr, "pyparallel-topology: {}\n", message);
  return status;
}

}  // namespace

int main(int argc, char** argv) {
  using namespace pp::numa;
  std::optional<std::string_view> policy_flag, workers_flag;
  Source source = Source::host();
  std::string allowed;
  for (int i = 1; i < argc; ++i) {
    std::string_view arg = argv[i];
    if (arg == "--help" || arg == "-h") {
      fmt::print("{}", usage);
      return 0;
    }
    if (i + 1 >= argc) return fail(2, fmt::format("{} needs a value\n{}", arg, usage));
    std::string_view value = argv[++i];
    if (arg == "--policy")
      policy_flag = value;
    else if (arg == "--workers")
      workers_flag = value;
    else if (arg == "--synthetic")
      source = Source::synthetic(std::string(value));
    else if (arg == "--xml")
      source = Source::xml(std::string(value));
    else if (arg == "--allowed")
      allowed = value;
    else
      return fail(2, fmt::format("unknown option '{}'\n{}", arg, usage));
  }
  source.allowed_cpus = allowed;

  std::string error;
  auto policy =
      resolve_policy(policy_flag, std::getenv(policy_env), build_default_policy, "--policy");
  auto workers = resolve_workers(workers_flag, std::getenv(workers_env), error,
                                 build_default_workers, "--workers");
  if (!workers) return fail(2, error);
  auto topology = Topology::load(source, error);
  if (!topology) return fail(1, error);
  auto plan = make_plan(*topology, policy.value, workers->value, error);
  if (!plan) {
    fmt::print("{}", describe_machine(*topology));
    return fail(2, fmt::format("{} (policy from {})", error, policy.origin));
  }
  fmt::print("{}", describe(*topology, *plan));
  return 0;
}
