// platform/bsd/backends.h -- constructor of the BSD/macOS backend, used by open_loop.cpp
// (everyone else goes through pp::open_loop) and by the engine tests that run the kqueue
// backend on Linux through a test-only kqueue emulation (tests/engine/kqueue_emulation/).
#pragma once

#include <memory>
#include <string>

#include "core/loop.h"

namespace pp::platform {

/// A kqueue loop: the backend for FreeBSD, DragonFly, NetBSD, OpenBSD and macOS, the only
/// completion engine those systems get. It emulates the completion model on readiness
/// (platform/posix/readiness_loop.h): each fd is registered once, EVFILT_READ and
/// EVFILT_WRITE edge-triggered (EV_CLEAR), and every syscall runs when its fd is ready;
/// `Loop::post` triggers an EVFILT_USER event. Returns null with `why` set when the host
/// cannot run it (kqueue(2) failed, or EVFILT_USER was refused).
std::unique_ptr<Loop> open_kqueue_loop(const LoopOptions& options, std::string& why);

}  // namespace pp::platform
