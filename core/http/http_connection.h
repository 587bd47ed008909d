// core/http/http_connection.h -- an HTTP/1.1 server connection: parses pipelined
// requests as they arrive and asks the derived class for one response each.
#pragma once

#include <string>

#include "core/connection.h"
#include "core/http/parser.h"

namespace pp::http {

/// The request loop every HTTP server on the engine shares. Derive and implement
/// `respond`; everything produced from one read leaves in one send, in order.
/// Parse errors are answered (400/413/414/431/501/505) and close the connection.
class HttpConnection : public Connection {
 public:
  HttpConnection(Loop& loop, Handle sock, ConnectionSet& owner, const ParserOptions& options);

 protected:
  /// Answer one complete request by appending to `out()`; `close` says the
  /// connection ends after it (send "Connection: close"). `request`'s views are
  /// valid only during the call.
  virtual void respond(const Request& request, bool close) = 0;
  void on_data(std::span<const std::byte> data) final;
  /// Answers the pipelined requests held back while the output was full.
  void on_resume() final;
  /// A request head or body took too long: 408 (then a lingering close) if anything of
  /// the request arrived, else a quiet close (nginx does the same).
  void on_read_timeout(Wait wait) override;
  /// Draining: the request under way (or the next one) is answered with
  /// `Connection: close`; an idle connection is closed by the drain rounds.
  void on_drain() override {}

 private:
  /// Answers `Expect: 100-continue` once the head of a request with a body has
  /// arrived: clients (curl for any body over 1 KiB) wait for it, up to a second,
  /// before they send the body.
  void maybe_continue(const Request& request);
  /// Parses and answers what is complete in pending_ + `chunk`; keeps the rest.
  void process(std::string_view chunk);

  RequestParser parser_;
  Request request_;
  std::string pending_;        // the unparsed start of a request split across reads
  bool continue_sent_ = false; // for the request at the start of pending_
  bool head_complete_ = false; // pending_ holds a whole head; its body is arriving
};

}  // namespace pp::http
