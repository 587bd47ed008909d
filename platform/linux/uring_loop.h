// platform/linux/uring_loop.h -- what an io_uring loop found on this kernel, for tests and
// diagnostics. Everyone else opens loops through pp::open_loop (core/loop.h).
#pragma once

#include <cstdint>
#include <string>

#include "core/loop.h"

namespace pp::platform {

/// The kernel features an io_uring loop uses (each with the kernel that introduced it) and
/// the fallback it took where one was missing. Read it for logs and tests; the hot path
/// never does.
struct UringInfo {
  bool single_issuer = false;  ///< IORING_SETUP_SINGLE_ISSUER (6.0)
  bool defer_taskrun = false;  ///< IORING_SETUP_DEFER_TASKRUN (6.1): completions run on enter
  bool coop_taskrun = false;   ///< IORING_SETUP_COOP_TASKRUN (5.19): fallback, no IPIs
  bool sqpoll = false;         ///< IORING_SETUP_SQPOLL, only when LoopOptions::sqpoll
  /// Provided-buffer ring (5.19). Without it, recv reads into a buffer taken from a pool
  /// when the recv is armed (the pool grows when it runs dry).
  bool buffer_ring = false;
  bool multishot_accept = false;   ///< 5.19; otherwise single-shot accepts re-armed by the engine
  bool multishot_recv = false;     ///< 6.0 + buffer ring; otherwise re-armed single-shot recvs
  std::uint32_t recv_buffers = 0;  ///< buffers in the ring or the pool, right now
  std::uint32_t recv_buffer_size = 0;  ///< bytes per buffer
  /// Times a recv ended by the kernel with ENOBUFS (buffer ring empty) was parked and
  /// re-armed once buffers came back, without the caller seeing the ENOBUFS.
  std::uint64_t enobufs_rearms = 0;
  std::string summary;  ///< the above as one log line
};

/// Fills `out` and returns true when `loop` is an io_uring loop; false otherwise.
bool describe_uring_loop(const Loop& loop, UringInfo& out);

/// Environment variables the io_uring backend reads when a loop is opened (tests and
/// operators use them; production needs neither):
/// - PYPARALLEL_DISABLE_IO_URING=1: act as if io_uring_setup were blocked, so the
///   fallback path (and its log line) can be exercised on any host.
/// - PYPARALLEL_IO_URING_COMPAT=1: use only what a 5.11-era kernel has (no buffer ring,
///   no multishot, no SINGLE_ISSUER/DEFER_TASKRUN), to test the fallbacks here.
inline constexpr const char* kDisableUringEnv = "PYPARALLEL_DISABLE_IO_URING";
inline constexpr const char* kUringCompatEnv = "PYPARALLEL_IO_URING_COMPAT";

}  // namespace pp::platform
