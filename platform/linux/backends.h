// platform/linux/backends.h -- constructors of the Linux backends, used only by
// open_loop.cpp (everyone else goes through pp::open_loop).
#pragma once

#include <memory>
#include <string>

#include "core/loop.h"

namespace pp::platform {

/// An io_uring loop (liburing): one ring per worker, multishot accept, recv from a
/// provided-buffer ring where the kernel has it, SINGLE_ISSUER/DEFER_TASKRUN where
/// available. Returns null with `why` set (e.g. "io_uring_setup: Operation not
/// permitted (seccomp or kernel.io_uring_disabled)") when the host cannot run it.
std::unique_ptr<Loop> open_uring_loop(const LoopOptions& options, std::string& why);

/// A libaio loop: Linux AIO's IOCB_CMD_POLL (kernel 4.19+) as the readiness source under
/// the same readiness core as epoll, for hosts whose seccomp profile blocks io_uring but
/// allows the AIO syscalls. Polls are one-shot and re-armed in one io_submit per loop turn;
/// completions are reaped from the AIO ring without a syscall when there are some. Use it
/// where io_uring is unavailable and it measures better than epoll; otherwise epoll. Returns
/// null with `why` set (io_setup refused: ENOSYS, EPERM, fs.aio-max-nr used up; or a kernel
/// without AIO poll) when the host cannot run it.
std::unique_ptr<Loop> open_aio_loop(const LoopOptions& options, std::string& why);

/// Whether `automatic` tries libaio between io_uring and epoll (open_loop.cpp). It only
/// matters on hosts that block io_uring (seccomp profiles, kernel.io_uring_disabled), where
/// it is the choice between AIO poll (one io_submit of re-armed polls per turn, completions
/// reaped from a user-space ring) and epoll (persistent edge-triggered registrations). Set
/// it from measurements of the two (bench/backends.py); `--backend libaio` works either way.
/// Off: measured here, libaio spent the same CPU per request as epoll without pipelining
/// (1.00x) and more with it (1.08x), at 0.82-0.88x epoll's requests/s: AIO poll allocates
/// and locks per armed poll where epoll's registration persists. It does not earn a rung.
inline constexpr bool kLibaioInAutomaticLadder = false;

/// PYPARALLEL_DISABLE_LIBAIO=1: act as if the AIO syscalls were blocked, so that the
/// automatic ladder's fall-through to epoll can be exercised on any host (tests, operators).
inline constexpr const char* kDisableLibaioEnv = "PYPARALLEL_DISABLE_LIBAIO";

/// An epoll loop: the fallback for hosts that block io_uring. It emulates the
/// completion model by doing each syscall when the handle is ready.
std::unique_ptr<Loop> open_epoll_loop(const LoopOptions& options, std::string& why);

}  // namespace pp::platform
