// numa/placement.cpp
#include "numa/placement.h"

#include <algorithm>
#include <thread>

#include "core/log.h"
#include "numa/plan.h"
#include "numa/topology.h"

namespace pp::numa {

std::optional<Placement> place_workers(std::string_view policy, bool policy_given, unsigned workers,
                                       std::string& error) {
  Placement placement;
  std::string why;
  auto topology = Topology::load(Source::host(), why);
  placement.workers = workers;
  if (placement.workers == 0)
    placement.workers =
        topology ? static_cast<unsigned>(std::max<std::size_t>(1, topology->allowed_pus().size()))
                 : std::max(1u, std::thread::hardware_concurrency());
  if (!topology) return placement;  // no topology to pin by: the kernel places them
  auto plan = make_plan(*topology, policy, static_cast<int>(placement.workers), why);
  if (plan) {
    placement.slots = std::move(plan->slots);
  } else if (policy_given) {
    error = std::move(why);
    return std::nullopt;
  } else {
    pp::log_warning("numa: {}; workers run unpinned", why);
  }
  return placement;
}

}  // namespace pp::numa
