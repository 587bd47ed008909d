// tests/engine/loopback.h -- helpers for engine tests on loopback TCP, shared by every
// backend's tests on every OS: a recording operation (Probe), a bounded run-until, test-side
// sockets. What POSIX and Winsock spell differently is in socket_shim.h, so that the same
// suite (test_loop.cpp) runs on io_uring, libaio, epoll, kqueue and IOCP.
//
// Everything here is bounded in time: a test that waits uses run_until, which gives up at a
// deadline (and the RUN_UNTIL macro turns that into a failure) instead of hanging.
#pragma once

#include <doctest/doctest.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <climits>
#include <cstdint>
#include <cstring>
#include <functional>
#include <string>
#include <utility>
#include <vector>

#include "core/loop.h"
#include "core/net.h"
#include "tests/engine/socket_shim.h"
#if defined(PP_TEST_KQUEUE_EMULATION)
#include "platform/bsd/backends.h"
#endif

namespace pp::test {

using namespace std::chrono_literals;

/// True while a test is inside Loop::submit: a callback that sees it set ran inside submit,
/// which the contract forbids.
inline bool in_submit = false;

/// Submits through here so that callbacks can check they never run inside submit().
inline void submit(Loop& loop, Operation& op) {
  in_submit = true;
  loop.submit(op);
  in_submit = false;
}

/// An operation that records every completion it gets. Prepare `op` with Probe::on_complete
/// and the probe itself as context: `p.op.prep_recv(fd, true, Probe::on_complete, &p)`.
struct Probe {
  Operation op;
  std::vector<std::int64_t> results;
  std::vector<bool> mores;
  std::string bytes;  // recv: every completion's data, concatenated
  int finals = 0;     // completions with more == false (must end up exactly 1)
  bool ran_in_submit = false;
  bool data_mismatch = false;  // a recv completion whose data size differs from its result

  bool done() const { return finals > 0; }
  std::int64_t last() const { return results.empty() ? INT64_MIN : results.back(); }
  bool last_more() const { return !mores.empty() && mores.back(); }

