// core/http/http_connection.h -- an HTTP/1.1 server connection: parses pipelined
// requests as they arrive and asks the derived class for one response each. The one
// request loop of every HTTP server on the engine: the C++ server, the Python runtime's
// http11 protocols and its WSGI/ASGI gateway.
#pragma once

#include <chrono>
#include <memory>
#include <string>

#include "core/connection.h"
#include "core/http/parser.h"

namespace pp::http {

/// The request loop every HTTP server on the engine shares. Derive and implement
/// `respond`; everything produced from one read leaves in one send, in order.
/// Parse errors are answered (400/413/414/431/501/505) and close the connection.
///
/// A response may also finish after `respond` returned (an ASGI coroutine awaiting, a
/// streamed body): `respond` calls `defer_response()`, and later `finish_response()`.
/// Meanwhile the pipelined requests behind it wait unparsed, with no read deadline.
class HttpConnection : public Connection {
 public:
  HttpConnection(Loop& loop, Handle sock, ConnectionSet& owner, const ParserOptions& options);

 protected:
  /// Answer one complete request by appending to `out()`; `close` says the
  /// connection ends after it (send "Connection: close"). `request`'s views are
  /// valid only during the call.
  virtual void respond(const Request& request, bool close) = 0;
  /// Called inside `respond`: the response finishes later, with `finish_response`.
  void defer_response() { response_pending_ = true; }
  /// The deferred response is complete (all of it appended to `out()`); `close` ends the
  /// connection after it. The requests that waited behind it are answered now. Call it
  /// from inside `respond` or from outside the engine's callbacks; it may delete this
  /// connection: touch nothing after.
  void finish_response(bool close);
  /// True between `defer_response` and `finish_response`.
  bool response_pending() const { return response_pending_; }
  /// True while the request loop runs: its end sends everything produced from one read
  /// at once, so writes made meanwhile need no `flush()` of their own.
  bool in_request_loop() const { return in_loop_; }

 public:
  /// A deferred response's head was written with `status`: its access log line says so
  /// (the handler's call has returned by the time it finishes). No-op when the log is off.
  void note_response_status(int status) {
    if (access_) access_->status = status;
  }

 protected:
  void on_data(std::span<const std::byte> data) override;
  /// Answers the pipelined requests held back while the output was full.
  void on_resume() final;
  /// A half-close ends the request side only (RFC 9112 9.6): the response in progress is
  /// finished, and so are the complete requests pipelined before the FIN; then the
  /// connection closes. (A client that closed both ways is noticed when a send fails.)
  void on_eof() final;
  /// A request head or body took too long: 408 (then a lingering close) if anything of
  /// the request arrived, else a quiet close (nginx does the same).
  void on_read_timeout(Wait wait) final;
  /// Draining: the request under way (or the next one) is answered with
  /// `Connection: close`; an idle connection is closed by the drain rounds (a pending
  /// response keeps it out of them: it waits for nothing).
  void on_drain() final {}

 private:
  /// Answers `Expect: 100-continue` once the head of a request with a body has
  /// arrived: clients (curl for any body over 1 KiB) wait for it, up to a second,
  /// before they send the body.
  void maybe_continue(const Request& request);
  /// Parses and answers what is complete in pending_ + `chunk`; keeps the rest.
  void process(std::string_view chunk);
  /// The response to the request that began at `since` is complete: its latency, and
  /// the request count of a server that keeps metrics.
  void count_response(WorkerMetrics* metrics, std::chrono::steady_clock::time_point since,
                      std::chrono::steady_clock::time_point done);
  /// The access log's line for the response that just ended (core/http/access_log.h).
  void log_response(std::string_view method, std::string_view target, int minor_version, int status,
                    std::uint64_t bytes, std::chrono::steady_clock::duration took,
                    std::chrono::steady_clock::time_point now);

  /// What the access log needs beyond the request loop's own state, made on the first
  /// logged response (nothing for a connection of a server that does not log).
  struct AccessNote {
    std::string client;          // the peer's address, read once per connection
    std::string method, target;  // a deferred response's request line, copied
    int minor_version = 1;
    int status = 0;                 // a deferred response's, noted when its head is written
    std::uint64_t bytes_start = 0;  // out().produced_bytes() when its request arrived
  };
  AccessNote& access_note();

  RequestParser parser_;
  std::string pending_;  // the unparsed start of a request split across reads, or
                         // requests pipelined behind a pending response
  std::chrono::steady_clock::time_point pending_since_;  // the deferred response's request
  bool continue_sent_ = false;                           // for the request at the start of pending_
  bool head_complete_ = false;          // pending_ holds a whole head; its body is arriving
  bool response_pending_ = false;       // defer_response() until finish_response()
  bool in_loop_ = false;                // process() is on the stack
  bool eof_ = false;                    // the client half-closed: close once nothing is pending
  std::unique_ptr<AccessNote> access_;  // null unless the access log is on
};

}  // namespace pp::http
