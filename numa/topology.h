// numa/topology.h -- the machine as hwloc sees it, copied into plain data.
//
// Everything above this header (plans, describe(), the CLI) works on this data
// only, so placement logic is testable on any machine hwloc can fake (synthetic
// descriptions, XML files) and still builds when hwloc is absent.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace pp::numa {

/// True when this build links hwloc; false in the unpinned fallback (meson
/// `-Dnuma=disabled`, or libhwloc-dev missing with `-Dnuma=auto`).
#ifdef PP_HAVE_HWLOC
inline constexpr bool have_hwloc = true;
#else
inline constexpr bool have_hwloc = false;
#endif

/// One processing unit (a hardware thread; SMT siblings share a core).
struct Pu {
  int os_index = -1;    // what the OS calls it: taskset, /proc, sched_setaffinity
  int core = -1;        // index into Topology::cores
  int node = -1;        // OS index of its home NUMA node (the first node local to it)
  int smt_rank = 0;     // 0 for a core's first PU, 1 for its first sibling, ...
  bool allowed = true;  // in the process's allowed set (cgroup cpuset AND affinity mask)
};

/// One core. `index` is hwloc's logical index: core OS indexes repeat across
/// packages on real machines, so they cannot name a core on their own.
struct Core {
  int index = -1;
  int package = -1;      // index into Topology::packages
  int node = -1;         // OS index of the home node of its PUs
  std::vector<int> pus;  // OS indexes, SMT rank order
};

/// One NUMA node. Some hardware reports nodes that have CPUs but no memory
/// (Seastar #2747), and some have memory but no CPUs (HBM, CXL, NVDIMM).
struct NumaNode {
  int os_index = -1;
  int package = -1;  // index into Topology::packages; -1 when it spans several
  std::uint64_t memory_bytes = 0;
  /// Where the memory of a worker running on this node comes from: itself when it
  /// has memory, else the nearest allowed node that has some (hwloc distances when
  /// known, else the closest one in the hierarchy).
  int memory_node = -1;
  bool allowed = true;   // in the process's allowed nodeset (cgroup cpuset.mems)
  std::vector<int> pus;  // OS indexes of the PUs whose home node this is
  bool has_memory() const { return memory_bytes > 0; }
};

/// One processor package (socket).
struct Package {
  int index = -1;
  std::vector<int> nodes;  // OS indexes of the NUMA nodes inside it
};

/// A network interface and the locality of the PCI slot it sits in.
struct Nic {
  std::string name;      // eth0, mlx5_0, ...
  std::string pci;       // 0000:3b:00.0, or empty
  int node = -1;         // OS index of its NUMA node when exactly one is local to it
  std::string locality;  // "node 2", "package 1 (nodes 2-3)", "whole machine"
};

/// Where to read a topology from.
struct Source {
  enum class Kind { host, xml, synthetic };
  Kind kind = Kind::host;
  /// XML file path, or a synthetic description such as "pack:2 numa:2 core:8 pu:2".
  std::string text;
  /// Optional CPU list (e.g. "4-11,32-47"): pretend the process may only use these
  /// PUs, as taskset or a cgroup would. Applied on top of the host's own limits.
  std::string allowed_cpus;

  /// The machine this process runs on, limited to its allowed CPUs.
  static Source host() { return {}; }
  /// An XML file written by `lstopo --of xml` (or hand-edited from one).
  static Source xml(std::string path) { return {Kind::xml, std::move(path), {}}; }
  /// An hwloc synthetic description (HWLOC_SYNTHETIC syntax).
  static Source synthetic(std::string description) {
    return {Kind::synthetic, std::move(description), {}};
  }
};

/// The machine: packages, NUMA nodes, cores, PUs and NICs, plus what this process
/// may use. PUs are in hwloc's logical order (package, node, core, SMT sibling).
struct Topology {
  std::string origin;  // "this host", "synthetic: ...", "xml: path"
  /// True when workers can actually be pinned to these PUs: the host, with hwloc.
  /// Synthetic and XML machines are for planning and display only.
  bool can_bind = false;
  std::vector<Package> packages;
  std::vector<NumaNode> nodes;  // ordered by OS index
  std::vector<Core> cores;
  std::vector<Pu> pus;
  std::vector<Nic> nics;

  /// Reads a topology. Use Source::host() at start-up; xml/synthetic in tests and
  /// in `pyparallel-topology` to preview a plan for another machine. Returns
  /// nullopt with `error` set (naming the source and the reason) on failure, and
  /// in the fallback build for anything but the host.
  static std::optional<Topology> load(const Source& source, std::string& error);

  /// The PU with this OS index, or null.
  const Pu* find_pu(int os_index) const;
  /// The NUMA node with this OS index, or null.
  const NumaNode* find_node(int os_index) const;
  /// OS indexes of the PUs this process may run on, in logical order.
  std::vector<int> allowed_pus() const;
};

}  // namespace pp::numa
