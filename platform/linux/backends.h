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

/// An epoll loop: the fallback for hosts that block io_uring. It emulates the
/// completion model by doing each syscall when the handle is ready.
std::unique_ptr<Loop> open_epoll_loop(const LoopOptions& options, std::string& why);

}  // namespace pp::platform
