// tests/core/test_connection.cpp -- core/connection.h on a real loop and loopback sockets:
// abort while a send is in flight, the send timeout, the keep-alive clock, and
// --max-connections, each on every backend this host has.
#include <doctest/doctest.h>

#include <string>

#include "core/connection.h"
#include "core/net.h"
#include "tests/engine/loopback.h"

using namespace pp;
using namespace pp::test;
using namespace std::chrono_literals;

namespace {

/// A connection whose test drives it directly: queue bytes, abort, watch it close.
class TestConnection final : public Connection {
 public:
  TestConnection(Loop& loop, Handle sock, ConnectionSet& set, bool* closed, std::int64_t* error)
      : Connection(loop, sock, set), closed_(closed), error_(error) {}
  using Connection::expect;

 protected:
  void on_data(std::span<const std::byte>) override {}
  void on_closed(std::int64_t error) override {
    *closed_ = true;
    *error_ = error;
  }

 private:
  bool* closed_;
  std::int64_t* error_;
};

struct Setup {
  Listener listener;
  TcpPair pair = tcp_pair(listener);
};

}  // namespace

TEST_CASE("abort with a send in flight sends nothing queued behind it and closes") {
  for (BackendKind kind : available_backends()) {
    INFO("backend: " << to_string(kind));
    auto opened = open_loop(kind);
    REQUIRE(opened.loop);
    Loop& loop = *opened.loop;
    ConnectionSet set;
    Setup s;
    set_buffer_sizes(s.pair.client.get(), 0, 4096);
    bool closed = false;
    std::int64_t error = 1;
    auto* c = new TestConnection(loop, s.pair.server.release(), set, &closed, &error);
    set.add(c);
    const std::string big = pattern(8 << 20, 3);
    c->out().append(big);
    c->flush();  // in flight: the client does not read, so it cannot finish
    run_for(loop, 20ms);
    c->out().append("SECOND RESPONSE");
    c->flush();  // queued behind the in-flight send
    c->abort();
    std::string got;
    REQUIRE(run_until(loop, [&] {
      read_available(s.pair.client.get(), got);
      return closed;
    }));
    // Drain what the kernel still holds for us, then check the tail never went out.
    run_for(loop, 20ms);
    read_available(s.pair.client.get(), got);
    CHECK(got.size() < big.size());
    CHECK(got.find("SECOND") == std::string::npos);
    CHECK(set.size() == 0);
    REQUIRE(run_until(loop, [&] { return !set.busy(); }));
  }
}

TEST_CASE("send timeout: a client that never reads is closed with ETIMEDOUT") {
  for (BackendKind kind : available_backends()) {
    INFO("backend: " << to_string(kind));
    auto opened = open_loop(kind);
    REQUIRE(opened.loop);
    Loop& loop = *opened.loop;
    ConnectionLimits limits;
    limits.send_timeout = 200ms;
    ConnectionSet set(limits);
    Setup s;
    set_buffer_sizes(s.pair.client.get(), 0, 4096);
    bool closed = false;
    std::int64_t error = 0;
    auto* c = new TestConnection(loop, s.pair.server.release(), set, &closed, &error);
    set.add(c);
    c->out().append(pattern(8 << 20, 4));
    c->flush();
    auto start = std::chrono::steady_clock::now();
    REQUIRE(run_until(loop, [&] { return closed; }, 5s));
    auto took = std::chrono::steady_clock::now() - start;
    CHECK(error == -ETIMEDOUT);
    CHECK(took >= 190ms);
    CHECK(took < 1500ms);
    REQUIRE(run_until(loop, [&] { return !set.busy(); }));
  }
}

