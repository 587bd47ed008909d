// bench/numa_stream.cpp -- memory bandwidth of workers streaming over their own
// buffers (a STREAM triad, a[i] = b[i] + s * c[i]), placed the way pyparallel
// places them: pinned by a policy with node-local memory (numa/), against `none`
// (unpinned threads, memory wherever first touch puts it). Prints GB/s for each
// and the ratio; on a machine with several NUMA nodes it also runs the pinned
// workers against memory on a remote node, which is what placement saves.
//
//   numa_stream [--workers N] [--mib M] [--passes P] [--trials T] [--policy P]
//
// Not a test: numbers depend on the machine and on whatever else runs on it.
#include <algorithm>
#include <barrier>
#include <chrono>
#include <cstdlib>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include <fmt/format.h>

#include "numa/bind.h"
#include "numa/cpulist.h"
#include "numa/plan.h"
#include "numa/topology.h"

namespace {

using Clock = std::chrono::steady_clock;

struct Options {
  int workers = 0;
  std::size_t mib = 64;  // per array; 3 arrays per worker
  int passes = 10;
  int trials = 5;
  std::string policy = "compact";
};

// Where one mode puts worker i and its memory.
struct Mode {
  std::string name;
  std::vector<pp::WorkerSlot> slots;  // cpu -1: unpinned
  std::vector<int> memory_nodes;      // -1: first touch
};

// Runs every worker once: bind, allocate its three arrays, first-touch them from
// the worker's own thread, then `passes` triads timed between two barriers.
// Returns GB/s (STREAM's count: 3 x 8 bytes per element per pass).
double run(const Mode& mode, const Options& o, double& checksum) {
  const std::size_t n = o.mib * 1024 * 1024 / sizeof(double);
  const std::size_t bytes = n * sizeof(double);
  const std::size_t workers = mode.slots.size();
  std::barrier sync(static_cast<std::ptrdiff_t>(workers));
  std::vector<Clock::time_point> start(workers), end(workers);
  std::vector<double> sums(workers);
  std::vector<std::thread> threads;
  for (std::size_t w = 0; w < workers; ++w)
    threads.emplace_back([&, w] {
      std::string error;
      if (!pp::numa::bind_current_thread(mode.slots[w], error))
        fmt::print(stderr, "numa_stream: worker {}: {}\n", w, error);
      int node = mode.memory_nodes[w];
      auto* a = static_cast<double*>(pp::numa::alloc_local(bytes, node));
      auto* b = static_cast<double*>(pp::numa::alloc_local(bytes, node));
      auto* c = static_cast<double*>(pp::numa::alloc_local(bytes, node));
      if (!a || !b || !c) {
        fmt::print(stderr, "numa_stream: out of memory for {} MiB arrays\n", o.mib);
        std::exit(1);
      }
      for (std::size_t i = 0; i < n; ++i) a[i] = 0, b[i] = 1.0, c[i] = 2.0;
      sync.arrive_and_wait();
      start[w] = Clock::now();
      for (int p = 0; p < o.passes; ++p) {
        const double s = 0.5 + p;
        for (std::size_t i = 0; i < n; ++i) a[i] = b[i] + s * c[i];
      }
      end[w] = Clock::now();
      sums[w] = a[n / 2];  // keeps the stores observable
      sync.arrive_and_wait();
      pp::numa::free_local(a, bytes);
      pp::numa::free_local(b, bytes);
      pp::numa::free_local(c, bytes);
    });
  for (auto& t : threads) t.join();
  auto first = *std::min_element(start.begin(), start.end());
  auto last = *std::max_element(end.begin(), end.end());
  double seconds = std::chrono::duration<double>(last - first).count();
  for (double s : sums) checksum += s;
  return 3.0 * bytes * o.passes * workers / seconds / 1e9;
}

bool parse(int argc, char** argv, Options& o) {
  for (int i = 1; i + 1 < argc; i += 2) {
    std::string_view arg = argv[i];
    const char* v = argv[i + 1];
    if (arg == "--workers")
      o.workers = std::atoi(v);
    else if (arg == "--mib")
      o.mib = std::strtoul(v, nullptr, 10);
    else if (arg == "--passes")
      o.passes = std::atoi(v);
    else if (arg == "--trials")
      o.trials = std::atoi(v);
    else if (arg == "--policy")
      o.policy = v;
    else
      return false;
  }
  return argc % 2 == 1 && o.mib > 0 && o.passes > 0 && o.trials > 0 && o.workers >= 0;
}

}  // namespace

