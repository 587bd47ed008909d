// tests/engine/test_libaio.cpp -- what is particular to the libaio backend's one-shot AIO
// polls (platform/linux/aio_loop.cpp). A pending poll holds a reference to its file and
// outlives the operation that armed it; these tests check that such polls neither keep a
// closed connection open nor leave a reused fd number unwatched, and that a context that
// fills up grows. The behaviour every backend shares is in test_loop.cpp.
#include <doctest/doctest.h>
#include <sys/resource.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "tests/engine/loopback.h"

using namespace pp;
using namespace pp::test;
using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

namespace {

/// Whether `kinds` lists `k`.
bool has(const std::vector<BackendKind>& kinds, BackendKind k) {
  return std::find(kinds.begin(), kinds.end(), k) != kinds.end();
}

/// A libaio loop, or null (with a message) where this host has no AIO poll.
std::unique_ptr<Loop> open_libaio(const LoopOptions& options = {}) {
  auto r = open_loop(BackendKind::libaio, options);
  if (!r.loop) MESSAGE("libaio unavailable here, skipping: " << r.error);
  return std::move(r.loop);
}

/// Makes `fd` refer to `from`'s socket (dup2), so that a test can hand a new connection a
/// number the loop has seen before; `from` is closed.
void move_to_number(Fd& from, int fd) {
  REQUIRE(::dup2(from.get(), fd) == fd);
  from.reset();
}

/// Runs `loop` until `peer` reads EOF (the other end's file is really closed).
bool peer_sees_eof(Loop& loop, Fd& peer) {
  std::string ignored;
  auto eof = [&] { return !read_available(peer.get(), ignored); };
  return run_until(loop, eof, 5s);
}

}  // namespace

TEST_CASE("libaio: by name, with its reason") {
  auto r = open_loop(BackendKind::libaio);
  if (!r.loop) {
    MESSAGE("libaio unavailable here: " << r.error);
    CHECK(r.error.find("epoll") != std::string::npos);
    return;
  }
  CHECK(r.loop->backend_name() == "libaio");
  CHECK(r.reason == "backend libaio: requested");
  CHECK(has(available_backends(), BackendKind::libaio));
}

TEST_CASE("libaio: waits cancelled, then close(2) outside the loop: the peer sees the end") {
  // What Connection does: cancel its recv (and a blocked send), then close the socket itself
  // from the last callback. The polls armed for those waits hold the file; unless the
  // cancels drop them, the connection stays open until the peer happens to send.
  auto loop = open_libaio();
  if (!loop) return;
  Listener l;
  auto old_pair = tcp_pair(l);
  const int number = old_pair.server.get();
  Probe r1, w1;
  r1.op.prep_recv(number, true, Probe::on_complete, &r1);
  submit(*loop, r1.op);
  const std::string big = pattern(8 << 20, 4);
  IoSlice slice{big.data(), big.size()};
  w1.op.prep_send(number, std::span<const IoSlice>(&slice, 1), Probe::on_complete, &w1);
  submit(*loop, w1.op);
  run_for(*loop, 5ms);  // nothing to read, no room to send: a poll armed for each side
  REQUIRE_FALSE(r1.done());
  REQUIRE_FALSE(w1.done());
  cancel_and_wait(*loop, r1);
  cancel_and_wait(*loop, w1);
  auto new_pair = tcp_pair(l);  // made now, so that none of its fds takes the number
  old_pair.server.reset();      // close(2), not through the loop
  // The peer reads what was sent, then EOF, with the loop running but nothing new waiting
  // on the number.
  CHECK(peer_sees_eof(*loop, old_pair.client));
  // The number's next file is watched afresh.
  move_to_number(new_pair.server, number);
  Fd server(number);
  Probe r2;
  r2.op.prep_recv(number, false, Probe::on_complete, &r2);
  submit(*loop, r2.op);
  run_for(*loop, 5ms);
  CHECK_FALSE(r2.done());
  write_all(new_pair.client.get(), "second file");
  PP_RUN_UNTIL(*loop, r2.done());
  check_probe(r2);
  CHECK(r2.bytes == "second file");
}

