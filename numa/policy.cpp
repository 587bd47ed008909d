// numa/policy.cpp -- see policy.h.
#include "numa/policy.h"

#include <charconv>

#include <fmt/format.h>

#include "numa/cpulist.h"

namespace pp::numa {

std::string Policy::name() const {
  switch (kind) {
    case Kind::compact:
      return "compact";
    case Kind::scatter:
      return "scatter";
    case Kind::node:
      return fmt::format("node:{}", node);
    case Kind::cpus:
      return format_cpu_list(cpus);
    case Kind::none:
      return "none";
  }
  return "?";
}

std::optional<Policy> parse_policy(std::string_view text, std::string& error) {
  constexpr std::string_view accepted =
      "expected compact, scatter, node:K, a CPU list such as 0-3,8, or none";
  Policy policy;
  if (text == "compact") return policy;
  if (text == "scatter") {
    policy.kind = Policy::Kind::scatter;
    return policy;
  }
  if (text == "none") {
    policy.kind = Policy::Kind::none;
    return policy;
  }
  if (text.starts_with("node:")) {
    auto digits = text.substr(5);
    int node = -1;
    auto [end, ec] = std::from_chars(digits.data(), digits.data() + digits.size(), node);
    if (digits.empty() || ec != std::errc{} || end != digits.data() + digits.size() || node < 0) {
      error = fmt::format("bad policy '{}': node:K needs a NUMA node number, e.g. node:0", text);
      return std::nullopt;
    }
    policy.kind = Policy::Kind::node;
    policy.node = node;
    return policy;
  }
  // Anything starting with a digit is meant as a CPU list: report its own error.
  if (!text.empty() && text.front() >= '0' && text.front() <= '9') {
    std::string why;
    auto cpus = parse_cpu_list(text, why);
    if (!cpus) {
      error = fmt::format("bad policy '{}': {}", text, why);
      return std::nullopt;
    }
    policy.kind = Policy::Kind::cpus;
    policy.cpus = std::move(*cpus);
    return policy;
  }
  error = fmt::format("unknown policy '{}': {}", text, accepted);
  return std::nullopt;
}

}  // namespace pp::numa
