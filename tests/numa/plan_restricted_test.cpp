// tests/numa/plan_restricted_test.cpp -- every policy when the process may use
// only part of the machine (as under taskset or a cgroup cpuset): PUs 4-11 of
// node 0 (cores 2-5), all of node 2 (32-47), nothing of nodes 1 and 3.
#include <doctest/doctest.h>

#include "helpers.h"

using namespace pp::numa;
using namespace pp::numa::test;

namespace {
Topology restricted() {
  auto source = Source::synthetic("pack:2 numa:2 core:8 pu:2");
  source.allowed_cpus = "4-11,32-47";
  return load(source);
}
}  // namespace

TEST_SUITE("restricted CPU set" * doctest::skip(!have_hwloc)) {
  TEST_CASE("the machine stays whole; only the allowed PUs change") {
    auto t = restricted();
    CHECK(t.pus.size() == 64);
    CHECK(t.allowed_pus() == cat(seq(4, 8), seq(32, 16)));
    CHECK_FALSE(t.find_pu(0)->allowed);
    CHECK(t.find_pu(4)->allowed);
  }

  TEST_CASE("compact uses only allowed PUs") {
    auto t = restricted();
    auto p = plan(t, "compact");
    CHECK(cpus(p) == cat(seq(4, 8), seq(32, 16)));
    CHECK(nodes(p) == cat(std::vector<int>(8, 0), std::vector<int>(16, 2)));
  }

  TEST_CASE("scatter alternates over the nodes that have allowed PUs") {
    auto t = restricted();
    auto p = plan(t, "scatter");
    CHECK(cpus(p) == std::vector<int>{4, 32, 6, 34, 8, 36, 10, 38, 40, 42, 44, 46,
                                      5, 33, 7, 35, 9, 37, 11, 39, 41, 43, 45, 47});
  }

  TEST_CASE("node:K uses the allowed part of node K, and refuses an empty node") {
    auto t = restricted();
    CHECK(cpus(plan(t, "node:0")) == std::vector<int>{4, 6, 8, 10, 5, 7, 9, 11});
    CHECK(plan(t, "node:2").slots.size() == 16);
    CHECK(plan_error(t, "node:1") ==
          "policy 'node:1': none of node 1's CPUs (16-31) is in this process's allowed set "
          "(4-11,32-47); check taskset and the cgroup's cpuset");
    CHECK(plan_error(t, "node:0", 9)
              .starts_with("cannot place 9 workers on node 0: only 8 allowed PUs (4-11)"));
  }

  TEST_CASE("a CPU list may only name allowed CPUs") {
    auto t = restricted();
    CHECK(cpus(plan(t, "4,32")) == std::vector<int>{4, 32});
    CHECK(plan_error(t, "2-5") ==
          "policy '2-5': CPU 2 is outside this process's allowed CPUs (4-11,32-47); check "
          "taskset and the cgroup's cpuset");
  }

  TEST_CASE("worker counts are bounded by the allowed PUs, not the machine's") {
    auto t = restricted();
    CHECK(plan(t, "compact", 24).slots.size() == 24);
    CHECK(plan_error(t, "compact", 25)
              .starts_with(
                  "cannot place 25 workers on policy 'compact': only 24 allowed PUs (4-11,32-47)"));
    CHECK(plan_error(t, "scatter", 25).starts_with("cannot place 25 workers"));
    CHECK(plan(t, "none").slots.size() == 24);
    CHECK(plan(t, "none", 64).slots.size() == 64);
  }

  TEST_CASE("nothing allowed is an error for every pinned policy") {
    auto source = Source::synthetic("pack:1 numa:1 core:2 pu:1");
    source.allowed_cpus = "7";
    auto t = load(source);
    CHECK(plan_error(t, "compact") == "this process may not run on any CPU of this machine");
    CHECK(plan_error(t, "scatter") == "this process may not run on any CPU of this machine");
  }
}
