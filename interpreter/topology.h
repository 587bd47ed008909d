// interpreter/topology.h -- `pyparallel --topology`: the machine and the placement plan.
#pragma once

#include <cstdio>

#include "interpreter/runtime_options.h"

namespace pp {

/// Prints the CPUs this process may use, the completion backends that open here, and the
/// plan (worker count, backend, placement) that `options` produce, to `out`. Returns the
/// process exit status (0). numa/ will supply node/core detail and per-worker PUs; until
/// then workers are listed as unpinned.
int print_topology(const RuntimeOptions& options, std::FILE* out);

}  // namespace pp
