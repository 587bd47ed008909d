// tests/numa/cli_test.cpp -- pyparallel-topology: it prints the plan, and every
// impossible policy is a message on stderr and exit status 2.
#include <sys/wait.h>

#include <cstdio>
#include <string>

#include <doctest/doctest.h>
#include <fmt/format.h>

#include "numa/topology.h"

namespace {

struct Run {
  int status = -1;
  std::string output;  // stdout and stderr together
};

// Runs the CLI with `args` (already shell-quoted) and a clean environment for the
// variables it reads, so the developer's own settings cannot change the outcome.
Run cli(const std::string& args, const std::string& env = "") {
  std::string command =
      fmt::format("env -u PYPARALLEL_NUMA_POLICY -u PYPARALLEL_WORKERS {} '{}' {} 2>&1", env,
                  PP_TOPOLOGY_CLI, args);
  Run run;
  FILE* pipe = popen(command.c_str(), "r");
  REQUIRE(pipe);
  char buffer[4096];
  while (std::size_t n = std::fread(buffer, 1, sizeof buffer, pipe)) run.output.append(buffer, n);
  int raw = pclose(pipe);
  run.status = WIFEXITED(raw) ? WEXITSTATUS(raw) : -1;
  return run;
}

constexpr const char* one_node = "--synthetic 'pack:1 numa:1 core:2 pu:1'";
constexpr const char* two_nodes = "--synthetic 'pack:1 numa:2 core:2 pu:2'";

}  // namespace

TEST_CASE("the CLI prints the host's plan") {
  auto run = cli("--policy compact");
  INFO(run.output);
  CHECK(run.status == 0);
  CHECK(run.output.find("Machine (this host") != std::string::npos);
  CHECK(run.output.find(pp::numa::have_hwloc ? "Plan: policy compact" : "Plan: policy none") !=
        std::string::npos);
}

TEST_SUITE("CLI on fake machines" * doctest::skip(!pp::numa::have_hwloc)) {
  TEST_CASE("flags beat the environment, which beats the build default") {
    auto run = cli(fmt::format("{} --policy scatter --workers 1", two_nodes),
                   "PYPARALLEL_NUMA_POLICY=node:1 PYPARALLEL_WORKERS=2");
    CHECK(run.status == 0);
    CHECK(run.output.find("Plan: policy scatter, 1 worker\n") != std::string::npos);
    run = cli(two_nodes, "PYPARALLEL_NUMA_POLICY=node:1 PYPARALLEL_WORKERS=2");
    CHECK(run.status == 0);
    CHECK(run.output.find("Plan: policy node:1, 2 workers\n") != std::string::npos);
  }

  TEST_CASE("every impossible policy exits 2 with its reason") {
    struct Case {
      std::string args;
      std::string message;
    };
    const Case cases[] = {
        {fmt::format("{} --policy node:3", one_node),
         "NUMA node 3 does not exist; this machine has 1 node (0)"},
        {fmt::format("{} --allowed 0 --policy 1", one_node),
         "CPU 1 is outside this process's allowed CPUs (0)"},
        {fmt::format("{} --policy 0-7", one_node), "CPU 2 does not exist"},
        {fmt::format("{} --allowed 0-3 --policy node:1", two_nodes),
         "none of node 1's CPUs (4-7) is in this process's allowed set (0-3)"},
        {fmt::format("{} --workers 3", one_node),
         "cannot place 3 workers on policy 'compact': only 2 allowed PUs (0-1)"},
        {fmt::format("{} --policy scatter --workers 9", two_nodes), "cannot place 9 workers"},
        {fmt::format("{} --policy node:0 --workers 5", two_nodes),
         "cannot place 5 workers on node 0: only 4 allowed PUs (0-3)"},
        {fmt::format("{} --policy 0-1 --workers 3", one_node),
         "cannot place 3 workers on CPU list '0-1'"},
        {fmt::format("{} --policy sideways", one_node),
         "--policy expects compact, scatter, none, node:K or a CPU list such as 0-3,8, got "
         "'sideways'"},
        {one_node, "PYPARALLEL_NUMA_POLICY"},  // the environment's bad value is named
        {fmt::format("{} --workers many", one_node), "--workers expects a whole number from 0"},
        {fmt::format("{} --workers=-2", one_node), "--workers expects a whole number from 0"},
    };
    for (const auto& c : cases) {
      auto run =
          cli(c.args, c.message == "PYPARALLEL_NUMA_POLICY" ? "PYPARALLEL_NUMA_POLICY=node:9" : "");
      INFO(c.args, "\n", run.output);
      CHECK(run.status == 2);
      CHECK(run.output.find(c.message) != std::string::npos);
    }
  }

  TEST_CASE("an unreadable topology exits 1") {
    auto run = cli("--xml /nonexistent/topology.xml");
    CHECK(run.status == 1);
    CHECK(run.output.find("cannot read topology XML '/nonexistent/topology.xml': no such file") !=
          std::string::npos);
    run = cli("--synthetic 'pack:zero'");
    CHECK(run.status == 1);
    CHECK(run.output.find("bad synthetic topology 'pack:zero'") != std::string::npos);
  }
}

TEST_CASE("its options are the servers': the same flag, variables and wording") {
  // --numa-policy (the servers' flag) and --policy (the tool's older spelling) are one.
  auto run = cli("--numa-policy none --workers 1");
  INFO(run.output);
  CHECK(run.status == 0);
  CHECK(run.output.find("Plan: policy none, 1 worker") != std::string::npos);
  run = cli("--numa-policy=none --workers=1");
  CHECK(run.status == 0);
  CHECK(run.output.find("Plan: policy none, 1 worker") != std::string::npos);
  // A bad variable is named with the servers' wording; an empty one counts as unset.
  run = cli("", "PYPARALLEL_WORKERS=eight");
  CHECK(run.status == 2);
  CHECK(run.output.find("PYPARALLEL_WORKERS expects a whole number from 0") != std::string::npos);
  run = cli("", "PYPARALLEL_NUMA_POLICY=sideways");
  CHECK(run.status == 2);
  CHECK(run.output.find("PYPARALLEL_NUMA_POLICY expects compact, scatter") != std::string::npos);
  run = cli("--numa-policy none", "PYPARALLEL_WORKERS=");
  CHECK(run.status == 0);
  // Variables the plan does not read are not the tool's to refuse.
  run = cli("--numa-policy none --workers 1", "PYPARALLEL_BACKEND=sideways");
  CHECK(run.status == 0);
}

TEST_CASE("bad usage exits 2") {
  CHECK(cli("--frobnicate 1").status == 2);
  CHECK(cli("--policy").status == 2);
  CHECK(cli("--help").status == 0);
}