int main(int argc, char** argv) {
  using namespace pp::numa;
  Options o;
  if (!parse(argc, argv, o)) {
    fmt::print(stderr,
               "usage: numa_stream [--workers N] [--mib M] [--passes P] [--trials T] "
               "[--policy P]\n");
    return 2;
  }
  std::string error;
  auto topology = Topology::load(Source::host(), error);
  if (!topology) return fmt::print(stderr, "numa_stream: {}\n", error), 1;
  auto plan = make_plan(*topology, o.policy, o.workers, error);
  if (!plan) return fmt::print(stderr, "numa_stream: {}\n", error), 2;
  const std::size_t workers = plan->slots.size();

  Mode pinned{fmt::format("pinned ({}) + node-local", plan->policy), plan->slots, {}};
  Mode none{"none (unpinned, first touch)", std::vector<pp::WorkerSlot>(workers), {}};
  for (const auto& s : plan->slots) pinned.memory_nodes.push_back(s.node);
  none.memory_nodes.assign(workers, -1);

  // Remote: same pins, each worker's memory on the next node that has memory.
  std::vector<int> memory_nodes;
  for (const auto& node : topology->nodes)
    if (node.has_memory() && node.allowed) memory_nodes.push_back(node.os_index);
  std::vector<Mode> modes{pinned, none};
  if (memory_nodes.size() > 1 && plan->pinned()) {
    Mode remote{"pinned + remote node", plan->slots, {}};
    for (const auto& s : plan->slots) {
      auto it = std::find(memory_nodes.begin(), memory_nodes.end(), s.node);
      std::size_t at = it == memory_nodes.end() ? 0 : it - memory_nodes.begin();
      remote.memory_nodes.push_back(memory_nodes[(at + 1) % memory_nodes.size()]);
    }
    modes.push_back(remote);
  }

  fmt::print(
      "numa_stream: {} workers, 3 x {} MiB arrays each, {} triad passes, best of {} "
      "trials (modes interleaved)\n",
      workers, o.mib, o.passes, o.trials);
  fmt::print("machine: {} NUMA node(s) with memory, {} allowed PUs ({})\n", memory_nodes.size(),
             topology->allowed_pus().size(), format_cpu_list(topology->allowed_pus()));
  std::vector<double> best(modes.size(), 0);
  double checksum = 0;
  // Interleaving the modes spreads background noise (other processes, frequency
  // changes) over all of them instead of biasing whichever ran during it.
  for (int t = 0; t < o.trials; ++t)
    for (std::size_t m = 0; m < modes.size(); ++m)
      best[m] = std::max(best[m], run(modes[m], o, checksum));
  for (std::size_t m = 0; m < modes.size(); ++m)
    fmt::print("  {:<40} {:8.2f} GB/s\n", modes[m].name, best[m]);
  fmt::print("  {:<40} {:8.3f}\n", "ratio pinned / none", best[0] / best[1]);
  if (modes.size() > 2) {
    fmt::print("  {:<40} {:8.3f}\n", "ratio node-local / remote", best[0] / best[2]);
  } else {
    fmt::print(
        "one NUMA node: every placement reaches the same memory, so the ratio above is only\n"
        "pinning's own cost or gain (no migrations, but no load balancing either). On a\n"
        "multi-node machine this program also runs each pinned worker against memory on\n"
        "another node: 'node-local / remote' is the bandwidth placement saves, and\n"
        "'pinned / none' then includes the memory that unpinned threads leave behind on\n"
        "whatever node they first touched it from.\n");
  }
  fmt::print("(checksum {:g})\n", checksum);
  return 0;
}
