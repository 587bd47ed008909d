// platform/posix/send_file.h -- one sendfile(2) call, whatever this OS's signature.
//
// Linux: sendfile(out_sock, in_file, &offset, count). FreeBSD/DragonFly: sendfile(in_file,
// out_sock, offset, count, hdtr, &sbytes, flags), which may move bytes *and* report EAGAIN.
// macOS: sendfile(in_file, out_sock, offset, &len, hdtr, flags), the same in/out length.
// The kqueue emulation used by the tests on Linux runs the Linux branch; the BSD branches
// are compiled only on BSD (see platform/bsd/README.md for what that leaves unexercised).
#pragma once

#include <sys/types.h>
#include <sys/socket.h>
#include <sys/uio.h>
#if defined(__linux__)
#include <sys/sendfile.h>
#endif

#include <algorithm>
#include <cerrno>
#include <cstdint>

namespace pp::platform {

/// Sends up to `count` bytes of `file` from `offset` to socket `sock`. `moved` receives
/// the bytes that went out (possibly > 0 together with -EAGAIN on the BSDs). Returns 0 or
/// a negated errno; 0 with `moved == 0` is the end of the file.
inline int send_file_chunk(int sock, int file, std::uint64_t offset, std::uint64_t count,
                           std::uint64_t& moved) {
  moved = 0;
#if defined(__linux__)
  // The kernel moves at most MAX_RW_COUNT (2 GiB - 4 KiB) per call.
  constexpr std::uint64_t kMaxChunk = 0x7ffff000;
  off_t off = static_cast<off_t>(offset);
  ssize_t n = ::sendfile(sock, file, &off, std::min(count, kMaxChunk));
  if (n < 0) return -errno;
  moved = static_cast<std::uint64_t>(n);
  return 0;
#elif defined(__APPLE__)
  off_t len = static_cast<off_t>(count);
  int rc = ::sendfile(file, sock, static_cast<off_t>(offset), &len, nullptr, 0);
  moved = static_cast<std::uint64_t>(len);
  return rc == 0 ? 0 : -errno;
#else  // FreeBSD, DragonFly
  off_t sbytes = 0;
  int rc = ::sendfile(file, sock, static_cast<off_t>(offset), static_cast<size_t>(count),
                      nullptr, &sbytes, 0);
  moved = static_cast<std::uint64_t>(sbytes);
  return rc == 0 ? 0 : -errno;
#endif
}

}  // namespace pp::platform
