// numa/placement.h -- the start-up step every server on the engine takes: how many
// workers, and where each runs.
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "core/placement.h"

namespace pp::numa {

/// The workers of a server and their places.
struct Placement {
  unsigned workers = 0;               // resolved: never 0
  std::vector<pp::WorkerSlot> slots;  // one per worker; empty when they run unpinned
};

/// Plans `workers` workers (0: one per allowed CPU) on this host under `policy`. Use it
/// once at start-up, for the C++ server and the Python runtime alike. A policy someone
/// asked for (`policy_given`) that cannot be met is an error: nullopt, with `error` set.
/// The build's default policy is only a preference: when it cannot be met (more workers
/// than CPUs: a test, an I/O-bound service) the workers run unpinned, and a line says so.
std::optional<Placement> place_workers(std::string_view policy, bool policy_given, unsigned workers,
                                       std::string& error);

}  // namespace pp::numa
