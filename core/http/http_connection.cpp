// core/http/http_connection.cpp
#include "core/http/http_connection.h"

#include <memory>

#include "core/access_log.h"
#include "core/http/response.h"
#include "core/log.h"
#include "core/net.h"

namespace pp::http {

namespace {
/// The parser's size limits are the server's (one place to configure them).
ParserOptions with_limits(ParserOptions options, const ConnectionLimits& limits) {
  options.max_body = static_cast<std::size_t>(limits.max_body);
  options.max_header_bytes = static_cast<std::size_t>(limits.max_header_bytes);
  return options;
}

/// Where a parsed request lives while process() runs. Its views point into that call's
/// input and the parser starts each request afresh, so nothing of it outlives the call:
/// one per thread instead of one per connection (3.3 KB, most of an idle connection's
/// memory). A process() nested in another on the same thread (a deferred response
/// finished from inside another connection's handler) gets its own.
class ScratchRequest {
 public:
  ScratchRequest() {
    if (in_use_) {
      owned_ = std::make_unique<Request>();
      request_ = owned_.get();
    } else {
      in_use_ = true;
      request_ = &per_thread_;
    }
  }
  ~ScratchRequest() {
    if (!owned_) in_use_ = false;
  }
  ScratchRequest(const ScratchRequest&) = delete;
  ScratchRequest& operator=(const ScratchRequest&) = delete;
  Request& get() { return *request_; }

