// tests/numa/cpulist_test.cpp -- the CPU-list syntax shared by policies and limits.
#include <doctest/doctest.h>

#include "numa/cpulist.h"

using pp::numa::format_cpu_list;
using pp::numa::parse_cpu_list;

TEST_CASE("cpu lists parse ranges and single CPUs in the order written") {
  std::string error;
  auto cpus = parse_cpu_list("0-3,8", error);
  REQUIRE(cpus);
  CHECK(*cpus == std::vector<int>{0, 1, 2, 3, 8});
  cpus = parse_cpu_list("9,2-3", error);
  REQUIRE(cpus);
  CHECK(*cpus == std::vector<int>{9, 2, 3});
  cpus = parse_cpu_list("5", error);
  REQUIRE(cpus);
  CHECK(*cpus == std::vector<int>{5});
}

TEST_CASE("bad cpu lists say what is wrong") {
  std::string error;
  CHECK_FALSE(parse_cpu_list("", error));
  CHECK(error == "empty CPU list");
  CHECK_FALSE(parse_cpu_list("3-1", error));
  CHECK(error == "bad CPU range '3-1': the end is below the start");
  CHECK_FALSE(parse_cpu_list("0-3,2", error));
  CHECK(error == "CPU 2 is listed twice");
  CHECK_FALSE(parse_cpu_list("1,,2", error));
  CHECK(error == "bad CPU list item '': expected N or N-M (e.g. 0-3,8)");
  CHECK_FALSE(parse_cpu_list("0-x", error));
  CHECK(error.find("'0-x'") != std::string::npos);
  CHECK_FALSE(parse_cpu_list("-1", error));
}

TEST_CASE("cpu lists format with merged runs") {
  CHECK(format_cpu_list({}) == "");
  CHECK(format_cpu_list({0, 1, 2, 3, 8}) == "0-3,8");
  CHECK(format_cpu_list({4, 6, 7}) == "4,6-7");
  CHECK(format_cpu_list({0, 32, 1, 33}) == "0,32,1,33");
}
