// tests/numa/plan_memoryless_test.cpp -- a machine whose node 1 has CPUs but no
// memory (hand-edited XML; such firmware exists, see Seastar #2747), with a NIC
// on node 2. Workers on node 1 must get their memory from node 0, the nearest
// node that has some, and never from node 1.
#include <doctest/doctest.h>

#include "helpers.h"
#include "numa/describe.h"

using namespace pp::numa;
using namespace pp::numa::test;

namespace {
Topology memoryless() {
  return load(Source::xml(fixture("memoryless_node.xml")));
}
}  // namespace

TEST_SUITE("memory-less node" * doctest::skip(!have_hwloc)) {
  TEST_CASE("node 1 is kept, marked memory-less, and borrows node 0's memory") {
    auto t = memoryless();
    REQUIRE(t.nodes.size() == 4);
    CHECK(t.pus.size() == 16);
    const NumaNode* node1 = t.find_node(1);
    REQUIRE(node1);
    CHECK_FALSE(node1->has_memory());
    CHECK(node1->pus == seq(4, 4));
    CHECK(node1->memory_node == 0);
    CHECK(t.find_node(0)->memory_node == 0);
    CHECK(t.find_node(2)->memory_node == 2);
    CHECK(t.find_node(3)->memory_node == 3);
  }

  TEST_CASE("the NIC's node is known") {
    auto t = memoryless();
    REQUIRE(t.nics.size() == 1);
    CHECK(t.nics[0].name == "eth1");
    CHECK(t.nics[0].pci == "0000:3b:00.0");
    CHECK(t.nics[0].node == 2);
    CHECK(t.nics[0].locality == "node 2");
  }

  TEST_CASE("compact and scatter never send memory to the memory-less node") {
    auto t = memoryless();
    auto compact = plan(t, "compact");
    CHECK(cpus(compact) == seq(0, 16));
    CHECK(nodes(compact) == std::vector<int>{0, 0, 0, 0, 0, 0, 0, 0, 2, 2, 2, 2, 3, 3, 3, 3});
    auto scatter = plan(t, "scatter");
    CHECK(slice(cpus(scatter), 0, 4) == std::vector<int>{0, 8, 4, 12});
    CHECK(slice(nodes(scatter), 0, 4) == std::vector<int>{0, 2, 0, 3});
    for (const auto& s : scatter.slots) CHECK(s.node != 1);
  }

  TEST_CASE("node:1 runs on node 1's CPUs with node 0's memory") {
    auto t = memoryless();
    auto p = plan(t, "node:1");
    CHECK(cpus(p) == std::vector<int>{4, 6, 5, 7});
    CHECK(nodes(p) == std::vector<int>(4, 0));
    CHECK(nodes(plan(t, "5")) == std::vector<int>{0});
    CHECK(plan(t, "none").slots.size() == 16);
    CHECK(plan_error(t, "node:1", 5).starts_with("cannot place 5 workers on node 1"));
  }

  TEST_CASE("describe shows the memory-less node, the NIC and the borrowed memory") {
    auto t = memoryless();
    auto text = describe(t, plan(t, "node:1"));
    CHECK(
        text.find("node 1: no memory, its workers' memory comes from node 0, cores 2-3, PUs 4-7") !=
        std::string::npos);
    CHECK(text.find("NIC eth1 (PCI 0000:3b:00.0): node 2") != std::string::npos);
    CHECK(text.find("node 0 (node 1 has no memory)") != std::string::npos);
  }
}