  static void on_complete(Operation& op, const Completion& c) {
    auto* p = static_cast<Probe*>(op.user);
    if (in_submit) p->ran_in_submit = true;
    p->results.push_back(c.result);
    p->mores.push_back(c.more);
    if (op.code == OpCode::recv) {
      if (c.result > 0 && c.data.size() != static_cast<std::size_t>(c.result))
        p->data_mismatch = true;
      if (c.result > 0)
        p->bytes.append(reinterpret_cast<const char*>(c.data.data()), c.data.size());
    }
    if (!c.more) ++p->finals;
  }
};

/// Runs `loop` until `pred()` holds or `limit` passes; false on timeout. `pred` may do
/// test-side work each turn (drain a client socket, write more).
template <class Pred>
bool run_until(Loop& loop, Pred&& pred, std::chrono::milliseconds limit = 10s) {
  auto deadline = std::chrono::steady_clock::now() + limit;
  while (!pred()) {
    if (std::chrono::steady_clock::now() > deadline) return false;
    loop.run_once(1ms);
  }
  return true;
}

/// Fails the test (instead of hanging) when `cond` does not come true within 10 s.
#define PP_RUN_UNTIL(loop, cond)                                         \
  REQUIRE_MESSAGE(::pp::test::run_until((loop), [&] { return (cond); }), \
                  "timed out waiting for: " #cond)

/// Runs `loop` for about `d`, for checks that something does NOT happen.
inline void run_for(Loop& loop, std::chrono::milliseconds d) {
  auto until = std::chrono::steady_clock::now() + d;
  while (std::chrono::steady_clock::now() < until) loop.run_once(1ms);
}

/// Checks what every finished Probe must satisfy: exactly one final completion, all earlier
/// ones flagged `more`, none inside submit(), recv data matching its result.
inline void check_probe(const Probe& p) {
  CHECK(p.finals == 1);
  for (std::size_t i = 0; i + 1 < p.mores.size(); ++i) CHECK(p.mores[i]);
  CHECK_FALSE(p.ran_in_submit);
  CHECK_FALSE(p.data_mismatch);
}

/// Cancels `victim` through the loop and waits for both to finish: the cancel with 0, the
/// victim with its last completion, -ECANCELED.
inline void cancel_and_wait(Loop& loop, Probe& victim) {
  Probe c;
  c.op.prep_cancel(&victim.op, Probe::on_complete, &c);
  submit(loop, c.op);
  PP_RUN_UNTIL(loop, c.done() && victim.done());
  CHECK(c.last() == 0);
  CHECK(victim.last() == -ECANCELED);
  CHECK_FALSE(victim.last_more());
}

/// An owned socket or file (an fd on POSIX, a handle on Windows), closed on destruction.
class Fd {
 public:
  Fd() = default;
  explicit Fd(int fd) : fd_(fd) {}
  Fd(Fd&& o) noexcept : fd_(std::exchange(o.fd_, -1)) {}
  Fd& operator=(Fd&& o) noexcept {
    if (this != &o) {
      reset();
      fd_ = std::exchange(o.fd_, -1);
    }
    return *this;
  }
  Fd(const Fd&) = delete;
  Fd& operator=(const Fd&) = delete;
  ~Fd() { reset(); }
  int get() const { return fd_; }
  /// Gives up ownership (e.g. after handing the fd to a close operation).
  int release() { return std::exchange(fd_, -1); }
  void reset() {
    if (fd_ >= 0) close_fd(fd_);
    fd_ = -1;
  }

 private:
  int fd_ = -1;
};

/// Closes `fd` through the loop (prep_close) and waits for it to finish with 0.
inline void close_and_wait(Loop& loop, Fd& fd) {
  Probe c;
  c.op.prep_close(fd.release(), Probe::on_complete, &c);
  submit(loop, c.op);
  PP_RUN_UNTIL(loop, c.done());
  CHECK(c.last() == 0);
}

/// A listening socket on 127.0.0.1, on a free port.
struct Listener {
  Fd fd;
  std::uint16_t port = 0;
  Listener() {
    std::string err;
    fd = Fd(static_cast<int>(listen_tcp("127.0.0.1", 0, false, 4096, err)));
    REQUIRE_MESSAGE(fd.get() >= 0, err);
    port = local_port(fd.get());
  }
  Endpoint endpoint() const {
    Endpoint ep;
    std::string err;
    REQUIRE_MESSAGE(resolve_endpoint("127.0.0.1", port, ep, err), err);
    return ep;
  }
};

/// A blocking client socket connected to 127.0.0.1:`port` (loopback connects complete from
/// the listener's backlog, without the listener's loop running).
inline Fd connect_client(std::uint16_t port) {
  Fd fd(plain_socket());
  REQUIRE_MESSAGE(fd.get() >= 0, socket_error_text());
  sockaddr_in sa{};
  sa.sin_family = AF_INET;
  sa.sin_port = htons(port);
  sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  REQUIRE_MESSAGE(::connect(fd.get(), reinterpret_cast<sockaddr*>(&sa), sizeof sa) == 0,
                  socket_error_text());
  return fd;
}

/// A connected loopback pair: `client` blocking (the test's side), `server` ready for the
/// engine (non-blocking on POSIX, overlapped on Windows).
struct TcpPair {
  Fd client;
  Fd server;
};
inline TcpPair tcp_pair(Listener& l) {
  TcpPair p;
  p.client = connect_client(l.port);
  p.server = Fd(accept_for_engine(l.fd.get()));
  REQUIRE_MESSAGE(p.server.get() >= 0, socket_error_text());
  return p;
}

/// Appends whatever `fd` has ready to `out` without blocking. Returns false on EOF/error.
inline bool read_available(int fd, std::string& out) {
  char buf[65536];
  for (;;) {
    std::ptrdiff_t n = recv_now(fd, buf, sizeof buf);
    if (n <= 0) return n == kWouldBlock;
    out.append(buf, static_cast<std::size_t>(n));
  }
}

/// Writes as much of `data` from `pos` as `fd` takes now, without blocking; advances `pos`.
inline void write_available(int fd, const std::string& data, std::size_t& pos) {
  while (pos < data.size()) {
    std::ptrdiff_t n = send_now(fd, data.data() + pos, data.size() - pos);
    if (n <= 0) return;
    pos += static_cast<std::size_t>(n);
  }
}

/// Writes all of `s` (blocking); for small messages the socket buffer always takes.
inline void write_all(int fd, std::string_view s) {
  while (!s.empty()) {
    std::ptrdiff_t n = send_blocking(fd, s.data(), s.size());
    REQUIRE_MESSAGE(n > 0, socket_error_text());
    s.remove_prefix(static_cast<std::size_t>(n));
  }
}

/// Sets SO_SNDBUF and SO_RCVBUF where given (> 0).
inline void set_buffer_sizes(int fd, int sndbuf, int rcvbuf) {
  // The char* cast is Winsock's signature; POSIX takes it as the void* it wants.
  if (sndbuf > 0)
    ::setsockopt(fd, SOL_SOCKET, SO_SNDBUF, reinterpret_cast<const char*>(&sndbuf), sizeof sndbuf);
  if (rcvbuf > 0)
    ::setsockopt(fd, SOL_SOCKET, SO_RCVBUF, reinterpret_cast<const char*>(&rcvbuf), sizeof rcvbuf);
}

/// Closes `fd` with SO_LINGER 0, so the peer gets a reset instead of a FIN.
inline void close_with_reset(Fd& fd) {
  linger lg{1, 0};
  ::setsockopt(fd.get(), SOL_SOCKET, SO_LINGER, reinterpret_cast<const char*>(&lg), sizeof lg);
  fd.reset();
}

/// Deterministic pseudo-random bytes (xorshift), so byte-exact checks catch reordering.
inline std::string pattern(std::size_t n, std::uint32_t seed = 0x9e3779b9u) {
  std::string s(n, '\0');
  std::uint32_t x = seed ? seed : 1;
  for (auto& c : s) {
    x ^= x << 13;
    x ^= x >> 17;
    x ^= x << 5;
    c = static_cast<char>(x);
  }
  return s;
}

/// One backend a test binary runs the engine suite against: its name and how to open a loop
/// on it.
struct BackendUnderTest {
  std::string name;
  std::function<OpenLoopResult(const LoopOptions&)> open;
};

/// The backends this test binary runs the suite against. Tests that open loops go through
/// this (or for_each_backend), never available_backends()/open_loop directly, so that the
/// same suite runs on a backend this OS's open_loop does not offer. Normally: every backend
/// available_backends() lists, opened by open_loop. Built with PP_TEST_KQUEUE_EMULATION
/// (engine_tests_kqueue, tests/engine/meson.build): the kqueue backend alone, on the
/// test-only kqueue emulation -- that binary links Linux's open_loop, which has no kqueue.
inline std::vector<BackendUnderTest> backends_under_test() {
#if defined(PP_TEST_KQUEUE_EMULATION)
  return {{"kqueue", [](const LoopOptions& options) {
             OpenLoopResult r;
             std::string why;
             r.loop = platform::open_kqueue_loop(options, why);
             if (r.loop)
               r.reason = "backend kqueue: on the test-only kqueue emulation";
             else
               r.error = "kqueue (emulated): " + why;
             return r;
           }}};
#else
  std::vector<BackendUnderTest> out;
  for (BackendKind kind : available_backends())
    out.push_back({std::string(to_string(kind)),
                   [kind](const LoopOptions& options) { return open_loop(kind, options); }});
  return out;
#endif
}

/// Opens a fresh loop with `options` on each backend under test and calls
/// `body(loop, name)`. Each backend is a doctest subcase named "backend <name>": doctest
/// prints it in the header of every failure and crash, beside each assertion with -s, and
/// in its XML report; `--subcase="backend libaio"` runs a test on that backend alone.
/// (doctest re-runs the test case once per subcase, so code around the call runs once per
/// backend too.)
template <class Body>
void for_each_backend(Body&& body, const LoopOptions& options = {}) {
  auto backends = backends_under_test();
  REQUIRE_MESSAGE(!backends.empty(), "no backend available on this host");
  for (const BackendUnderTest& backend : backends) {
    SUBCASE(("backend " + backend.name).c_str()) {
      INFO("backend: " << backend.name);
      auto opened = backend.open(options);
      REQUIRE_MESSAGE(opened.loop, opened.error);
      CHECK(opened.loop->backend_name() == backend.name);
      body(*opened.loop, backend.name);
    }
  }
}

}  // namespace pp::test
