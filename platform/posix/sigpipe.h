// platform/posix/sigpipe.h -- how every POSIX backend keeps SIGPIPE from killing the process.
//
// Sends use MSG_NOSIGNAL (SO_NOSIGPIPE on macOS), but sendfile(2) has no such flag: a peer
// that vanished mid-transfer raises SIGPIPE at the sending thread. The loop's thread blocks
// SIGPIPE (once, when it first drives the loop), and a sendfile that fails with EPIPE
// consumes the signal it left pending. The process's disposition is never touched, so an
// application that wants SIGPIPE elsewhere keeps it.
#pragma once

#include <signal.h>
#include <time.h>

#include <cerrno>

namespace pp::platform {

/// Blocks SIGPIPE for the calling thread (the loop's).
inline void block_sigpipe_on_this_thread() {
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGPIPE);
  pthread_sigmask(SIG_BLOCK, &set, nullptr);
}

/// Takes the SIGPIPE that a failed sendfile left pending on this thread, if any.
inline void consume_pending_sigpipe() {
#if defined(__APPLE__)
  // No sigtimedwait: sockets there carry SO_NOSIGPIPE, so nothing is pending.
#else
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGPIPE);
  timespec zero{};
  while (sigtimedwait(&set, nullptr, &zero) < 0 && errno == EINTR) {
  }
#endif
}

}  // namespace pp::platform
