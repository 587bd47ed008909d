// interpreter/parallel/session.cpp -- one connection's Python side: the Session's
// callbacks that turn engine events into protocol calls (raw and http11, routing
// included), return values into bytes on the wire, and the connection classes that
// carry a Session. The http11 response, the Transport type and sendfile preparation
// are files of their own (http11_response.cpp, transport.cpp, sendfile_prep.cpp).
#include <cstring>
#include <new>
#include <string>

#include "core/connection.h"
#include "core/http/http_connection.h"
#include "core/http/response.h"
#include "core/log.h"
#include "core/net.h"
#include "interpreter/parallel/gateway.h"
#include "interpreter/parallel/runtime.h"
#include "interpreter/parallel/session_internal.h"

namespace pp::py {

namespace {

// Protocol callbacks that a URL must never reach in http11 mode.
bool reserved_route(std::string_view name) {
  static constexpr std::string_view kReserved[] = {
      "connection_made",   "data_received",         "send_complete", "connection_lost",
      "exception_handler", "initial_bytes_to_send", "http11",
  };
  if (name.empty() || name[0] == '_') return true;
  for (auto r : kReserved)
    if (r == name) return true;
  // Only identifiers: anything else cannot name a method anyway.
  for (char c : name)
    if (!(c == '_' || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9')))
      return true;
  return false;
}

// The method name a path routes to: its first segment; "/" is "index".
std::string_view route_of(std::string_view path) {
  if (path.size() <= 1) return "index";
  path.remove_prefix(1);
  return path.substr(0, path.find('/'));
}

// Route names as Python strings, cached per runtime thread: no lock, no allocation per
// request. The cache is the worker's (WorkerLocal), emptied by its teardown while the
// thread state exists; a thread_local would release the names after it (and, with
// workers=0, after the interpreter's finalization).
Ref route_name(std::string_view route) {
  WorkerLocal* local = worker_local();
  if (!local)
    return Ref(PyUnicode_FromStringAndSize(route.data(), static_cast<Py_ssize_t>(route.size())));
  auto& cache = local->route_names;
  auto it = cache.find(route);
  if (it != cache.end()) return Ref::borrow(it->second.get());
  if (cache.size() > 4096) cache.clear();  // bounded: URLs are attacker-chosen
  Ref name(PyUnicode_FromStringAndSize(route.data(), static_cast<Py_ssize_t>(route.size())));
  if (!name) return Ref();
  cache.emplace(std::string(route), name);
  return name;
}

}  // namespace

Session::~Session() {
  // Normally released in closed(); this covers a connection deleted without a
  // close callback (worker torn down early).
  if (instance_ || transport_) {
    ensure_attached();
    release();
  }
}

void Session::opened() {
  ensure_attached();
  Counters::bump(thread_counters().connections);
  Counters::bump(thread_counters().active);
  instance_ = Ref(PyObject_CallNoArgs(info_.cls.get()));
  if (!instance_) {
    log_exception(fmt::format("cannot create a {} for a new connection", info_.name),
                  fetch_exception());
    conn_.abort();
    return;
  }
  auto* t = PyObject_New(TransportObject, names().transport_type);
  if (!t) {
    log_exception("cannot create a transport", fetch_exception());
    // No callback may see a null transport (the argument list of connection_lost
    // would end at it): the instance goes too, so none runs.
    instance_ = Ref();
    conn_.abort();
    return;
  }
  new (&t->session) std::atomic<Session*>(this);
  t->loop = &conn_.loop();
  t->request = nullptr;
  t->headers = nullptr;
  transport_ = Ref(reinterpret_cast<PyObject*>(t));
  if (info_.initial_bytes) {
    Ref value = Ref::borrow(info_.initial_bytes.get());
    if (PyCallable_Check(value.get())) value = Ref(PyObject_CallNoArgs(value.get()));
    if (!deliver(std::move(value), "initial_bytes_to_send")) return;
  }
  if (info_.has_connection_made) {
    Ref r(info_.made_takes_data
              ? PyObject_CallMethodObjArgs(instance_.get(), names().connection_made,
                                           transport_.get(), names().empty_bytes, nullptr)
              : PyObject_CallMethodObjArgs(instance_.get(), names().connection_made,
                                           transport_.get(), nullptr));
    deliver(std::move(r), "connection_made");
  }
}

void Session::data(std::span<const std::byte> bytes) {
  Counters::bump(thread_counters().bytes_received, bytes.size());
  if (!info_.has_data_received || !instance_) return;
  ensure_attached();
  Ref data(bytes_from({reinterpret_cast<const char*>(bytes.data()), bytes.size()}));
  if (!data) {
    report(fetch_exception(), "data_received", /*force_close=*/true);
    return;
  }
  Counters::bump(thread_counters().requests);
  Ref r(PyObject_CallMethodObjArgs(instance_.get(), names().data_received, transport_.get(),
                                   data.get(), nullptr));
  deliver(std::move(r), "data_received");
}

void Session::drained() {
  if (!info_.has_send_complete || !instance_ || sends_ == 0) return;
  ensure_attached();
  Ref id(PyLong_FromUnsignedLongLong(sends_));
  Ref r(PyObject_CallMethodObjArgs(instance_.get(), names().send_complete, transport_.get(),
                                   id.get(), nullptr));
  deliver(std::move(r), "send_complete");
}

void Session::closed(std::int64_t error) {
  ensure_attached();
  Counters::bump(thread_counters().active, static_cast<std::uint64_t>(-1));
  if (instance_ && info_.has_connection_lost) {
    Ref exc = error ? os_error(error) : Ref::borrow(Py_None);
    Ref r(PyObject_CallMethodObjArgs(instance_.get(), names().connection_lost, transport_.get(),
                                     exc.get(), nullptr));
    if (!r) log_exception(fmt::format("{}.connection_lost raised", info_.name), fetch_exception());
  }
  release();
}

// ---- http11 ----------------------------------------------------------------

void Session::respond(const http::Request& request, bool close) {
  ensure_attached();
  Counters::bump(thread_counters().requests);
  if (!instance_) {
    http::append_error_response(conn_.out().tail_buffer(), 500, true);
    return;
  }
  std::string_view route = route_of(request.path);
  Ref method;
  if (!reserved_route(route)) {
    Ref name = route_name(route);
    if (name) method = Ref(PyObject_GetAttr(instance_.get(), name.get()));
    if (!method || !PyCallable_Check(method.get())) {
      PyErr_Clear();
      method = Ref();
    }
  }
  if (!method) {
    http::append_error_response(conn_.out().tail_buffer(), 404, close);
    return;
  }
  Ref body(bytes_from(request.body));
  auto* t = transport();
  t->request = &request;
  raw_sent_ = false;
  Ref result(body
                 ? PyObject_CallFunctionObjArgs(method.get(), transport_.get(), body.get(), nullptr)
                 : nullptr);
  if (!result) {
    Ref exc = fetch_exception();
    log_exception(fmt::format("{}.{} raised (answered 500)", info_.name, route), exc);
    Ref handled;
    if (info_.has_exception_handler) {
      handled = Ref(PyObject_CallMethodObjArgs(instance_.get(), names().exception_handler,
                                               transport_.get(), exc.get(), nullptr));
      if (!handled)
        log_exception(fmt::format("{}.exception_handler raised", info_.name), fetch_exception());
    }
    if (handled && handled.get() != Py_None)
      http_value(handled.get(), request, close, 500);
    else
      http::append_error_response(conn_.out().tail_buffer(), 500, close);
  } else {
    http_value(result.get(), request, close, 200);
  }
  clear_request();
}

// ---- transport methods -----------------------------------------------------

/// transport.sendfile / ranged_sendfile: queue before, the file range, after.
/// Worker thread.
void Session::queue_send(PreparedSend& p) {
  conn_.out().tail_buffer().append(p.before);
  Counters::bump(thread_counters().bytes_sent, p.before.size() + p.length + p.after.size());
  conn_.out().append_file(std::exchange(p.file, invalid_handle), p.offset, p.length,
                          /*owned=*/true);
  conn_.out().append(p.after);
  ++sends_;
  raw_sent_ = true;
  conn_.flush();
}

void Session::clear_request() {
  auto* t = transport();
  t->request = nullptr;
  Py_CLEAR(t->headers);
}

void Session::release() {
  if (transport_) {
    transport()->session = nullptr;
    clear_request();
  }
  transport_ = Ref();
  instance_ = Ref();
}

Ref Session::os_error(std::int64_t error) {
  int e = static_cast<int>(-error);
  // OSError(errno, strerror) picks the subclass (ConnectionResetError, ...) itself.
  return Ref(PyObject_CallFunction(PyExc_OSError, "is", e, std::strerror(e)));
}

// Raw protocols: send what a callback returned; report what went wrong.
bool Session::deliver(Ref result, const char* callback) {
  if (!result) {
    report(fetch_exception(), callback, /*force_close=*/false);
    return false;
  }
  if (!queue_value(result.get())) {
    report(fetch_exception(), callback, /*force_close=*/true);
    return false;
  }
  return true;
}

// Queues a returned value (None: nothing) and sends it. False, with the
// TypeError set and nothing queued, for a value that is not sendable.
bool Session::queue_value(PyObject* value) {
  if (value == Py_None) return true;
  std::string& buf = conn_.out().tail_buffer();
  std::size_t before = buf.size();
  if (!append_sendable(value, buf)) {
    buf.resize(before);
    return false;
  }
  Counters::bump(thread_counters().bytes_sent, buf.size() - before);
  ++sends_;
  conn_.flush();
  return true;
}

// An exception from a callback: the protocol's exception_handler gets it (and may
// answer), else it is logged and the connection closed. A wrong return type
// always closes: the protocol's idea of the stream is broken.
void Session::report(Ref exc, const char* callback, bool force_close) {
  if (info_.has_exception_handler && instance_) {
    Ref r(PyObject_CallMethodObjArgs(instance_.get(), names().exception_handler, transport_.get(),
                                     exc.get(), nullptr));
    if (!r) {
      log_exception(fmt::format("{}.exception_handler raised", info_.name), fetch_exception());
      conn_.abort();
      return;
    }
    if (!queue_value(r.get())) {
      log_exception(fmt::format("{}.exception_handler returned", info_.name), fetch_exception());
      conn_.abort();
      return;
    }
    if (force_close) conn_.close_after_send();
    return;
  }
  log_exception(fmt::format("{}.{} raised; closing the connection", info_.name, callback), exc);
  conn_.abort();
}

namespace {

/// A raw protocol's connection: bytes in, callback return values out.
class RawConnection final : public pp::Connection {
 public:
  RawConnection(Loop& loop, Handle sock, ConnectionSet& set, const ProtocolInfo& info)
      : Connection(loop, sock, set), session_(*this, info) {}

 protected:
  void on_open() override { session_.opened(); }
  void on_data(std::span<const std::byte> data) override { session_.data(data); }
  void on_drained() override { session_.drained(); }
  void on_closed(std::int64_t error) override { session_.closed(error); }

 private:
  Session session_;
};

/// An http11 protocol's connection: the engine parses, routes call methods.
class HttpPyConnection final : public http::HttpConnection {
 public:
  HttpPyConnection(Loop& loop, Handle sock, ConnectionSet& set, const ProtocolInfo& info)
      : HttpConnection(loop, sock, set, parser_options()), session_(*this, info) {}

 protected:
  void on_open() override { session_.opened(); }
  void respond(const http::Request& request, bool close) override {
    session_.respond(request, close);
  }
  void on_drained() override { session_.drained(); }
  void on_closed(std::int64_t error) override { session_.closed(error); }

 private:
  static const http::ParserOptions& parser_options() {
    static const http::ParserOptions options;
    return options;
  }
  Session session_;
};

}  // namespace

pp::Connection* make_connection(pp::Loop& loop, Handle sock, pp::ConnectionSet& set,
                                const ProtocolInfo& info) {
  if (info.gateway) return make_gateway_connection(loop, sock, set, info);
  if (info.http11) return new HttpPyConnection(loop, sock, set, info);
  return new RawConnection(loop, sock, set, info);
}

void report_connect_failure(const ProtocolInfo& info, const std::string& where,
                            std::int64_t error) {
  ensure_attached();
  pp::log_error("client {}: connect to {} failed: {}", info.name, where, error_text(error));
  if (!info.has_connection_lost) return;
  Ref instance(PyObject_CallNoArgs(info.cls.get()));
  int e = static_cast<int>(-error);
  Ref exc(PyObject_CallFunction(PyExc_OSError, "is", e, std::strerror(e)));
  Ref r(instance && exc ? PyObject_CallMethodObjArgs(instance.get(), names().connection_lost,
                                                     Py_None, exc.get(), nullptr)
                        : nullptr);
  if (!r) log_exception(fmt::format("{}.connection_lost raised", info.name), fetch_exception());
}

}  // namespace pp::py
