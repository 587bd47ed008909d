// numa/plan.h -- which PU each worker runs on and which node its memory comes from.
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "core/placement.h"
#include "numa/policy.h"
#include "numa/topology.h"

namespace pp::numa {

/// The placement of every worker: hand `slots` to the worker pool in core/, and
/// call bind_current_thread (numa/bind.h) with each slot on its worker's thread.
struct Plan {
  std::string policy;                 // canonical policy name, see Policy::name()
  std::vector<pp::WorkerSlot> slots;  // one per worker; all -1 when unpinned
  /// True when at least one worker is pinned to a PU.
  bool pinned() const;
};

/// Maps `workers` workers (0: one per allowed PU, or per listed CPU for a CPU
/// list) onto `topology` following `policy`. Use it once at start-up, on
/// Topology::load(Source::host()). Returns nullopt with `error` set when the
/// policy cannot be met: a node that does not exist or has no allowed CPU, a CPU
/// that does not exist or is outside the allowed set, or more workers than the
/// policy's PUs.
///
/// Pinned policies never put two workers on one PU: in a shared-nothing runtime
/// each worker gets an equal share of the connections, so two workers sharing a
/// PU run at half speed and set the tail latency for everyone. Asking for more
/// workers than PUs is therefore an error that points to `none`, which leaves the
/// balancing to the kernel.
///
/// In the fallback build (no hwloc) every plan is unpinned, and the first call
/// says so once on stderr.
std::optional<Plan> make_plan(const Topology& topology, const Policy& policy, int workers,
                              std::string& error);

/// make_plan for a policy string (parse_policy's errors included).
std::optional<Plan> make_plan(const Topology& topology, std::string_view policy, int workers,
                              std::string& error);

}  // namespace pp::numa
