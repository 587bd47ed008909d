// tests/numa/describe_test.cpp -- the text of `pyparallel --topology`.
#include <doctest/doctest.h>

#include "helpers.h"
#include "numa/describe.h"

using namespace pp::numa;
using namespace pp::numa::test;

TEST_CASE("describe prints the machine and one row per worker" * doctest::skip(!have_hwloc)) {
  auto t = load(Source::synthetic("pack:2 numa:2 core:8 pu:2"));
  auto text = describe(t, plan(t, "scatter", 3));
  CHECK(text.starts_with("Machine (synthetic: pack:2 numa:2 core:8 pu:2)\n"));
  CHECK(text.find("2 packages, 4 NUMA nodes, 32 cores, 64 PUs; this process may use 64 PUs: "
                  "0-63") != std::string::npos);
  CHECK(text.find("  package 1\n    node 2: 1.0 GiB, cores 16-23, PUs 32-47\n") !=
        std::string::npos);
  CHECK(text.find("Plan: policy scatter, 3 workers\n") != std::string::npos);
  CHECK(text.find("  worker    PU  core  node  memory\n"
                  "       0     0     0     0  node 0\n"
                  "       1    32    16     2  node 2\n"
                  "       2    16     8     1  node 1\n") != std::string::npos);
}

TEST_CASE("describe marks unpinned workers and disallowed PUs" * doctest::skip(!have_hwloc)) {
  auto source = Source::synthetic("pack:1 numa:1 core:4 pu:1");
  source.allowed_cpus = "1-2";
  auto t = load(source);
  auto text = describe(t, plan(t, "none"));
  CHECK(text.find("this process may use 2 PUs: 1-2") != std::string::npos);
  CHECK(text.find("PUs 0-3 (allowed: 1-2)") != std::string::npos);
  CHECK(text.find("Plan: policy none, 2 workers, unpinned") != std::string::npos);
  CHECK(text.find("       1     -     -     -  first touch") != std::string::npos);
}