TEST_CASE("send timeout measures progress: a slow but steady reader of one big send is kept") {
  // One 6 MiB segment to a reader taking 64 KiB every 20 ms (about 3 MiB/s): the whole
  // send takes ~2 s, far past the 500 ms send timeout, but bytes keep moving. Sent as
  // one operation, its completion came only at the end and the timeout cut it.
  for (BackendKind kind : available_backends()) {
    INFO("backend: " << to_string(kind));
    auto opened = open_loop(kind);
    REQUIRE(opened.loop);
    Loop& loop = *opened.loop;
    ConnectionLimits limits;
    limits.send_timeout = 500ms;
    ConnectionSet set(limits);
    Setup s;
    set_buffer_sizes(s.pair.client.get(), 0, 65536);
    set_buffer_sizes(s.pair.server.get(), 65536, 0);
    bool closed = false;
    std::int64_t error = 0;
    auto* c = new TestConnection(loop, s.pair.server.release(), set, &closed, &error);
    set.add(c);
    const std::string big = pattern(6 << 20, 5);
    c->out().append(big);
    c->flush();
    std::string got;
    auto deadline = std::chrono::steady_clock::now() + 20s;
    while (got.size() < big.size() && !closed && std::chrono::steady_clock::now() < deadline) {
      run_for(loop, 20ms);
      // What the 64 KiB receive buffer holds: about 64 KiB per 20 ms.
      read_available(s.pair.client.get(), got);
    }
    CHECK_FALSE(closed);
    CHECK(error == 0);
    CHECK(got.size() == big.size());
    CHECK(got == big);
    set.close_all();
    REQUIRE(run_until(loop, [&] { return closed && !set.busy(); }));
  }
}

TEST_CASE("read timeouts: raw connections have none; an expected wait expires") {
  for (BackendKind kind : available_backends()) {
    INFO("backend: " << to_string(kind));
    auto opened = open_loop(kind);
    REQUIRE(opened.loop);
    Loop& loop = *opened.loop;
    ConnectionLimits limits;
    limits.keepalive_timeout = 150ms;
    limits.header_timeout = 150ms;
    ConnectionSet set(limits);
    Setup raw, waiting;
    bool raw_closed = false, waiting_closed = false;
    std::int64_t raw_error = 0, waiting_error = 0;
    set.add(new TestConnection(loop, raw.pair.server.release(), set, &raw_closed, &raw_error));
    auto* w = new TestConnection(loop, waiting.pair.server.release(), set, &waiting_closed,
                        &waiting_error);
    set.add(w);
    w->expect(Connection::Wait::next_request);
    REQUIRE(run_until(loop, [&] { return waiting_closed; }, 3s));
    CHECK(waiting_error == -ETIMEDOUT);
    run_for(loop, 300ms);
    CHECK_FALSE(raw_closed);  // Wait::nothing: the protocol decides when to give up
    set.close_all();
    REQUIRE(run_until(loop, [&] { return raw_closed && !set.busy(); }));
  }
}

TEST_CASE("max_connections: the excess is closed at once, the others are untouched") {
  for (BackendKind kind : available_backends()) {
    INFO("backend: " << to_string(kind));
    auto opened = open_loop(kind);
    REQUIRE(opened.loop);
    Loop& loop = *opened.loop;
    ConnectionLimits limits;
    limits.max_connections = 2;
    ConnectionSet set(limits);
    Setup a, b, c;
    bool closed[3] = {};
    std::int64_t errors[3] = {};
    set.add(new TestConnection(loop, a.pair.server.release(), set, &closed[0], &errors[0]));
    set.add(new TestConnection(loop, b.pair.server.release(), set, &closed[1], &errors[1]));
    set.add(new TestConnection(loop, c.pair.server.release(), set, &closed[2], &errors[2]));
    CHECK(set.size() == 2);
    CHECK(set.refused() == 1);
    char byte;
    CHECK(::recv(c.pair.client.get(), &byte, 1, 0) == 0);  // EOF: closed, never opened
    CHECK_FALSE(closed[2]);                                  // no callbacks for it
    set.close_all();
    REQUIRE(run_until(loop, [&] { return closed[0] && closed[1] && !set.busy(); }));
  }
}
