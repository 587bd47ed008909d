// tests/engine/test_uring.cpp -- io_uring-specific behaviour of the engine, on loopback:
// the probe and the unavailable path, buffer-ring exhaustion, multishot accept, partial
// gathered sends, sendfile, cancel, post() wake-ups, and the fallbacks of older kernels
// (PYPARALLEL_IO_URING_COMPAT). The behaviour every backend shares is in test_loop.cpp.
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/utsname.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include <doctest/doctest.h>

#include "core/loop.h"
#include "core/net.h"
#include "platform/linux/backends.h"
#include "platform/linux/uring_loop.h"

namespace {

using namespace std::chrono_literals;
using pp::Completion;
using pp::Handle;
using pp::Loop;
using pp::Operation;

/// Sets an environment variable for one scope.
struct ScopedEnv {
  std::string name;
  ScopedEnv(const char* n, const char* value) : name(n) { ::setenv(n, value, 1); }
  ~ScopedEnv() { ::unsetenv(name.c_str()); }
};

/// An io_uring loop, or null (with a message) where this host blocks io_uring.
std::unique_ptr<Loop> open_uring(const pp::LoopOptions& options = {}) {
  auto r = pp::open_loop(pp::BackendKind::io_uring, options);
  if (!r.loop) MESSAGE("io_uring unavailable here, skipping: " << r.error);
  return std::move(r.loop);
}

/// Runs `loop` until `done()` or `limit` passes; false on timeout.
template <class Pred>
bool run_until(Loop& loop, Pred done, std::chrono::milliseconds limit = 20s) {
  auto deadline = std::chrono::steady_clock::now() + limit;
  while (!done()) {
    if (std::chrono::steady_clock::now() > deadline) return false;
    loop.run_once(10ms);
  }
  return true;
}

int kernel_version() {
  utsname u{};
  ::uname(&u);
  int major = 0, minor = 0;
  std::sscanf(u.release, "%d.%d", &major, &minor);
  return major * 100 + minor;
}

/// The byte at position `i` of every test stream: not periodic at any buffer size used.
std::byte pattern(std::uint64_t i) {
  return std::byte((i * 131 + (i >> 9) * 7 + 3) & 0xff);
}

struct Listener {
  Handle fd = pp::invalid_handle;
  std::uint16_t port = 0;
  Listener() {
    std::string err;
    fd = pp::listen_tcp("127.0.0.1", 0, false, 1024, err);
    REQUIRE_MESSAGE(fd != pp::invalid_handle, err);
    port = pp::local_port(fd);
  }
  ~Listener() { pp::close_socket(fd); }
};

/// A blocking client socket connected to 127.0.0.1:port.
int connect_client(std::uint16_t port) {
  int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in sa{};
  sa.sin_family = AF_INET;
  sa.sin_port = htons(port);
  sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  REQUIRE(::connect(fd, reinterpret_cast<sockaddr*>(&sa), sizeof sa) == 0);
  return fd;
}

/// A connected pair: `server` non-blocking (as accept gives it), `client` blocking.
struct Pair {
  int server = -1;
  int client = -1;
  Pair() {
    Listener l;
    client = connect_client(l.port);
    pollfd p{static_cast<int>(l.fd), POLLIN, 0};
    REQUIRE(::poll(&p, 1, 5000) == 1);
    server = ::accept4(static_cast<int>(l.fd), nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
    REQUIRE(server >= 0);
  }
  ~Pair() {
    if (server >= 0) ::close(server);
    if (client >= 0) ::close(client);
  }
};

/// Reads `expect` bytes from a blocking socket, slowly, checking them against pattern()
/// from `first`. Returns the bytes that matched before the first mismatch or EOF.
std::uint64_t slow_read(int fd, std::uint64_t expect, std::uint64_t first, bool until_eof = false) {
  std::vector<std::byte> buf(4096);
  std::uint64_t got = 0;
  int reads = 0;
  while (until_eof || got < expect) {
    ssize_t n = ::recv(fd, buf.data(), buf.size(), 0);
    if (n <= 0) break;
    for (ssize_t i = 0; i < n; ++i)
      if (buf[i] != pattern(first + got + i)) return got + i;
    got += n;
    if (++reads % 64 == 0) std::this_thread::sleep_for(200us);  // a slow reader
  }
  return got;
}

// ---------------------------------------------------------------------------------------

TEST_CASE("io_uring: ring set-up, opcode probe and the features it reports") {
  auto loop = open_uring();
  if (!loop) return;
  CHECK(loop->backend_name() == "io_uring");
  pp::platform::UringInfo info;
  REQUIRE(pp::platform::describe_uring_loop(*loop, info));
  MESSAGE(info.summary);
  CHECK(info.recv_buffers == 512);
  CHECK(info.recv_buffer_size == 16 * 1024);
  if (kernel_version() >= 601) {  // every feature exists here: none may be left unused
    CHECK(info.single_issuer);
    CHECK(info.defer_taskrun);
    CHECK(info.buffer_ring);
    CHECK(info.multishot_accept);
    CHECK(info.multishot_recv);
  }
  CHECK_FALSE(info.sqpoll);
}

TEST_CASE("io_uring: PYPARALLEL_DISABLE_IO_URING makes it unavailable, auto falls back") {
  ScopedEnv env(pp::platform::kDisableUringEnv, "1");
  std::string why;
  CHECK(pp::platform::open_uring_loop({}, why) == nullptr);
  CHECK(why == "disabled by PYPARALLEL_DISABLE_IO_URING");
  auto forced = pp::open_loop(pp::BackendKind::io_uring);
  CHECK_FALSE(forced.loop);
  CHECK(forced.error.find("disabled by PYPARALLEL_DISABLE_IO_URING") != std::string::npos);
  auto automatic = pp::open_loop(pp::BackendKind::automatic);
  if (automatic.loop) {
    CHECK(automatic.loop->backend_name() != "io_uring");
    CHECK(automatic.reason.find("disabled by PYPARALLEL_DISABLE_IO_URING") != std::string::npos);
  } else {
    CHECK(automatic.error.find("disabled by PYPARALLEL_DISABLE_IO_URING") != std::string::npos);
  }
}

TEST_CASE("io_uring: compat mode uses the old-kernel fallbacks") {
  ScopedEnv env(pp::platform::kUringCompatEnv, "1");
  auto loop = open_uring();
  if (!loop) return;
  pp::platform::UringInfo info;
  REQUIRE(pp::platform::describe_uring_loop(*loop, info));
  MESSAGE(info.summary);
  CHECK_FALSE(info.buffer_ring);
  CHECK_FALSE(info.multishot_accept);
  CHECK_FALSE(info.multishot_recv);
  CHECK_FALSE(info.defer_taskrun);
}

// ---------------------------------------------------------------------------------------

struct RecvState {
  std::uint64_t received = 0;
  std::uint64_t bad_at = ~std::uint64_t{0};
  std::int64_t final_result = 1;
  bool finished = false;
  int completions = 0;
  bool saw_enobufs = false;
};

void on_recv_stream(Operation& op, const Completion& c) {
  auto& s = *static_cast<RecvState*>(op.user);
  ++s.completions;
  if (c.result == -ENOBUFS) s.saw_enobufs = true;
  if (c.result > 0) {
    for (std::size_t i = 0; i < c.data.size(); ++i)
      if (c.data[i] != pattern(s.received + i) && s.bad_at == ~std::uint64_t{0})
        s.bad_at = s.received + i;
    s.received += c.data.size();
    // A slow consumer: data piles up in the socket while the callback dawdles.
    if (s.completions % 128 == 0) std::this_thread::sleep_for(1ms);
  }
  if (!c.more) {
    s.finished = true;
    s.final_result = c.result;
  }
}

/// Opens a loop for one subcase: the kernel's best features, or the old-kernel fallbacks.
std::unique_ptr<Loop> open_mode(bool compat, const pp::LoopOptions& options = {}) {
  if (!compat) return open_uring(options);
  ScopedEnv env(pp::platform::kUringCompatEnv, "1");
  return open_uring(options);
}

void recv_outruns_buffers(bool compat, bool multishot) {
  pp::LoopOptions options;
  options.recv_buffer_count = 4;  // 4 KiB of buffers against 8 MiB in flight
  options.recv_buffer_size = 1024;
  auto loop = open_mode(compat, options);
  if (!loop) return;
  Pair pair;
  constexpr std::uint64_t kTotal = 8u << 20;
  std::thread writer([&] {
    std::vector<std::byte> chunk(64 * 1024);
    for (std::uint64_t sent = 0; sent < kTotal;) {
      std::size_t n = std::min<std::uint64_t>(chunk.size(), kTotal - sent);
      for (std::size_t i = 0; i < n; ++i) chunk[i] = pattern(sent + i);
      ssize_t w = ::send(pair.client, chunk.data(), n, MSG_NOSIGNAL);
      if (w <= 0) break;
      sent += w;
    }
    ::shutdown(pair.client, SHUT_WR);  // EOF ends the stream
  });
  RecvState s;
  Operation op;
  if (multishot) {
    op.prep_recv(pair.server, true, on_recv_stream, &s);
    loop->submit(op);
    CHECK(run_until(*loop, [&] { return s.finished; }));
  } else {
    // Single-shot recvs, re-submitted from the loop after each completion.
    op.prep_recv(pair.server, false, on_recv_stream, &s);
    loop->submit(op);
    CHECK(run_until(*loop, [&] {
      if (s.finished && s.final_result > 0) {
        s.finished = false;
        op.prep_recv(pair.server, false, on_recv_stream, &s);
        loop->submit(op);
      }
      return s.finished;
    }));
  }
  writer.join();
  CHECK(s.final_result == 0);  // EOF, not ENOBUFS
  CHECK_FALSE(s.saw_enobufs);
  CHECK(s.received == kTotal);
  CHECK(s.bad_at == ~std::uint64_t{0});
  pp::platform::UringInfo info;
  pp::platform::describe_uring_loop(*loop, info);
  if (info.buffer_ring && multishot) CHECK(info.enobufs_rearms > 0);  // the ring did run dry
  MESSAGE(info.summary << "; ENOBUFS re-arms: " << info.enobufs_rearms);
}

TEST_CASE("io_uring: a recv outrunning its buffers loses nothing and never sees ENOBUFS") {
  SUBCASE("multishot, buffer ring") {
    recv_outruns_buffers(false, true);
  }
  SUBCASE("single-shot, buffer ring") {
    recv_outruns_buffers(false, false);
  }
  SUBCASE("multishot, compat (pool, re-armed)") {
    recv_outruns_buffers(true, true);
  }
}

// ---------------------------------------------------------------------------------------

struct AcceptState {
  std::vector<int> fds;
  bool all_more = true;
  bool finished = false;
  std::int64_t final_result = 1;
};

void on_accept_many(Operation& op, const Completion& c) {
  auto& s = *static_cast<AcceptState*>(op.user);
  if (c.result >= 0) {
    s.fds.push_back(static_cast<int>(c.result));
    if (!c.more) s.all_more = false;
  }
  if (!c.more) {
    s.finished = true;
    s.final_result = c.result;
  }
}

struct CancelState {
  bool done = false;
  std::int64_t result = 1;
};

void on_cancel_done(Operation& op, const Completion& c) {
  auto& s = *static_cast<CancelState*>(op.user);
  s.done = true;
  s.result = c.result;
}

void accept_many(bool compat) {
  auto loop = open_mode(compat);
  if (!loop) return;
  Listener l;
  constexpr int kConnections = 300;
  AcceptState s;
  Operation accept;
  accept.prep_accept(l.fd, true, on_accept_many, &s);
  loop->submit(accept);
  std::vector<int> clients;
  std::atomic<bool> connected{false};
  std::thread connector([&] {
    for (int i = 0; i < kConnections; ++i) clients.push_back(connect_client(l.port));
    connected = true;
  });
  CHECK(run_until(*loop, [&] { return s.fds.size() >= kConnections || s.finished; }));
  connector.join();
  CHECK(s.fds.size() == kConnections);
  CHECK(s.all_more);
  CHECK_FALSE(s.finished);
  for (int fd : s.fds) CHECK((::fcntl(fd, F_GETFL) & O_NONBLOCK) != 0);
  for (int fd : s.fds) CHECK((::fcntl(fd, F_GETFD) & FD_CLOEXEC) != 0);
  // Ending the stream: cancel; the accept's last completion is -ECANCELED.
  CancelState cs;
  Operation cancel;
  cancel.prep_cancel(&accept, on_cancel_done, &cs);
  loop->submit(cancel);
  CHECK(run_until(*loop, [&] { return s.finished && cs.done; }));
  CHECK(s.final_result == -ECANCELED);
  CHECK(cs.result == 0);
  for (int fd : s.fds) ::close(fd);
  for (int fd : clients) ::close(fd);
}

TEST_CASE("io_uring: multishot accept of many connections, ended by a cancel") {
  SUBCASE("multishot") {
    accept_many(false);
  }
  SUBCASE("compat: re-armed single-shot") {
    accept_many(true);
  }
}

// ---------------------------------------------------------------------------------------

struct OneShot {
  bool done = false;
  std::int64_t result = 1;
  int calls = 0;
};

void on_one_shot(Operation& op, const Completion& c) {
  auto& s = *static_cast<OneShot*>(op.user);
  ++s.calls;
  s.done = !c.more;
  s.result = c.result;
}

void gathered_send(bool compat, const std::vector<std::size_t>& sizes) {
  auto loop = open_mode(compat);
  if (!loop) return;
  Pair pair;
  int small = 4096;  // the kernel doubles and floors it; still far below the payload
  ::setsockopt(pair.server, SOL_SOCKET, SO_SNDBUF, &small, sizeof small);
  std::uint64_t total = 0;
  for (auto n : sizes) total += n;
  std::vector<std::byte> payload(total);
  for (std::uint64_t i = 0; i < total; ++i) payload[i] = pattern(i);
  std::vector<pp::IoSlice> slices;
  std::uint64_t at = 0;
  for (auto n : sizes) {
    slices.push_back({payload.data() + at, n});
    at += n;
  }
  std::uint64_t read_ok = 0;
  std::thread reader([&] { read_ok = slow_read(pair.client, total, 0); });
  OneShot s;
  Operation op;
  op.prep_send(pair.server, slices, on_one_shot, &s);
  loop->submit(op);
  CHECK(run_until(
      *loop, [&] { return s.done; }, 60s));
  reader.join();
  CHECK(s.calls == 1);
  CHECK(s.result == static_cast<std::int64_t>(total));
  CHECK(read_ok == total);
}

TEST_CASE("io_uring: a large gathered send into a small SO_SNDBUF arrives byte-exact") {
  std::vector<std::size_t> uneven;  // ~6 MiB over 48 slices, some empty, odd sizes
  for (std::size_t k = 0; k < 48; ++k)
    uneven.push_back(k % 7 == 3 ? 0 : (k * 7919 * 13) % 260000 + 1);
  std::vector<std::size_t> many(3000, 997);  // more slices than IOV_MAX
  SUBCASE("uneven slices") {
    gathered_send(false, uneven);
  }
  SUBCASE("more slices than IOV_MAX") {
    gathered_send(false, many);
  }
  SUBCASE("one big slice") {
    gathered_send(false, {5u << 20});
  }
  SUBCASE("compat") {
    gathered_send(true, uneven);
  }
}

// ---------------------------------------------------------------------------------------

struct TempFile {
  std::string path;
  int fd = -1;
  std::uint64_t size = 0;
  explicit TempFile(std::uint64_t n) : size(n) {
    char name[] = "/tmp/pp-uring-sendfile-XXXXXX";
    fd = ::mkstemp(name);
    REQUIRE(fd >= 0);
    path = name;
    std::vector<std::byte> data(n);
    for (std::uint64_t i = 0; i < n; ++i) data[i] = pattern(i);
    REQUIRE(::write(fd, data.data(), n) == static_cast<ssize_t>(n));
  }
  ~TempFile() {
    ::close(fd);
    ::unlink(path.c_str());
  }
};

void sendfile_range(const TempFile& file, std::uint64_t offset, std::uint64_t length,
                    std::uint64_t expect) {
  auto loop = open_uring();
  if (!loop) return;
  Pair pair;
  int small = 4096;
  ::setsockopt(pair.server, SOL_SOCKET, SO_SNDBUF, &small, sizeof small);
  std::uint64_t read_ok = 0;
  std::thread reader([&] { read_ok = slow_read(pair.client, expect, offset, true); });
  OneShot s;
  Operation op;
  op.prep_sendfile(pair.server, file.fd, offset, length, on_one_shot, &s);
  loop->submit(op);
  CHECK(run_until(
      *loop, [&] { return s.done; }, 60s));
  ::shutdown(pair.server, SHUT_WR);
  reader.join();
  CHECK(s.calls == 1);
  CHECK(s.result == static_cast<std::int64_t>(expect));
  CHECK(read_ok == expect);
}

TEST_CASE("io_uring: sendfile of a multi-MB file, whole and by offset/length") {
  TempFile file((6u << 20) + 123);
  SUBCASE("whole file") {
    sendfile_range(file, 0, file.size, file.size);
  }
  SUBCASE("offset and length") {
    sendfile_range(file, 12345, (2u << 20) + 7, (2u << 20) + 7);
  }
  SUBCASE("length past EOF stops at EOF") {
    sendfile_range(file, file.size - 5000, 1u << 20, 5000);
  }
}

TEST_CASE("io_uring: send, sendfile and send, each after the last, arrive as one stream") {
  auto loop = open_uring();
  if (!loop) return;
  TempFile file((3u << 20) + 11);
  Pair pair;
  int small = 4096;
  ::setsockopt(pair.server, SOL_SOCKET, SO_SNDBUF, &small, sizeof small);
  // The stream is pattern(0 .. total): a header slice, the file's middle, a trailer slice.
  const std::uint64_t head = 300'000, body = 2u << 20;
  std::vector<std::byte> bytes(file.size);
  for (std::uint64_t i = 0; i < file.size; ++i) bytes[i] = pattern(i);
  pp::IoSlice header{bytes.data(), head};
  pp::IoSlice trailer{bytes.data() + head + body, 500'000};
  const std::uint64_t total = head + body + trailer.size;
  std::uint64_t read_ok = 0;
  std::thread reader([&] { read_ok = slow_read(pair.client, total, 0); });
  OneShot a, b, c;
  Operation sa, sb, sc;
  sa.prep_send(pair.server, {&header, 1}, on_one_shot, &a);
  sb.prep_sendfile(pair.server, file.fd, head, body, on_one_shot, &b);
  sc.prep_send(pair.server, {&trailer, 1}, on_one_shot, &c);
  loop->submit(sa);
  bool b_submitted = false, c_submitted = false;
  CHECK(run_until(
      *loop,
      [&] {
        // The order is the caller's: each output starts once the one before has finished.
        if (a.done && !b_submitted) loop->submit(sb), b_submitted = true;
        if (b.done && !c_submitted) loop->submit(sc), c_submitted = true;
        return a.done && b.done && c.done;
      },
      60s));
  reader.join();
  CHECK(a.result == static_cast<std::int64_t>(head));
  CHECK(b.result == static_cast<std::int64_t>(body));
  CHECK(c.result == static_cast<std::int64_t>(trailer.size));
  CHECK(read_ok == total);
}

TEST_CASE("io_uring: close ends the handle's pending recv and send with ECANCELED") {
  auto loop = open_uring();
  if (!loop) return;
  Pair pair;
  int small = 4096;
  ::setsockopt(pair.server, SOL_SOCKET, SO_SNDBUF, &small, sizeof small);
  RecvState rs;
  Operation recv;
  recv.prep_recv(pair.server, true, on_recv_stream, &rs);
  loop->submit(recv);
  // The first send fills the socket (nobody reads); the others are refused while it runs.
  std::vector<std::byte> big(4u << 20);
  pp::IoSlice slice{big.data(), big.size()};
  OneShot s1, s2, s3;
  Operation o1, o2, o3;
  o1.prep_send(pair.server, {&slice, 1}, on_one_shot, &s1);
  o2.prep_send(pair.server, {&slice, 1}, on_one_shot, &s2);
  o3.prep_send(pair.server, {&slice, 1}, on_one_shot, &s3);
  loop->submit(o1);
  loop->submit(o2);
  loop->submit(o3);
  for (int i = 0; i < 5; ++i) loop->run_once(1ms);
  CHECK_FALSE(s1.done);
  OneShot closed;
  Operation close;
  close.prep_close(pair.server, on_one_shot, &closed);
  pair.server = -1;
  loop->submit(close);
  CHECK(run_until(*loop,
                  [&] { return rs.finished && s1.done && s2.done && s3.done && closed.done; }));
  CHECK(closed.result == 0);
  CHECK(rs.final_result == -ECANCELED);
  CHECK(s1.result == -ECANCELED);
  CHECK(s2.result == -EBUSY);
  CHECK(s3.result == -EBUSY);
}

// ---------------------------------------------------------------------------------------

TEST_CASE("io_uring: a vanished peer gives errors, never SIGPIPE") {
  auto loop = open_uring();
  if (!loop) return;
  TempFile file(1u << 20);
  Pair pair;
  // Unread data plus SO_LINGER 0: the close sends a reset.
  const char junk[] = "unread";
  CHECK(::send(pair.server, junk, sizeof junk, MSG_NOSIGNAL) > 0);
  std::this_thread::sleep_for(20ms);
  linger lg{1, 0};
  ::setsockopt(pair.client, SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
  ::close(pair.client);
  pair.client = -1;
  std::this_thread::sleep_for(20ms);
  std::vector<std::byte> big(1u << 20);
  pp::IoSlice slice{big.data(), big.size()};
  OneShot first;
  Operation send;
  send.prep_send(pair.server, {&slice, 1}, on_one_shot, &first);
  loop->submit(send);
  CHECK(run_until(*loop, [&] { return first.done; }));
  CHECK(first.result < 0);
  // Now the socket is dead: sendfile(2) hits EPIPE, which would raise SIGPIPE.
  OneShot second;
  Operation sf;
  sf.prep_sendfile(pair.server, file.fd, 0, file.size, on_one_shot, &second);
  loop->submit(sf);
  CHECK(run_until(*loop, [&] { return second.done; }));
  CHECK(second.result == -EPIPE);
  sigset_t pending;
  sigpending(&pending);
  CHECK_FALSE(sigismember(&pending, SIGPIPE));
}

// ---------------------------------------------------------------------------------------

TEST_CASE("io_uring: cancel of a pending recv, of a timeout, and of a finished op") {
  auto loop = open_uring();
  if (!loop) return;
  Pair pair;
  for (bool multishot : {true, false}) {
    CAPTURE(multishot);
    RecvState rs;
    Operation recv;
    recv.prep_recv(pair.server, multishot, on_recv_stream, &rs);
    loop->submit(recv);
    loop->run_once(1ms);  // in the kernel now, waiting for data that never comes
    CancelState cs;
    Operation cancel;
    cancel.prep_cancel(&recv, on_cancel_done, &cs);
    loop->submit(cancel);
    CHECK(run_until(*loop, [&] { return rs.finished && cs.done; }));
    CHECK(rs.final_result == -ECANCELED);
    CHECK(rs.completions == 1);
    CHECK(cs.result == 0);
  }
  OneShot ts;
  Operation timeout;
  timeout.prep_timeout(10s, on_one_shot, &ts);
  loop->submit(timeout);
  CancelState cs;
  Operation cancel;
  cancel.prep_cancel(&timeout, on_cancel_done, &cs);
  loop->submit(cancel);  // same batch as its victim
  auto start = std::chrono::steady_clock::now();
  CHECK(run_until(*loop, [&] { return ts.done && cs.done; }));
  CHECK(std::chrono::steady_clock::now() - start < 5s);
  CHECK(ts.result == -ECANCELED);
  CHECK(cs.result == 0);
  // The timeout is finished: cancelling it again finds nothing.
  CancelState again;
  cancel.prep_cancel(&timeout, on_cancel_done, &again);
  loop->submit(cancel);
  CHECK(run_until(*loop, [&] { return again.done; }));
  CHECK(again.result == -ENOENT);
}

TEST_CASE("io_uring: a timeout expires with result 0") {
  auto loop = open_uring();
  if (!loop) return;
  OneShot ts;
  Operation timeout;
  timeout.prep_timeout(20ms, on_one_shot, &ts);
  auto start = std::chrono::steady_clock::now();
  loop->submit(timeout);
  CHECK(run_until(*loop, [&] { return ts.done; }));
  CHECK(ts.result == 0);
  CHECK(std::chrono::steady_clock::now() - start >= 19ms);
}

TEST_CASE("io_uring: post() from another thread wakes a blocked run_once") {
  auto loop = open_uring();
  if (!loop) return;
  loop->run_once(0ns);  // the first call binds the ring to this thread
  std::atomic<bool> ran{false};
  std::thread poster([&] {
    std::this_thread::sleep_for(50ms);
    loop->post([&] { ran = true; });
  });
  auto start = std::chrono::steady_clock::now();
  int n = 0;
  while (!ran && std::chrono::steady_clock::now() - start < 5s) n += loop->run_once(-1ns);
  poster.join();
  CHECK(ran);
  CHECK(n >= 1);
  CHECK(std::chrono::steady_clock::now() - start >= 40ms);
  // Many posts from several threads, all run, none lost.
  std::atomic<int> count{0};
  std::vector<std::thread> posters;
  for (int t = 0; t < 4; ++t)
    posters.emplace_back([&] {
      for (int i = 0; i < 1000; ++i) loop->post([&] { ++count; });
    });
  CHECK(run_until(*loop, [&] { return count == 4000; }));
  for (auto& t : posters) t.join();
}

TEST_CASE("io_uring: a loop opened on one thread is driven by another") {
  auto loop = open_uring();  // SINGLE_ISSUER binds to the driving thread, not this one
  if (!loop) return;
  OneShot ts;
  Operation timeout;
  std::thread worker([&] {
    timeout.prep_timeout(1ms, on_one_shot, &ts);
    loop->submit(timeout);
    run_until(
        *loop, [&] { return ts.done; }, 5s);
  });
  worker.join();
  CHECK(ts.done);
  CHECK(ts.result == 0);
}

}  // namespace
