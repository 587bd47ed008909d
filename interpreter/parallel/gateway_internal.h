// interpreter/parallel/gateway_internal.h -- what the gateway's files share and nothing else
// includes: the Exchange object's layout, the connection class, and the few functions one of
// them defines and another calls. gateway.h stays the gateway's public side.
#pragma once

#include "interpreter/parallel/gateway.h"

#include <cstdint>
#include <span>
#include <utility>

#include "core/connection.h"
#include "core/http/http_connection.h"
#include "core/http/parser.h"

namespace pp::py {

namespace http = pp::http;

class GatewayConnection;

/// parallel._Exchange: one request and its response, as a gateway handler sees them.
///
/// Made per request by the connection and handed to the gateway's handler. The request
/// (environ(), scope(), body) is readable during that call only; the response methods
/// work until the response is finished, on the connection's worker thread (the ASGI
/// loop runs there). Once the connection is gone they do nothing and return False.
struct ExchangeObject {
  PyObject_HEAD GatewayConnection* conn;  // null once the response finished or the connection went
  const http::Request* request;           // during the handler call only
  PyObject* body;                         // the decoded request body (bytes), made at creation
  PyObject* on_disconnect;                // called once if the connection goes first (or null)
  Loop* loop;
  bool close_after;  // the request asked for the connection to close
  bool head;         // a HEAD request: no body is sent
  bool http10;
  bool started;
  bool finished;
  // Framing of the response body, decided by start().
  bool chunked;
  bool no_body;      // HEAD, 1xx, 204, 304
  bool until_close;  // HTTP/1.0 without a length: the close ends the body
  bool close_after_response;
  std::int64_t declared;  // Content-Length of the response, -1 when none
  std::uint64_t written;
};

/// A connection whose every request goes to one Python handler: core's HTTP request
/// loop, with the response deferred (http::HttpConnection::defer_response) while an
/// ASGI coroutine or a streamed body is still answering.
class GatewayConnection final : public http::HttpConnection {
 public:
  GatewayConnection(Loop& loop, Handle sock, ConnectionSet& set, const ProtocolInfo& info)
      : HttpConnection(loop, sock, set, http::ParserOptions{}), info_(info) {}

  /// The exchange's response is complete: resume the requests that wait behind it.
  /// May delete this connection: touch nothing after.
  void response_finished(ExchangeObject* ex) {
    bool close = ex->close_after || ex->close_after_response || draining();
    Ref done = std::move(current_);  // the caller holds its own reference
    finish_response(close);
  }

  /// Flushes writes made outside a dispatch (the ASGI loop); inside one, the request
  /// loop's end sends everything produced from that read at once.
  void written() {
    if (!in_request_loop()) flush();
  }

  Handle sock() const { return socket(); }

  /// Back-pressure for a streamed response: true when more than kLowWater bytes wait to
  /// be sent, and then `fn()` runs once, on this worker, when they have all gone to the
  /// kernel or the connection went (the app asks for its next block then); false, and
  /// `fn` is not kept, when the app may go on now.
  bool when_writable(PyObject* fn) {
    // Closing or not, `fn` runs: from on_drained, or from on_closed once the queue has
    // gone (a graceful close) or been dropped (an abort).
    if (out().queued_bytes() <= kLowWater) return false;
    writable_ = Ref::borrow(fn);
    return true;
  }

  /// The most a streamed response queues before its app waits (when_writable): enough
  /// to keep the kernel's send buffer full between two turns of the loop, small enough
  /// that a client reading nothing costs little (the kernel's buffers hold the rest).
  static constexpr std::uint64_t kLowWater = 64u << 10;

 protected:
  void on_open() override;
  void on_data(std::span<const std::byte> data) override;
  void respond(const http::Request& request, bool close) override;

  // Everything queued went to the kernel: a streamed response waiting on when_writable
  // asks its app for more.
  void on_drained() override;
  void on_closed(std::int64_t) override;

 private:
  void call_writable();

  const ProtocolInfo& info_;
  Ref current_;   // the exchange whose response is in progress (until it finishes)
  Ref writable_;  // when_writable's callback, until the queue drains or the connection goes
};

// parallel._Exchange: made by init_gateway (gateway.cpp), instantiated by respond().
extern PyTypeObject* exchange_type;
// The Exchange type's spec: methods, getters, GC slots (gateway_exchange.cpp).
extern PyType_Spec exchange_spec;
// The exchange's connection, or null when it is gone or the response finished.
GatewayConnection* live(ExchangeObject* ex);
// True on the exchange's worker; else false with ParallelError set.
bool on_its_worker(ExchangeObject* ex);
// Exchange.fail(): also respond()'s answer when the gateway itself raised.
PyObject* ex_fail(PyObject* self, PyObject*);
// Exchange.environ(base): the request as a WSGI environ (gateway_environ.cpp).
PyObject* ex_environ(PyObject* self, PyObject* base);
// Exchange.scope(base): the request as an ASGI http scope (gateway_environ.cpp).
PyObject* ex_scope(PyObject* self, PyObject* base);

}  // namespace pp::py
