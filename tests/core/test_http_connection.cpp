// tests/core/test_http_connection.cpp -- core/http/http_connection.h's deferred responses
// (what the WSGI/ASGI gateway uses when its app answers later) on a real loop and
// loopback sockets, on every backend: pipelined requests wait, in order, behind a pending
// response; a half-close waits for it; finishing from outside the engine's callbacks may
// close and delete the connection safely.
#include <doctest/doctest.h>

#include <string>

#include "core/http/http_connection.h"
#include "core/http/response.h"
#include "core/net.h"
#include "tests/engine/loopback.h"

using namespace pp;
using namespace pp::test;
using namespace std::chrono_literals;

namespace {

/// Answers /now at once and defers /later until the test calls finish_later().
class DeferringConnection final : public http::HttpConnection {
 public:
  DeferringConnection(Loop& loop, Handle sock, ConnectionSet& set, bool* closed)
      : HttpConnection(loop, sock, set, http::ParserOptions{}), closed_(closed) {}

  /// Answers the deferred request, as an event loop would once its app is done. May
  /// delete this connection.
  void finish_later(bool close = false) {
    http::append_response(out().tail_buffer(), 200, "text/plain", "later:" + deferred_path_,
                          close || deferred_close_);
    flush();
    finish_response(close || deferred_close_);
  }
  using HttpConnection::response_pending;

 protected:
  void respond(const http::Request& request, bool close) override {
    std::string path(request.path);
    if (path.starts_with("/later")) {
      deferred_path_ = path;
      deferred_close_ = close;
      defer_response();
      return;
    }
    http::append_response(out().tail_buffer(), 200, "text/plain", "now:" + path, close);
  }
  void on_closed(std::int64_t) override { *closed_ = true; }

 private:
  bool* closed_;
  std::string deferred_path_;
  bool deferred_close_ = false;
};

std::size_t count(const std::string& s, std::string_view what) {
  std::size_t n = 0;
  for (std::size_t at = s.find(what); at != std::string::npos; at = s.find(what, at + 1)) ++n;
  return n;
}

/// One DeferringConnection on a loopback pair, sent `requests` (then a FIN when
/// `half_close`), run until its first response is deferred.
struct Served {
  Served(Loop& loop, std::string_view requests, bool half_close = false) {
    c = new DeferringConnection(loop, pair.server.release(), set, &closed);
    set.add(c);
    write_all(pair.client.get(), requests);
    if (half_close) shutdown_send(pair.client.get());  // RFC 9112 9.6: requests end here
    REQUIRE(run_until(loop, [&] { return c->response_pending(); }));
  }
  /// Reads until the connection has closed and the client has seen EOF.
  void read_to_close(Loop& loop) {
    bool eof = false;
    REQUIRE(run_until(loop, [&] {
      if (!read_available(pair.client.get(), got)) eof = true;
      return closed && eof;
    }));
  }
  ConnectionSet set;
  Listener listener;
  TcpPair pair = tcp_pair(listener);
  bool closed = false;
  DeferringConnection* c = nullptr;
  std::string got;  // what the client received
};

}  // namespace

TEST_CASE("pipelined requests wait, in order, behind a deferred response") {
  for_each_backend([](Loop& loop, const std::string&) {
    Served s(loop,
             "GET /later/1 HTTP/1.1\r\nHost: t\r\n\r\n"
             "GET /now/2 HTTP/1.1\r\nHost: t\r\n\r\n"
             "GET /now/3 HTTP/1.1\r\nHost: t\r\n\r\n");
    run_for(loop, 30ms);
    read_available(s.pair.client.get(), s.got);
    CHECK(s.got.empty());  // /now/2 must not overtake /later/1
    s.c->finish_later();   // from outside the engine's callbacks, as an event loop would
    REQUIRE(run_until(loop, [&] {
      read_available(s.pair.client.get(), s.got);
      return count(s.got, "HTTP/1.1 200") == 3;
    }));
    std::size_t first = s.got.find("later:/later/1"), second = s.got.find("now:/now/2"),
                third = s.got.find("now:/now/3");
    REQUIRE(first != std::string::npos);
    REQUIRE(second != std::string::npos);
    REQUIRE(third != std::string::npos);
    CHECK(first < second);
    CHECK(second < third);
    CHECK_FALSE(s.closed);  // keep-alive throughout
    s.set.close_all();
    REQUIRE(run_until(loop, [&] { return !s.set.busy(); }));
  });
}

TEST_CASE("a half-close waits for the deferred response, then the connection closes") {
  for_each_backend([](Loop& loop, const std::string&) {
    Served s(loop, "GET /later/a HTTP/1.1\r\nHost: t\r\n\r\nGET /now/b HTTP/1.1\r\nHost: t\r\n\r\n",
             /*half_close=*/true);
    run_for(loop, 30ms);
    CHECK_FALSE(s.closed);  // the response under way is still owed
    s.c->finish_later();
    s.read_to_close(loop);
    CHECK(s.got.find("later:/later/a") < s.got.find("now:/now/b"));
    CHECK(count(s.got, "HTTP/1.1 200") == 2);
    REQUIRE(run_until(loop, [&] { return !s.set.busy(); }));
  });
}

TEST_CASE("finishing a deferred response with a close deletes the connection after the call") {
  for_each_backend([](Loop& loop, const std::string&) {
    Served s(loop,
             "GET /later/x HTTP/1.1\r\nHost: t\r\n\r\nGET /now/never HTTP/1.1\r\nHost: t\r\n\r\n");
    s.c->finish_later(/*close=*/true);  // may delete the connection: not touched again
    s.read_to_close(loop);
    CHECK(s.got.find("Connection: close") != std::string::npos);
    CHECK(s.got.find("later:/later/x") != std::string::npos);
    CHECK(s.got.find("/now/never") == std::string::npos);  // after the close: never answered
    CHECK(s.set.size() == 0);
    REQUIRE(run_until(loop, [&] { return !s.set.busy(); }));
  });
}
