// tests/numa/options_test.cpp -- command line over environment over build default.
#include <doctest/doctest.h>

#include "numa/options.h"

using namespace pp::numa;

TEST_CASE("policy precedence: flag, then environment, then build default") {
  auto s = resolve_policy("scatter", "node:1", "compact");
  CHECK(s.value == "scatter");
  CHECK(s.origin == "--numa-policy");
  s = resolve_policy(std::nullopt, "node:1", "compact");
  CHECK(s.value == "node:1");
  CHECK(s.origin == "PYPARALLEL_NUMA_POLICY");
  s = resolve_policy(std::nullopt, nullptr, "compact");
  CHECK(s.value == "compact");
  CHECK(s.origin.starts_with("build default"));
  // Empty means unset, so `PYPARALLEL_NUMA_POLICY= cmd` and `--numa-policy ''` fall through.
  s = resolve_policy("", "", "scatter");
  CHECK(s.value == "scatter");
}

TEST_CASE("the build default comes from meson's numa_policy and workers options") {
  CHECK(resolve_policy(std::nullopt, nullptr).value == std::string(build_default_policy));
  std::string error;
  auto w = resolve_workers(std::nullopt, nullptr, error);
  REQUIRE(w);
  CHECK(w->value == build_default_workers);
#ifdef PP_DEFAULT_NUMA_POLICY
  CHECK(build_default_policy == PP_DEFAULT_NUMA_POLICY);
#endif
}

TEST_CASE("worker precedence and validation") {
  std::string error;
  auto w = resolve_workers("4", "8", error, 0);
  REQUIRE(w);
  CHECK(w->value == 4);
  CHECK(w->origin == "--workers");
  w = resolve_workers(std::nullopt, "8", error, 0);
  REQUIRE(w);
  CHECK(w->value == 8);
  CHECK(w->origin == "PYPARALLEL_WORKERS");
  w = resolve_workers(std::nullopt, "", error, 3);
  REQUIRE(w);
  CHECK(w->value == 3);

  CHECK_FALSE(resolve_workers(std::nullopt, "eight", error, 0));
  CHECK(error ==
        "PYPARALLEL_WORKERS=eight: expected a worker count, 0 (one per allowed CPU) or more");
  CHECK_FALSE(resolve_workers("-2", nullptr, error, 0));
  CHECK(error.starts_with("--workers=-2:"));
  CHECK_FALSE(resolve_workers("4x", nullptr, error, 0));
}
