// interpreter/parallel/topology.h -- `pyparallel --topology`: the machine and the placement plan.
#pragma once

#include <cstdio>

#include "interpreter/parallel/runtime_options.h"

namespace pp {

/// Prints the CPUs this process may use, the completion backends that open here, the
/// machine as hwloc sees it (packages, nodes, cores, PUs, NIC locality) and the plan that
/// `options` produce: one row per worker with its PU, core, node and memory. Returns the
/// process exit status: 0, or 2 when an explicitly requested policy cannot be met.
int print_topology(const RuntimeOptions& options, std::FILE* out);

}  // namespace pp
