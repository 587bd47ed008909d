// tests/numa/policy_test.cpp -- policy strings as users write them.
#include <doctest/doctest.h>

#include "numa/policy.h"

using pp::numa::parse_policy;
using pp::numa::Policy;

TEST_CASE("every policy kind parses and names itself canonically") {
  std::string error;
  for (auto [text, kind] :
       {std::pair{"compact", Policy::Kind::compact}, std::pair{"scatter", Policy::Kind::scatter},
        std::pair{"none", Policy::Kind::none}, std::pair{"node:2", Policy::Kind::node},
        std::pair{"0-3,8", Policy::Kind::cpus}}) {
    auto policy = parse_policy(text, error);
    REQUIRE(policy);
    CHECK(policy->kind == kind);
    CHECK(policy->name() == text);
  }
  auto node = parse_policy("node:12", error);
  REQUIRE(node);
  CHECK(node->node == 12);
  auto list = parse_policy("3,1", error);
  REQUIRE(list);
  CHECK(list->cpus == std::vector<int>{3, 1});
}

TEST_CASE("bad policies name the text and what is accepted") {
  std::string error;
  CHECK_FALSE(parse_policy("compactt", error));
  CHECK(error ==
        "unknown policy 'compactt': expected compact, scatter, node:K, a CPU list such as "
        "0-3,8, or none");
  CHECK_FALSE(parse_policy("", error));
  CHECK(error.starts_with("unknown policy ''"));
  CHECK_FALSE(parse_policy("node:", error));
  CHECK(error == "bad policy 'node:': node:K needs a NUMA node number, e.g. node:0");
  CHECK_FALSE(parse_policy("node:-1", error));
  CHECK_FALSE(parse_policy("node:1x", error));
  CHECK_FALSE(parse_policy("0-3,3", error));
  CHECK(error == "bad policy '0-3,3': CPU 3 is listed twice");
}
