// interpreter/parallel/session_internal.h -- what session.cpp, http11_response.cpp,
// transport.cpp and sendfile_prep.cpp share: the Session (one connection's Python
// side), the Transport object its callbacks are given, and a sendfile made ready to
// queue. Internal to those four files; the rest of the module sees make_connection
// and report_connect_failure (runtime.h) and transport_spec (api.cpp).
#pragma once

#include <atomic>
#include <cstdint>
#include <span>
#include <string>
#include <utility>

#include "core/connection.h"
#include "core/http/request.h"
#include "core/net.h"
#include "interpreter/parallel/runtime.h"

namespace pp::py {

// pp::http, as these files name it.
namespace http = pp::http;

// Defined below; the Transport points back at it.
class Session;

/// parallel.Transport: what callbacks see of their connection.
///
/// Any thread may hold one; only the connection's worker (the thread whose loop is
/// `loop`) touches the connection. Other threads read `session` only to see whether the
/// connection is gone, and hand their calls to the worker with post_to_loop.
struct TransportObject {
  // PyObject_HEAD has no semicolon: clang-format would join it to the next line.
  // clang-format off
  PyObject_HEAD
  std::atomic<Session*> session;   // null once the connection is gone (set by its worker)
  Loop* loop;                      // the connection's loop; fixed
  const http::Request* request;    // http11: the request being answered (worker only)
  PyObject* headers;               // http11: lazily built http_headers dict (worker only)
  // clang-format on
};

/// A sendfile call made ready on the calling thread, where its errors are raised: the
/// file open, the range checked, before/after as bytes. Queued on the worker.
struct PreparedSend {
  std::string before;
  std::string after;
  Handle file = invalid_handle;
  std::uint64_t offset = 0;
  std::uint64_t length = 0;
  PreparedSend() = default;
  PreparedSend(PreparedSend&& o) noexcept
      : before(std::move(o.before)),
        after(std::move(o.after)),
        file(std::exchange(o.file, invalid_handle)),
        offset(o.offset),
        length(o.length) {}
  PreparedSend& operator=(PreparedSend&&) = delete;
  ~PreparedSend() {
    if (file != invalid_handle) close_file(file);  // never queued: its connection went first
  }
};

/// Fills `out` for transport.sendfile/ranged_sendfile (nbytes -1: to the end of the
/// file); false with the Python exception set (sendfile_prep.cpp).
bool prepare_send(PyObject* before, const char* path, PyObject* after, long long offset,
                  long long nbytes, PreparedSend& out);

/// The Python side of one connection. Everything runs on the connection's worker
/// thread; each entry point attaches first.
class Session {
 public:
  Session(pp::Connection& conn, const ProtocolInfo& info) : conn_(conn), info_(info) {}
  // Releases the instance and transport if closed() never ran (session.cpp).
  ~Session();

  // on_open: creates the instance and its transport, calls connection_made (session.cpp).
  void opened();
  // on_data: a raw protocol's data_received (session.cpp).
  void data(std::span<const std::byte> bytes);
  // on_drained: send_complete once what was queued is sent (session.cpp).
  void drained();
  // on_closed: connection_lost, then the instance and transport released (session.cpp).
  void closed(std::int64_t error);

  // http11: routes a request to its method and answers with what it returns (session.cpp).
  void respond(const http::Request& request, bool close);

  // transport.sendfile / ranged_sendfile, on the worker: queues `p` (session.cpp).
  void queue_send(PreparedSend& p);

  // transport.close: closes once what is queued has been sent.
  void close() { conn_.close_after_send(); }
  // transport.peer: the connection's socket (worker only).
  Handle socket() const { return conn_.socket(); }
  // The protocol this session runs.
  const ProtocolInfo& info() const { return info_; }

 private:
  // The transport as its object type.
  TransportObject* transport() { return reinterpret_cast<TransportObject*>(transport_.get()); }

  // Forgets the request and its headers dict after an http11 handler (session.cpp).
  void clear_request();
  // Detaches the transport from this session and drops instance and transport (session.cpp).
  void release();
  // The OSError (subclass) connection_lost gets for a negative errno (session.cpp).
  static Ref os_error(std::int64_t error);
  // Raw protocols: sends a callback's result or reports its error (session.cpp).
  bool deliver(Ref result, const char* callback);
  // Queues and sends a returned value; false with TypeError if unsendable (session.cpp).
  bool queue_value(PyObject* value);
  // A callback's exception to exception_handler, else logged and closed (session.cpp).
  void report(Ref exc, const char* callback, bool force_close);
  // http11: a handler's return value as a response (http11_response.cpp).
  void http_value(PyObject* value, const http::Request& request, bool close, int status);
  // http11: logs a bad return value and answers 500 (http11_response.cpp).
  void fail_500(const http::Request& request, bool close, const char* what);

  pp::Connection& conn_;      // the connection this session is the Python side of
  const ProtocolInfo& info_;  // its protocol class and which callbacks it has
  Ref instance_;              // the protocol instance (null once released)
  Ref transport_;             // its TransportObject (null once released)
  std::uint64_t sends_ = 0;   // values queued so far: send_complete's argument
  bool raw_sent_ = false;     // http11: the handler sent with sendfile (None answers nothing)
};

}  // namespace pp::py
