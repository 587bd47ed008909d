// tests/numa/host_binding_test.cpp -- on the real host: threads bound per the plan
// report that affinity (sched_getaffinity), memory from alloc_local lives on the
// slot's node (hwloc_get_area_memlocation), and a taskset-style affinity limit
// shrinks what plans may use.
#include <sched.h>

#include <cstring>
#include <thread>

#include <doctest/doctest.h>
#include <fmt/format.h>

#include "helpers.h"
#include "numa/bind.h"

using namespace pp::numa;
using namespace pp::numa::test;

namespace {

std::vector<int> affinity_of_this_thread() {
  cpu_set_t set;
  CPU_ZERO(&set);
  REQUIRE(sched_getaffinity(0, sizeof set, &set) == 0);
  std::vector<int> out;
  for (int cpu = 0; cpu < CPU_SETSIZE; ++cpu)
    if (CPU_ISSET(cpu, &set)) out.push_back(cpu);
  return out;
}

struct WorkerResult {
  bool bound = false;
  std::string error;
  std::vector<int> affinity;
  int memory_node = -2;
};

// Runs one thread per slot, the way core/'s pool will: bind first, then allocate.
std::vector<WorkerResult> run_workers(const Plan& plan) {
  std::vector<WorkerResult> results(plan.slots.size());
  std::vector<std::thread> threads;
  for (std::size_t i = 0; i < plan.slots.size(); ++i)
    threads.emplace_back([&, i] {
      auto& r = results[i];
      r.bound = bind_current_thread(plan.slots[i], r.error);
      r.affinity = affinity_of_this_thread();
      constexpr std::size_t size = 4 << 20;
      void* buffer = alloc_local(size, plan.slots[i].node);
      if (!buffer) return;
      std::memset(buffer, 1, size);  // pages exist only once touched
      r.memory_node = memory_node_of(buffer, size);
      free_local(buffer, size);
    });
  for (auto& t : threads) t.join();
  return results;
}

}  // namespace

TEST_SUITE("real host" * doctest::skip(!have_hwloc)) {
  TEST_CASE("the host's allowed PUs are the process's affinity") {
    auto t = load(Source::host());
    CHECK(t.can_bind);
    CHECK(!t.nodes.empty());
    CHECK(t.allowed_pus() == affinity_of_this_thread());
  }

  TEST_CASE("pinned workers run where the plan says, with memory on their node") {
    auto t = load(Source::host());
    for (auto policy : {"compact", "scatter"}) {
      auto p = plan(t, policy);
      REQUIRE(p.slots.size() == t.allowed_pus().size());
      auto results = run_workers(p);
      for (std::size_t i = 0; i < results.size(); ++i) {
        INFO(policy, " worker ", i, ": ", results[i].error);
        CHECK(results[i].bound);
        CHECK(results[i].affinity == std::vector<int>{p.slots[i].cpu});
        CHECK(results[i].memory_node == p.slots[i].node);
      }
    }
  }

  TEST_CASE("node:K and CPU-list plans bind too") {
    auto t = load(Source::host());
    auto node = plan(t, fmt::format("node:{}", t.nodes.front().os_index), 1);
    auto last = t.allowed_pus().back();
    auto list = plan(t, fmt::format("{}", last));
    for (const auto& p : {node, list}) {
      auto results = run_workers(p);
      REQUIRE(results.size() == 1);
      CHECK(results[0].bound);
      CHECK(results[0].affinity == std::vector<int>{p.slots[0].cpu});
      CHECK(results[0].memory_node == p.slots[0].node);
    }
    CHECK(list.slots[0].cpu == last);
  }

  TEST_CASE("unpinned workers keep the process's affinity") {
    auto t = load(Source::host());
    auto results = run_workers(plan(t, "none"));
    for (const auto& r : results) {
      CHECK(r.bound);
      CHECK(r.affinity == t.allowed_pus());
      CHECK(r.memory_node >= 0);  // first touch put it somewhere real
    }
  }

  TEST_CASE("a taskset-style limit is respected") {
    auto before = affinity_of_this_thread();
    if (before.size() < 2) return;  // nothing to narrow on a 1-PU host
    cpu_set_t one;
    CPU_ZERO(&one);
    CPU_SET(before.back(), &one);
    REQUIRE(sched_setaffinity(0, sizeof one, &one) == 0);
    std::string error;
    auto t = Topology::load(Source::host(), error);
    cpu_set_t all;
    CPU_ZERO(&all);
    for (int cpu : before) CPU_SET(cpu, &all);
    REQUIRE(sched_setaffinity(0, sizeof all, &all) == 0);  // restore before any REQUIRE
    REQUIRE(t);
    CHECK(t->allowed_pus() == std::vector<int>{before.back()});
    CHECK(cpus(plan(*t, "compact")) == std::vector<int>{before.back()});
    CHECK(plan_error(*t, fmt::format("{}", before.front()))
              .find("is outside this process's "
                    "allowed CPUs") != std::string::npos);
    CHECK(plan_error(*t, "compact", 2).starts_with("cannot place 2 workers"));
  }
}

TEST_CASE("without hwloc every plan is unpinned" * doctest::skip(have_hwloc)) {
  auto t = load(Source::host());
  auto p = plan(t, "compact");
  CHECK(p.policy == "none");
  CHECK_FALSE(p.pinned());
  CHECK(p.slots.size() == t.allowed_pus().size());
  std::string error;
  CHECK(bind_current_thread(p.slots[0], error));
  CHECK_FALSE(Topology::load(Source::synthetic("pack:1 pu:2"), error));
}
