// tests/numa/helpers.h -- shared by the numa tests: loading fixtures and looking
// at plans as plain vectors.
#pragma once

#include <string>
#include <vector>

#include <doctest/doctest.h>

#include "numa/plan.h"
#include "numa/topology.h"

namespace pp::numa::test {

/// A file under tests/numa/.
inline std::string fixture(const std::string& name) {
  return std::string(PP_NUMA_TEST_DIR) + "/" + name;
}

/// Loads `source` or fails the test with hwloc's reason.
inline Topology load(const Source& source) {
  std::string error;
  auto topology = Topology::load(source, error);
  INFO(error);
  REQUIRE(topology.has_value());
  return *topology;
}

/// The plan, or fails the test with make_plan's message.
inline Plan plan(const Topology& t, std::string_view policy, int workers = 0) {
  std::string error;
  auto p = make_plan(t, policy, workers, error);
  INFO(policy, " -> ", error);
  REQUIRE(p.has_value());
  return *p;
}

/// make_plan's error for a policy that must fail (empty when it did not fail).
inline std::string plan_error(const Topology& t, std::string_view policy, int workers = 0) {
  std::string error;
  auto p = make_plan(t, policy, workers, error);
  return p ? std::string() : error;
}

inline std::vector<int> cpus(const Plan& p) {
  std::vector<int> out;
  for (const auto& s : p.slots) out.push_back(s.cpu);
  return out;
}
inline std::vector<int> cores(const Plan& p) {
  std::vector<int> out;
  for (const auto& s : p.slots) out.push_back(s.core);
  return out;
}
inline std::vector<int> nodes(const Plan& p) {
  std::vector<int> out;
  for (const auto& s : p.slots) out.push_back(s.node);
  return out;
}

/// {first, first+step, ...}, `count` values.
inline std::vector<int> seq(int first, int count, int step = 1) {
  std::vector<int> out;
  for (int i = 0; i < count; ++i) out.push_back(first + i * step);
  return out;
}

/// v[from, to).
inline std::vector<int> slice(const std::vector<int>& v, std::size_t from, std::size_t to) {
  return std::vector<int>(v.begin() + from, v.begin() + to);
}

/// a followed by b.
inline std::vector<int> cat(std::vector<int> a, const std::vector<int>& b) {
  a.insert(a.end(), b.begin(), b.end());
  return a;
}

}  // namespace pp::numa::test
