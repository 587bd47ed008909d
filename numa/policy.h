// numa/policy.h -- placement policies as users write them (flags, environment,
// meson's numa_policy option, the Python API's run()).
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace pp::numa {

/// How workers are mapped to PUs.
struct Policy {
  enum class Kind {
    compact,  // fill a node, core by core (SMT siblings together), before the next node
    scatter,  // round-robin over nodes (alternating packages), then cores; SMT siblings last
    node,     // only node `node`: its cores first, SMT siblings last
    cpus,     // exactly the PUs in `cpus`, in the order written
    none,     // no pinning: the kernel schedules workers and places their memory
  };
  Kind kind = Kind::compact;
  int node = -1;          // Kind::node
  std::vector<int> cpus;  // Kind::cpus, OS indexes

  /// The canonical spelling: "compact", "scatter", "node:2", "0-3,8", "none".
  std::string name() const;
};

/// Parses "compact", "scatter", "node:K", a CPU list ("0-3,8") or "none". Use it
/// wherever a policy string enters the program. Returns nullopt with `error` set
/// (quoting the text and listing what is accepted) when it is not a policy.
std::optional<Policy> parse_policy(std::string_view text, std::string& error);

}  // namespace pp::numa