TEST_CASE("libaio: close through the loop cancels the pending poll; its late event is ignored") {
  auto loop = open_libaio();
  if (!loop) return;
  Listener l;
  auto old_pair = tcp_pair(l);
  const int number = old_pair.server.get();
  Probe r1, w1;
  r1.op.prep_recv(number, true, Probe::on_complete, &r1);
  submit(*loop, r1.op);
  run_for(*loop, 5ms);
  // Fill the socket so that a send waits too: both sides have a poll pending.
  const std::string big = pattern(8 << 20, 3);
  IoSlice slice{big.data(), big.size()};
  w1.op.prep_send(number, std::span<const IoSlice>(&slice, 1), Probe::on_complete, &w1);
  submit(*loop, w1.op);
  run_for(*loop, 5ms);
  REQUIRE_FALSE(w1.done());
  auto new_pair = tcp_pair(l);  // made first, so that none of its fds takes the number
  close_and_wait(*loop, old_pair.server);
  PP_RUN_UNTIL(*loop, r1.done() && w1.done());
  CHECK(r1.last() == -ECANCELED);
  CHECK(w1.last() == -ECANCELED);
  // The cancelled polls released the file: the peer sees the connection end.
  CHECK(peer_sees_eof(*loop, old_pair.client));
  // A new connection on the same number: the cancelled polls' events (res 0, possibly still
  // to come) must not touch it; its own waits work.
  move_to_number(new_pair.server, number);
  Fd server(number);
  Probe r2;
  r2.op.prep_recv(number, true, Probe::on_complete, &r2);
  submit(*loop, r2.op);
  run_for(*loop, 20ms);
  CHECK(r2.results.empty());
  write_all(new_pair.client.get(), "fresh");
  PP_RUN_UNTIL(*loop, r2.bytes == "fresh");
  cancel_and_wait(*loop, r2);
  check_probe(r2);
}

TEST_CASE("libaio: a context that fills up grows; every wait completes, posts still wake") {
  // A small context (queue_depth 8) and a few hundred waiting recvs: the kernel refuses
  // io_submit with EAGAIN once its ring is full, and the loop must replace the context by a
  // bigger one, re-submitting every poll (the wake-up's too) without losing an event.
  rlimit lim{};
  REQUIRE(::getrlimit(RLIMIT_NOFILE, &lim) == 0);
  constexpr int kWaiting = 400;
  if (lim.rlim_cur < 2 * kWaiting + 256 && lim.rlim_max >= 2 * kWaiting + 256) {
    lim.rlim_cur = 2 * kWaiting + 256;
    ::setrlimit(RLIMIT_NOFILE, &lim);
  }
  LoopOptions opts;
  opts.queue_depth = 8;
  auto loop = open_libaio(opts);
  if (!loop) return;
  Listener l;
  std::vector<TcpPair> pairs;
  std::vector<std::unique_ptr<Probe>> recvs;
  for (int i = 0; i < kWaiting; ++i) {
    pairs.push_back(tcp_pair(l));
    recvs.push_back(std::make_unique<Probe>());
    recvs.back()->op.prep_recv(pairs.back().server.get(), true, Probe::on_complete,
                               recvs.back().get());
    submit(*loop, recvs.back()->op);
  }
  run_for(*loop, 20ms);  // every recv waits: kWaiting polls in the kernel at once
  for (auto& r : recvs) CHECK(r->results.empty());
  // Each connection's message is its index (GCC 12 misreads "m" + std::to_string(i) under
  // -Werror=restrict).
  for (int i = 0; i < kWaiting; ++i) write_all(pairs[i].client.get(), std::to_string(i));
  PP_RUN_UNTIL(*loop, std::all_of(recvs.begin(), recvs.end(),
                                  [](const auto& r) { return !r->bytes.empty(); }));
  for (int i = 0; i < kWaiting; ++i) CHECK(recvs[i]->bytes == std::to_string(i));
  // The wake-up poll lives in the new context too.
  std::atomic<bool> ran{false};
  std::thread poster([&] {
    std::this_thread::sleep_for(20ms);
    loop->post([&] { ran = true; });
  });
  auto start = Clock::now();
  while (!ran && Clock::now() - start < 5s) loop->run_once(-1ns);
  poster.join();
  CHECK(ran);
  for (auto& r : recvs) {
    Probe c;
    c.op.prep_cancel(&r->op, Probe::on_complete, &c);
    submit(*loop, c.op);
    PP_RUN_UNTIL(*loop, c.done() && r->done());
    check_probe(*r);
  }
}