 private:
  static thread_local Request per_thread_;
  static thread_local bool in_use_;
  std::unique_ptr<Request> owned_;
  Request* request_;
};

thread_local Request ScratchRequest::per_thread_;
thread_local bool ScratchRequest::in_use_ = false;

}  // namespace

HttpConnection::HttpConnection(Loop& loop, Handle sock, ConnectionSet& owner,
                               const ParserOptions& options)
    : Connection(loop, sock, owner), parser_(with_limits(options, owner.limits())) {
  expect(Wait::request_head);  // a new connection owes us its first request's head
}

void HttpConnection::on_data(std::span<const std::byte> data) {
  std::string_view chunk(reinterpret_cast<const char*>(data.data()), data.size());
  if (input_held()) {
    pending_.append(chunk);  // in flight when reading paused: after the held requests
    return;
  }
  process(chunk);
}

void HttpConnection::on_resume() {
  process({});
}

void HttpConnection::on_eof() {
  eof_ = true;
  if (!response_pending_) close_after_send();
}

void HttpConnection::finish_response(bool close) {
  Hold hold(*this);  // outside the engine's callbacks a close would delete this at once
  if (!response_pending_) {
    // Finished inside respond(): the request loop goes on (or stops, closing).
    if (close) close_after_send();
    return;
  }
  response_pending_ = false;
  WorkerMetrics* metrics = thread_metrics();
  const bool logging = access_ && access_log_enabled();
  auto done = metrics || logging ? std::chrono::steady_clock::now()
                                 : std::chrono::steady_clock::time_point{};
  count_response(metrics, pending_since_, done);
  if (logging) {
    AccessNote& a = *access_;
    log_response(a.method, a.target, a.minor_version, a.status,
                 out().produced_bytes() - a.bytes_start, done - pending_since_, done);
    a.method.clear();
    a.target.clear();
  }
  if (close) {
    close_after_send();
    return;
  }
  process({});  // the requests that waited behind it
}

void HttpConnection::count_response(WorkerMetrics* metrics,
                                    std::chrono::steady_clock::time_point since,
                                    std::chrono::steady_clock::time_point done) {
  if (!metrics) return;
  metrics->count_latency(done - since);
  if (metrics == owner_metrics()) WorkerMetrics::bump(metrics->requests);
}

HttpConnection::AccessNote& HttpConnection::access_note() {
  if (!access_) {
    access_ = std::make_unique<AccessNote>();
    std::uint16_t port = 0;
    if (!peer_address(socket(), access_->client, port)) access_->client.assign(1, '-');
  }
  return *access_;
}

void HttpConnection::log_response(std::string_view method, std::string_view target,
                                  int minor_version, int status, std::uint64_t bytes,
                                  std::chrono::steady_clock::duration took,
                                  std::chrono::steady_clock::time_point now) {
  log_access(access_note().client, method, target, minor_version, status, bytes, took, now);
}

void HttpConnection::process(std::string_view chunk) {
  // Parse straight from the engine's buffer; copy only an unfinished request, or what
  // waits behind a pending response.
  bool buffered = !pending_.empty() || response_pending_;
  if (buffered) pending_.append(chunk);
  std::string_view input = buffered ? std::string_view(pending_) : chunk;
  std::size_t pos = 0;
  bool completed = false;  // a request ended here: a partial one after it is a new head
  // Latency: from this read to each response it completes (one clock read per read when
  // the worker keeps metrics).
  WorkerMetrics* metrics = thread_metrics();  // once per read, not per response
  const bool logging = access_log_enabled();
  auto arrived = metrics || logging ? std::chrono::steady_clock::now()
                                    : std::chrono::steady_clock::time_point{};
  ScratchRequest scratch;
  Request& request = scratch.get();
  in_loop_ = true;
  while (pos < input.size() && !closing() && !response_pending_) {
    if (output_full()) {
      // The rest waits until the client has read what is queued: answering every
      // pipelined request of a read at once let one read queue gigabytes (16 x 32 MiB).
      hold_input();
      break;
    }
    ParseResult r = parser_.parse(input.substr(pos), request);
    if (r.status == ParseStatus::incomplete) {
      head_complete_ = r.head_complete;
      if (r.head_complete) maybe_continue(request);
      break;
    }
    if (r.status == ParseStatus::error) {
      std::uint64_t before = logging ? out().produced_bytes() : 0;
      append_error_response(out().tail_buffer(), r.error_status, /*close=*/true);
      if (logging)  // no request line to show: it was what failed to parse
        log_response({}, {}, 1, r.error_status, out().produced_bytes() - before,
                     std::chrono::steady_clock::now() - arrived, arrived);
      pos = input.size();
      close_after_send(/*linger=*/true);
      break;
    }
    head_complete_ = false;
    completed = true;
    continue_sent_ = false;
    // Draining (a graceful stop): this response is the connection's last.
    bool close = r.close_after || draining();
    std::uint64_t before = 0;
    if (logging) {
      before = out().produced_bytes();
      note_response_status(0);  // the head the handler writes notes its status
      pp::note_response_status(0);
    }
    respond(request, close);
    pos += r.consumed;
    if (response_pending_) {
      pending_since_ = arrived;  // counted when it finishes
      if (logging) {
        AccessNote& a = access_note();
        a.method.assign(request.method);
        a.target.assign(request.target);
        a.minor_version = request.minor_version;
        a.bytes_start = before;
        if (a.status == 0) a.status = last_response_status();  // a head written in the call
      }
      break;
    }
    if (metrics || logging) {
      auto done = std::chrono::steady_clock::now();
      count_response(metrics, arrived, done);
      if (logging)
        log_response(request.method, request.target, request.minor_version, last_response_status(),
                     out().produced_bytes() - before, done - arrived, done);
    }
    if (close) close_after_send();
  }
  in_loop_ = false;
  if (buffered)
    pending_.erase(0, pos);
  else if (pos < input.size() && !closing())
    pending_.assign(input.substr(pos));
  if (eof_ && !response_pending_ && !input_held() && !closing()) {
    // Half-closed: every complete request is answered; what is left of a partial one
    // can never complete.
    close_after_send();
  } else if (!closing() && !input_held()) {
    if (response_pending_) {
      // The handler is still answering: no read deadline meanwhile (a long poll, a
      // stream). Pipelined input waits, bounded like one more request.
      expect(Wait::nothing);
      const ConnectionLimits& l = limits();
      if (pending_.size() > l.max_body + 2 * l.max_header_bytes + 65536) {
        pp::log_warning("http: a client pipelined too much behind a pending response; closing");
        abort();
        return;
      }
    } else if (pending_.empty()) {
      // The read deadline that now applies: between requests the keep-alive timeout;
      // inside a head the header timeout from its first byte; inside a body the body
      // timeout, from this read.
      expect(Wait::next_request, completed);
    } else {
      expect(head_complete_ ? Wait::request_body : Wait::request_head, completed);
    }
  }
  flush();
}

void HttpConnection::on_read_timeout(Wait wait) {
  if (wait == Wait::next_request || pending_.empty()) {
    abort(-ETIMEDOUT);
    return;
  }
  append_error_response(out().tail_buffer(), 408, /*close=*/true);
  close_after_send(/*linger=*/true);
}

void HttpConnection::maybe_continue(const Request& request) {
  // RFC 9110 10.1.1: HTTP/1.0 clients never expect a 100; answer it once per request.
  if (continue_sent_ || request.minor_version != 1 ||
      !ascii_iequals(request.header("Expect"), "100-continue"))
    return;
  out().append("HTTP/1.1 100 Continue\r\n\r\n");
  continue_sent_ = true;
}

}  // namespace pp::http
