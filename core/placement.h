// core/placement.h -- where one worker runs. numa/ computes these from the machine's
// topology and a policy; core/ only carries them to the worker threads.
#pragma once

namespace pp {

/// The place of one worker thread. -1 in a field means "not pinned / unknown".
struct WorkerSlot {
  int cpu = -1;   // OS index of the processing unit (PU) the worker is pinned to
  int core = -1;  // the core that PU belongs to (SMT siblings share it)
  int node = -1;  // the NUMA node whose memory the worker allocates from
};

}  // namespace pp
