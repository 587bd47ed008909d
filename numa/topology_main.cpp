// numa/topology_main.cpp -- pyparallel-topology: prints the machine and the worker
// plan that pyparallel would use, for this host or for any machine hwloc can fake.
//
//   pyparallel-topology [--numa-policy P] [--workers N] [--synthetic DESC | --xml FILE]
//                       [--allowed CPUS]
//
// Exit status: 0 printed; 1 the topology could not be read; 2 bad usage or a
// policy this machine cannot meet (the message says why).
#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>

#include <fmt/format.h>

#include "core/options.h"
#include "numa/describe.h"
#include "numa/plan.h"
#include "numa/topology.h"

namespace {

constexpr std::string_view usage =
    "usage: pyparallel-topology [--numa-policy P] [--workers N] [--synthetic DESC | --xml FILE]\n"
    "                           [--allowed CPUS]\n"
    "  --numa-policy P   compact, scatter, node:K, a CPU list (0-3,8) or none; --policy too\n"
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

// The two options a plan depends on, read from the servers' option table (core/options.h)
// so that their variables, syntax and wording are the servers' own. The tool's other
// variables (PYPARALLEL_BACKEND, ...) are not its business: a bad one is not its error.
constexpr pp::OptionId kPlanOptions[] = {pp::OptionId::workers, pp::OptionId::numa_policy};

// Where the policy came from, for "(policy from ...)" after an impossible plan.
std::string policy_origin(const pp::ServerOptions& options) {
  const pp::OptionSpec& spec = pp::option_spec(pp::OptionId::numa_policy);
  switch (options.origin(pp::OptionId::numa_policy)) {
    case pp::OptionOrigin::environment:
      return std::string(spec.environment);
    case pp::OptionOrigin::command_line:
      return std::string(spec.flag);
    default:
      return "build default (meson -Dnuma_policy)";
  }
}

}  // namespace

int main(int argc, char** argv) {
  using namespace pp::numa;
  pp::ServerOptions options = pp::default_server_options();
  std::string error;
  for (pp::OptionId id : kPlanOptions) {
    const pp::OptionSpec& spec = pp::option_spec(id);
    const char* value = std::getenv(std::string(spec.environment).c_str());
    if (!value || !*value) continue;  // empty means unset, as everywhere
    if (!pp::set_option(spec, value, pp::OptionOrigin::environment, options, error))
      return fail(2, fmt::format("{} {}", spec.environment, error));
  }
  Source source = Source::host();
  std::string allowed;
  for (int i = 1; i < argc; ++i) {
    std::string_view arg = argv[i];
    if (arg == "--help" || arg == "-h") {
      fmt::print("{}", usage);
      return 0;
    }
    std::string_view name = arg.substr(0, arg.find('='));
    if (name == "--policy") name = "--numa-policy";  // this tool's older spelling
    const pp::OptionSpec* spec = pp::find_option_flag(name, pp::user_host);
    if (spec && spec->id != pp::OptionId::workers && spec->id != pp::OptionId::numa_policy)
      spec = nullptr;
    if (!spec && name != "--synthetic" && name != "--xml" && name != "--allowed")
      return fail(2, fmt::format("unknown option '{}'\n{}", arg, usage));
    std::string_view value;
    if (!pp::take_flag_value(argc, argv, i, value, error))
      return fail(2, fmt::format("{}\n{}", error, usage));
    if (spec) {
      if (!pp::set_option(*spec, value, pp::OptionOrigin::command_line, options, error))
        return fail(2, fmt::format("{} {}", arg.substr(0, arg.find('=')), error));
    } else if (name == "--synthetic") {
      source = Source::synthetic(std::string(value));
    } else if (name == "--xml") {
      source = Source::xml(std::string(value));
    } else {
      allowed = value;
    }
  }
  source.allowed_cpus = allowed;

  auto topology = Topology::load(source, error);
  if (!topology) return fail(1, error);
  auto plan = make_plan(*topology, options.numa_policy, static_cast<int>(options.workers), error);
  if (!plan) {
    fmt::print("{}", describe_machine(*topology));
    return fail(2, fmt::format("{} (policy from {})", error, policy_origin(options)));
  }
  fmt::print("{}", describe(*topology, *plan));
  return 0;
}
