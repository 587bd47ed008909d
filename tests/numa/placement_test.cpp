// tests/numa/placement_test.cpp -- place_workers, the start-up placement the C++ server
// and the Python runtime share, on the real host: 0 workers means one per allowed CPU,
// a policy someone asked for that cannot be met is an error, and the build's default
// policy falls back to unpinned workers instead.
#include <doctest/doctest.h>

#include <string>

#include "numa/placement.h"
#include "numa/topology.h"

using namespace pp::numa;

TEST_CASE("place_workers: 0 workers is one per allowed CPU, each with a slot when pinned") {
  std::string error;
  auto placement = place_workers("none", /*policy_given=*/true, 0, error);
  REQUIRE_MESSAGE(placement, error);
  std::string why;
  auto topology = Topology::load(Source::host(), why);
  if (topology) CHECK(placement->workers == topology->allowed_pus().size());
  CHECK(placement->workers >= 1);
  CHECK((placement->slots.empty() || placement->slots.size() == placement->workers));
}

TEST_CASE("place_workers: an impossible policy is an error when asked for, unpinned when not") {
  std::string why;
  auto topology = Topology::load(Source::host(), why);
  if (!topology || !have_hwloc) return;  // the fallback build plans every policy unpinned
  // More workers than CPUs under a pinning policy cannot be met.
  unsigned too_many = static_cast<unsigned>(topology->allowed_pus().size()) + 1;
  std::string error;
  CHECK_FALSE(place_workers("compact", /*policy_given=*/true, too_many, error));
  CHECK_FALSE(error.empty());
  error.clear();
  auto fallback = place_workers("compact", /*policy_given=*/false, too_many, error);
  REQUIRE(fallback);
  CHECK(error.empty());
  CHECK(fallback->workers == too_many);
  CHECK(fallback->slots.empty());  // unpinned: the kernel places them
}
