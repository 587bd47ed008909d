// numa/describe.h -- the text of `pyparallel --topology` and `pyparallel-topology`.
#pragma once

#include <string>

#include "numa/plan.h"
#include "numa/topology.h"

namespace pp::numa {

/// The machine as hwloc sees it (packages, NUMA nodes with their memory, cores,
/// PUs, which PUs this process may use, NIC locality) followed by one row per
/// worker: its PU, core, node and where its memory lives. Use it for --topology
/// and in start-up diagnostics; the text is for people, not for parsing.
std::string describe(const Topology& topology, const Plan& plan);

/// Only the machine part of describe(), for when no plan could be made.
std::string describe_machine(const Topology& topology);

}  // namespace pp::numa
