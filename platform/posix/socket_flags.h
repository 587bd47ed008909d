// platform/posix/socket_flags.h -- the flags every engine socket carries, for the systems that
// cannot set them atomically (macOS: no SOCK_NONBLOCK/SOCK_CLOEXEC, no accept4).
#pragma once

#include <fcntl.h>
#include <sys/socket.h>

namespace pp::platform {

/// Makes `fd` non-blocking and close-on-exec, and (where the OS has it) keeps a send to a
/// vanished peer from raising SIGPIPE. Used only where socket(2)/accept(2) cannot take the
/// flags themselves; no fork can run on an engine thread in between.
inline void set_engine_socket_flags(int fd) {
  ::fcntl(fd, F_SETFD, FD_CLOEXEC);
  ::fcntl(fd, F_SETFL, ::fcntl(fd, F_GETFL) | O_NONBLOCK);
#if defined(SO_NOSIGPIPE)
  int one = 1;
  ::setsockopt(fd, SOL_SOCKET, SO_NOSIGPIPE, &one, sizeof one);
#endif
}

}  // namespace pp::platform
