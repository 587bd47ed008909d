// tests/engine/socket_shim.h -- the few test-side socket, file and process calls that POSIX
// and Winsock spell differently, so that one engine suite (test_loop.cpp, on loopback.h)
// compiles for every OS: io_uring, libaio, epoll and kqueue on POSIX, IOCP on Windows.
//
// Only what the tests do to their own end of a connection is here; the engine's side goes
// through core/net.h and core/loop.h, which are the same everywhere. Each function says
// where the two systems differ when that matters to a test. Test handles are `int` on both:
// Windows socket and file handle values are small multiples of 4 that fit.
#pragma once

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <optional>
#include <string>
#include <string_view>
#include <thread>

#if defined(_WIN32)
#include "platform/win32/winsock.h"
// shutdown(2)'s directions under their POSIX names.
#ifndef SHUT_WR
#define SHUT_WR SD_SEND
#define SHUT_RDWR SD_BOTH
#endif
#else
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include <csignal>
#endif

namespace pp::test {

/// What recv_now and send_now return when the socket has nothing to read or no room now.
inline constexpr std::ptrdiff_t kWouldBlock = -2;

#if defined(_WIN32)

/// Closes a test-side handle, a socket or a file: Windows closes the two with different
/// calls (closesocket, CloseHandle), so this tries the socket call first.
inline void close_fd(int fd) {
  if (::closesocket(static_cast<SOCKET>(fd)) != 0 && ::WSAGetLastError() == WSAENOTSOCK)
    ::CloseHandle(reinterpret_cast<HANDLE>(static_cast<std::intptr_t>(fd)));
}

/// The last failed socket call's error, for a failure message.
inline std::string socket_error_text() {
  return "WSA error " + std::to_string(::WSAGetLastError());
}

/// A plain blocking TCP socket for the test's own side of a connection.
inline int plain_socket() {
  platform::win32::ensure_winsock();
  return static_cast<int>(::socket(AF_INET, SOCK_STREAM, IPPROTO_TCP));
}

/// accept(2) on `listener`, blocking: a connection for the test's own use.
inline int accept_blocking(int listener) {
  return static_cast<int>(::accept(static_cast<SOCKET>(listener), nullptr, nullptr));
}

/// accept(2) on `listener`, blocking, for a connection the test hands to the engine. On
/// Windows a socket accepted from an overlapped listener (listen_tcp makes them so) is
/// overlapped too, which is what IOCP needs; there is no non-blocking flag to set.
inline int accept_for_engine(int listener) {
  return accept_blocking(listener);
}

/// Receives what `fd` has right now into `buf`, without waiting: the byte count, 0 at EOF,
/// kWouldBlock when nothing is there yet, -1 on error. (select first: Winsock's recv has no
/// MSG_DONTWAIT.)
inline std::ptrdiff_t recv_now(int fd, char* buf, std::size_t n) {
  auto s = static_cast<SOCKET>(fd);
  fd_set set;
  FD_ZERO(&set);
  FD_SET(s, &set);
  timeval zero{0, 0};
  int ready = ::select(0, &set, nullptr, nullptr, &zero);
  if (ready == 0) return kWouldBlock;
  if (ready < 0) return -1;
  int got = ::recv(s, buf, static_cast<int>(std::min<std::size_t>(n, 1 << 20)), 0);
  return got < 0 ? -1 : got;
}

/// Sends what `fd` takes right now from `buf`, without waiting: the byte count, kWouldBlock
/// when the socket is full, -1 on error. (Non-blocking for this one call: Winsock's send
/// has no MSG_DONTWAIT.)
inline std::ptrdiff_t send_now(int fd, const char* buf, std::size_t n) {
  auto s = static_cast<SOCKET>(fd);
  u_long on = 1, off = 0;
  ::ioctlsocket(s, FIONBIO, &on);
  int sent = ::send(s, buf, static_cast<int>(std::min<std::size_t>(n, 1 << 20)), 0);
  bool full = sent < 0 && ::WSAGetLastError() == WSAEWOULDBLOCK;
  ::ioctlsocket(s, FIONBIO, &off);
  return sent >= 0 ? sent : full ? kWouldBlock : -1;
}

/// Sends from `buf`, waiting for room: the byte count, -1 on error.
inline std::ptrdiff_t send_blocking(int fd, const char* buf, std::size_t n) {
  int sent =
      ::send(static_cast<SOCKET>(fd), buf, static_cast<int>(std::min<std::size_t>(n, 1 << 20)), 0);
  return sent < 0 ? -1 : sent;
}

/// Writes 1 MiB chunks to `fd` until `stop` is set or the socket fails, so that the peer
/// always has more to read. Non-blocking writes with short naps: Winsock's shutdown() does
/// not wake a send blocked in another thread, as POSIX's does, so the thread must poll
/// `stop` itself.
inline void write_until_stopped(int fd, const std::atomic<bool>& stop) {
  const std::string chunk(1 << 20, 'x');
  std::size_t pos = 0;
  while (!stop) {
    std::ptrdiff_t n = send_now(fd, chunk.data() + pos, chunk.size() - pos);
    if (n == -1) return;
    if (n > 0) pos = (pos + static_cast<std::size_t>(n)) % chunk.size();
    if (n == kWouldBlock) std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
}

/// Whether a child process would inherit `fd` (POSIX: no FD_CLOEXEC; Windows:
/// HANDLE_FLAG_INHERIT). The engine's sockets must never be inherited.
inline bool inherited_by_children(int fd) {
  DWORD flags = 0;
  if (!::GetHandleInformation(reinterpret_cast<HANDLE>(static_cast<std::intptr_t>(fd)), &flags))
    return true;  // unreadable counts as a failure of the check
  return (flags & HANDLE_FLAG_INHERIT) != 0;
}

/// Whether `fd` is in non-blocking mode, where the OS can say: nullopt on Windows, where
/// Winsock offers no way to read FIONBIO back (the engine's sockets are overlapped there
/// instead, and the suite's I/O on them is what checks it).
inline std::optional<bool> nonblocking(int) {
  return std::nullopt;
}

/// Writes `content` to a new temporary file; its path goes to `path`. False on failure.
inline bool write_temp_file(std::string_view content, std::string& path) {
  char dir[MAX_PATH] = {}, name[MAX_PATH] = {};
  if (::GetTempPathA(MAX_PATH, dir) == 0 || ::GetTempFileNameA(dir, "pps", 0, name) == 0)
    return false;
  path = name;
  HANDLE w = ::CreateFileA(name, GENERIC_WRITE, 0, nullptr, CREATE_ALWAYS, 0, nullptr);
  if (w == INVALID_HANDLE_VALUE) return false;
  DWORD written = 0;
  bool ok = ::WriteFile(w, content.data(), static_cast<DWORD>(content.size()), &written, nullptr);
  ::CloseHandle(w);
  return ok && written == content.size();
}

/// Deletes a file (its handles must be closed first: Windows refuses to delete an open file).
inline void remove_file(const std::string& path) {
  ::DeleteFileA(path.c_str());
}

/// Makes room for `need` descriptors in this process; false with `why` set when it cannot.
/// Windows has no per-process descriptor limit to raise (RLIMIT_NOFILE on POSIX).
inline bool raise_descriptor_limit(std::size_t, std::string&) {
  return true;
}

/// True when the test runs under Wine (its ntdll exports wine_get_version). Tests mark the
/// few places where Wine behaves unlike Windows with it, and say why there.
inline bool under_wine() {
  HMODULE ntdll = ::GetModuleHandleA("ntdll.dll");
  return ntdll != nullptr && ::GetProcAddress(ntdll, "wine_get_version") != nullptr;
}

/// For the span of a test: SIGPIPE at its default disposition (which kills the process), so
/// that surviving a write to a vanished peer shows the engine raised none. Windows has no
/// SIGPIPE: nothing to set there.
class DefaultSigpipe {
 public:
  DefaultSigpipe() {}   // user-provided, so that a guard nothing reads is no unused variable
  ~DefaultSigpipe() {}  // NOLINT(modernize-use-equals-default): the same
  DefaultSigpipe(const DefaultSigpipe&) = delete;
  DefaultSigpipe& operator=(const DefaultSigpipe&) = delete;

  /// Undoes, on the calling thread, the SIGPIPE block an earlier loop put there.
  static void unblock_on_this_thread() {}
};

/// Whether `r` is how a sendfile fails when the peer reset the connection part-way: EPIPE or
/// ECONNRESET on POSIX; TransmitFile may also report WSAECONNABORTED.
inline bool reset_peer_sendfile_error(std::int64_t r) {
  return r == -ECONNRESET || r == -EPIPE || r == -ECONNABORTED;
}

/// Whether `r` is how each later write fails once a reset has been reported: EPIPE on POSIX;
/// Winsock keeps reporting the reset, or that the socket is no longer connected.
inline bool write_after_reset_error(std::int64_t r) {
  return r == -EPIPE || r == -ECONNRESET || r == -ECONNABORTED || r == -ENOTCONN;
}

#else  // POSIX

/// Closes a test-side handle, a socket or a file: close(2) takes both.
inline void close_fd(int fd) {
  ::close(fd);
}

/// The last failed socket call's error, for a failure message.
inline std::string socket_error_text() {
  return std::strerror(errno);
}

/// A plain blocking TCP socket for the test's own side of a connection.
inline int plain_socket() {
  return ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
}

/// accept(2) on `listener`, blocking: a connection for the test's own use.
inline int accept_blocking(int listener) {
  return ::accept4(listener, nullptr, nullptr, SOCK_CLOEXEC);
}

/// accept(2) on `listener`, blocking, for a connection the test hands to the engine: made
/// non-blocking, as the engine's POSIX backends need.
inline int accept_for_engine(int listener) {
  return ::accept4(listener, nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
}

/// Receives what `fd` has right now into `buf`, without waiting: the byte count, 0 at EOF,
/// kWouldBlock when nothing is there yet, -1 on error.
inline std::ptrdiff_t recv_now(int fd, char* buf, std::size_t n) {
  for (;;) {
    ssize_t got = ::recv(fd, buf, n, MSG_DONTWAIT);
    if (got >= 0) return got;
    if (errno == EAGAIN || errno == EWOULDBLOCK) return kWouldBlock;
    if (errno != EINTR) return -1;
  }
}

/// Sends what `fd` takes right now from `buf`, without waiting: the byte count, kWouldBlock
/// when the socket is full, -1 on error. Never raises SIGPIPE.
inline std::ptrdiff_t send_now(int fd, const char* buf, std::size_t n) {
  for (;;) {
    ssize_t sent = ::send(fd, buf, n, MSG_DONTWAIT | MSG_NOSIGNAL);
    if (sent >= 0) return sent;
    if (errno == EAGAIN || errno == EWOULDBLOCK) return kWouldBlock;
    if (errno != EINTR) return -1;
  }
}

/// Sends from `buf`, waiting for room: the byte count, -1 on error. Never raises SIGPIPE.
inline std::ptrdiff_t send_blocking(int fd, const char* buf, std::size_t n) {
  for (;;) {
    ssize_t sent = ::send(fd, buf, n, MSG_NOSIGNAL);
    if (sent >= 0 || errno != EINTR) return sent;
  }
}

/// Writes 1 MiB chunks to `fd` until `stop` is set or the socket fails, so that the peer
/// always has more to read. Blocking writes: the test sets `stop`, then shutdown(SHUT_RDWR)
/// on `fd` wakes a send blocked here.
inline void write_until_stopped(int fd, const std::atomic<bool>& stop) {
  const std::string chunk(1 << 20, 'x');
  while (!stop)
    if (send_blocking(fd, chunk.data(), chunk.size()) <= 0) return;
}

/// Whether a child process would inherit `fd` (POSIX: no FD_CLOEXEC; Windows:
/// HANDLE_FLAG_INHERIT). The engine's sockets must never be inherited.
inline bool inherited_by_children(int fd) {
  int flags = ::fcntl(fd, F_GETFD);
  return flags < 0 || (flags & FD_CLOEXEC) == 0;
}

/// Whether `fd` is in non-blocking mode, where the OS can say (nullopt on Windows).
inline std::optional<bool> nonblocking(int fd) {
  int flags = ::fcntl(fd, F_GETFL);
  return flags >= 0 && (flags & O_NONBLOCK) != 0;
}

/// Writes `content` to a new temporary file; its path goes to `path`. False on failure.
inline bool write_temp_file(std::string_view content, std::string& path) {
  char name[] = "/tmp/pp-engine-sendfile-XXXXXX";
  int fd = ::mkstemp(name);
  if (fd < 0) return false;
  path = name;
  ssize_t n = ::write(fd, content.data(), content.size());
  ::close(fd);
  return n == static_cast<ssize_t>(content.size());
}

/// Deletes a file (its handles must be closed first: Windows refuses to delete an open file).
inline void remove_file(const std::string& path) {
  ::unlink(path.c_str());
}

/// Makes room for `need` descriptors in this process (RLIMIT_NOFILE, up to its hard limit);
/// false with `why` set when it cannot.
inline bool raise_descriptor_limit(std::size_t need, std::string& why) {
  rlimit lim{};
  if (::getrlimit(RLIMIT_NOFILE, &lim) != 0) {
    why = std::string("getrlimit: ") + std::strerror(errno);
    return false;
  }
  if (lim.rlim_cur < need) {
    rlimit raised = lim;
    raised.rlim_cur = std::min<rlim_t>(need, lim.rlim_max);
    ::setrlimit(RLIMIT_NOFILE, &raised);
    ::getrlimit(RLIMIT_NOFILE, &lim);
  }
  if (lim.rlim_cur >= need) return true;
  why = "RLIMIT_NOFILE hard limit too low: " + std::to_string(lim.rlim_max);
  return false;
}

/// True when the test runs under Wine: never, off Windows.
constexpr bool under_wine() {
  return false;
}

/// For the span of a test: SIGPIPE at its default disposition (which kills the process), so
/// that surviving a write to a vanished peer shows the engine raised none. Windows has no
/// SIGPIPE: nothing to set there.
class DefaultSigpipe {
 public:
  DefaultSigpipe() {
    struct sigaction dfl {};
    dfl.sa_handler = SIG_DFL;
    sigemptyset(&dfl.sa_mask);
    sigaction(SIGPIPE, &dfl, &old_);
  }
  ~DefaultSigpipe() { sigaction(SIGPIPE, &old_, nullptr); }
  DefaultSigpipe(const DefaultSigpipe&) = delete;
  DefaultSigpipe& operator=(const DefaultSigpipe&) = delete;

  /// Undoes, on the calling thread, the SIGPIPE block an earlier loop put there (each
  /// backend blocks SIGPIPE on its loop's thread; core/loop.h).
  static void unblock_on_this_thread() {
    sigset_t pipe_set;
    sigemptyset(&pipe_set);
    sigaddset(&pipe_set, SIGPIPE);
    pthread_sigmask(SIG_UNBLOCK, &pipe_set, nullptr);
  }

 private:
  struct sigaction old_ {};
};

/// Whether `r` is how a sendfile fails when the peer reset the connection part-way: EPIPE or
/// ECONNRESET on POSIX; TransmitFile may also report WSAECONNABORTED.
inline bool reset_peer_sendfile_error(std::int64_t r) {
  return r == -ECONNRESET || r == -EPIPE;
}

/// Whether `r` is how each later write fails once a reset has been reported: EPIPE on POSIX;
/// Winsock keeps reporting the reset, or that the socket is no longer connected.
inline bool write_after_reset_error(std::int64_t r) {
  return r == -EPIPE;
}

#endif

}  // namespace pp::test
