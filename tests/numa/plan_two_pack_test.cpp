// tests/numa/plan_two_pack_test.cpp -- every policy on a 2-package, 4-node,
// 32-core, 64-PU SMT machine, twice: hwloc's synthetic numbering (siblings 2c and
// 2c+1) and Linux's usual one from an XML file (siblings c and c+32).
#include <algorithm>
#include <set>

#include <doctest/doctest.h>

#include "helpers.h"

using namespace pp::numa;
using namespace pp::numa::test;

namespace {
constexpr const char* two_pack = "pack:2 numa:2 core:8 pu:2";
}

TEST_SUITE("two packages, four nodes, SMT" * doctest::skip(!have_hwloc)) {
  TEST_CASE("the topology is read as hwloc describes it") {
    auto t = load(Source::synthetic(two_pack));
    CHECK(t.packages.size() == 2);
    CHECK(t.nodes.size() == 4);
    CHECK(t.cores.size() == 32);
    CHECK(t.pus.size() == 64);
    CHECK(t.allowed_pus().size() == 64);
    CHECK_FALSE(t.can_bind);
    CHECK(t.packages[0].nodes == std::vector<int>{0, 1});
    CHECK(t.packages[1].nodes == std::vector<int>{2, 3});
    for (const auto& node : t.nodes) {
      CHECK(node.has_memory());
      CHECK(node.memory_node == node.os_index);
      CHECK(node.pus == seq(node.os_index * 16, 16));
    }
    CHECK(t.cores[5].pus == std::vector<int>{10, 11});
    CHECK(t.find_pu(11)->smt_rank == 1);
  }

  TEST_CASE("compact fills node 0 core by core, then node 1, ...") {
    auto t = load(Source::synthetic(two_pack));
    auto p = plan(t, "compact");
    CHECK(p.policy == "compact");
    CHECK(cpus(p) == seq(0, 64));
    for (int i = 0; i < 64; ++i) {
      CHECK(p.slots[i].core == i / 2);
      CHECK(p.slots[i].node == i / 16);
    }
    CHECK(cpus(plan(t, "compact", 5)) == seq(0, 5));
  }

  TEST_CASE("scatter alternates packages, then nodes, then cores; SMT siblings last") {
    auto t = load(Source::synthetic(two_pack));
    auto p = plan(t, "scatter");
    REQUIRE(p.slots.size() == 64);
    // Nodes in the order 0, 2, 1, 3: consecutive workers land on different sockets.
    CHECK(slice(cpus(p), 0, 8) == std::vector<int>{0, 32, 16, 48, 2, 34, 18, 50});
    CHECK(slice(nodes(p), 0, 4) == std::vector<int>{0, 2, 1, 3});
    // The first 32 workers get 32 different cores, and only first siblings.
    auto core_list = slice(cores(p), 0, 32);
    std::set<int> first_cores(core_list.begin(), core_list.end());
    CHECK(first_cores.size() == 32);
    for (int i = 0; i < 32; ++i) CHECK(p.slots[i].cpu % 2 == 0);
    for (int i = 32; i < 64; ++i) CHECK(p.slots[i].cpu % 2 == 1);
    // Every PU used exactly once.
    auto all = cpus(p);
    std::sort(all.begin(), all.end());
    CHECK(all == seq(0, 64));
  }

  TEST_CASE("node:K uses only node K, its cores before their siblings") {
    auto t = load(Source::synthetic(two_pack));
    auto p = plan(t, "node:2");
    CHECK(cpus(p) == cat(seq(32, 8, 2), seq(33, 8, 2)));
    CHECK(nodes(p) == std::vector<int>(16, 2));
    CHECK(cpus(plan(t, "node:2", 3)) == std::vector<int>{32, 34, 36});
  }

  TEST_CASE("a CPU list pins exactly those CPUs, in order") {
    auto t = load(Source::synthetic(two_pack));
    auto p = plan(t, "0-3,40");
    CHECK(cpus(p) == std::vector<int>{0, 1, 2, 3, 40});
    CHECK(cores(p) == std::vector<int>{0, 0, 1, 1, 20});
    CHECK(nodes(p) == std::vector<int>{0, 0, 0, 0, 2});
    CHECK(cpus(plan(t, "0-3,40", 2)) == std::vector<int>{0, 1});
  }

  TEST_CASE("none pins nothing and may oversubscribe") {
    auto t = load(Source::synthetic(two_pack));
    auto p = plan(t, "none");
    CHECK(p.slots.size() == 64);
    CHECK_FALSE(p.pinned());
    for (const auto& s : p.slots) CHECK((s.cpu == -1 && s.core == -1 && s.node == -1));
    CHECK(plan(t, "none", 100).slots.size() == 100);
  }

  TEST_CASE("impossible policies say why") {
    auto t = load(Source::synthetic(two_pack));
    CHECK(plan_error(t, "node:4") ==
          "policy 'node:4': NUMA node 4 does not exist; this machine has 4 nodes (0-3)");
    CHECK(plan_error(t, "0-3,64") ==
          "policy '0-3,64': CPU 64 does not exist; this machine's CPUs are 0-63");
    CHECK(plan_error(t, "compact", 65) ==
          "cannot place 65 workers on policy 'compact': only 64 allowed PUs (0-63); pinned "
          "workers never share a PU, so ask for at most 64 workers, or use policy 'none' to "
          "let the kernel share them");
    CHECK(plan_error(t, "scatter", 65).starts_with("cannot place 65 workers"));
    CHECK(plan_error(t, "node:1", 17)
              .starts_with("cannot place 17 workers on node 1: only 16 allowed PUs (16-31)"));
    CHECK(plan_error(t, "0-3", 5)
              .starts_with("cannot place 5 workers on CPU list '0-3': only 4 allowed PUs (0-3)"));
    CHECK(plan_error(t, "compact", -1) ==
          "bad worker count -1: expected 0 (one per allowed CPU) or more");
    CHECK(plan_error(t, "spread").starts_with("unknown policy 'spread'"));
  }

  TEST_CASE("Linux numbering from XML: siblings are c and c+32") {
    auto t = load(Source::xml(fixture("two_pack_four_node_smt.xml")));
    REQUIRE(t.pus.size() == 64);
    CHECK(t.nodes.size() == 4);
    CHECK(t.cores[3].pus == std::vector<int>{3, 35});

    auto compact = plan(t, "compact");
    CHECK(slice(cpus(compact), 0, 4) == std::vector<int>{0, 32, 1, 33});
    CHECK(slice(nodes(compact), 14, 18) == std::vector<int>{0, 0, 1, 1});

    auto scatter = plan(t, "scatter");
    CHECK(slice(cpus(scatter), 0, 4) == std::vector<int>{0, 16, 8, 24});
    auto first = slice(cpus(scatter), 0, 32);
    std::sort(first.begin(), first.end());
    CHECK(first == seq(0, 32));  // all first siblings before any second one

    auto node1 = plan(t, "node:1");
    CHECK(cpus(node1) == cat(seq(8, 8), seq(40, 8)));
    CHECK(nodes(node1) == std::vector<int>(16, 1));

    auto list = plan(t, "0,32");
    CHECK(cores(list) == std::vector<int>{0, 0});  // the same core: SMT siblings

    CHECK(plan(t, "none").slots.size() == 64);
    CHECK(plan_error(t, "node:3", 17)
              .starts_with("cannot place 17 workers on node 3: only 16 allowed PUs (24-31,56-63)"));
  }

  TEST_CASE("scatter alternates packages inside one node that spans both") {
    // Two sockets with BIOS node interleaving: one NUMA node over two packages.
    auto t = load(Source::synthetic("pack:2 core:2 pu:2"));
    REQUIRE(t.nodes.size() == 1);
    CHECK(t.nodes[0].package == -1);
    CHECK(cpus(plan(t, "scatter")) == std::vector<int>{0, 4, 2, 6, 1, 5, 3, 7});
    CHECK(cpus(plan(t, "compact")) == seq(0, 8));
  }
}
