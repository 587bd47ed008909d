// platform/linux/uring_setup.h -- opening an io_uring on whatever kernel this is: the
// set-up flag ladder, the opcode probe, and the kernel version that gates what no probe
// reports. Kept apart from the loop (uring_loop.cpp) because it runs once per loop and is
// where kernels differ; the loop's hot path never looks back at it.
#pragma once

#include <liburing.h>

#include <string>

#include "core/loop.h"

namespace pp::platform {

/// The kernel the ring runs on, as the loop's fallbacks see it. Multishot accept and recv,
/// the buffer ring and cancel-by-fd have no probe bit, so the version gates them.
struct UringKernel {
  int version = 0;      ///< major*100+minor; 511 under PYPARALLEL_IO_URING_COMPAT
  bool compat = false;  ///< PYPARALLEL_IO_URING_COMPAT: only what a 5.11-era kernel has
  /// What the log lines blame for a missing feature ("kernel", or the compat variable).
  const char* name = "kernel";
};

/// The running kernel, or the 5.11 that PYPARALLEL_IO_URING_COMPAT pretends to be.
UringKernel uring_kernel();

/// True when the environment variable `name` is set to anything but "" or "0".
bool env_flag(const char* name);

/// Initialises `ring` for `options.queue_depth` entries with the best set-up flags the
/// kernel accepts (SINGLE_ISSUER|DEFER_TASKRUN, then COOP_TASKRUN, then none; SQPOLL when
/// `options.sqpoll`), and checks that it has every opcode the loop submits. `params` gets
/// what the kernel granted. False with `why` saying what to do (a blocked io_uring, a
/// missing opcode, too little locked memory); the ring is then not to be exited unless
/// `ring_open` was set.
bool open_uring(io_uring& ring, const LoopOptions& options, const UringKernel& kernel,
                io_uring_params& params, bool& ring_open, std::string& why);

}  // namespace pp::platform
