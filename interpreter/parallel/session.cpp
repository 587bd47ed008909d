// interpreter/parallel/session.cpp -- one connection's Python side: the protocol
// instance, its transport, and the callbacks that turn engine events into calls
// and return values into bytes on the wire.
#include <atomic>
#include <cerrno>
#include <cstring>
#include <memory>
#include <new>
#include <string>

#include "core/connection.h"
#include "core/http/file_response.h"
#include "core/http/http_connection.h"
#include "core/http/response.h"
#include "core/log.h"
#include "core/net.h"
#include "interpreter/parallel/gateway.h"
#include "interpreter/parallel/runtime.h"

namespace pp::py {

namespace http = pp::http;

class Session;

/// parallel.Transport: what callbacks see of their connection.
///
/// Any thread may hold one; only the connection's worker (the thread whose loop is
/// `loop`) touches the connection. Other threads read `session` only to see whether the
/// connection is gone, and hand their calls to the worker with post_to_loop.
struct TransportObject {
  PyObject_HEAD
  std::atomic<Session*> session;   // null once the connection is gone (set by its worker)
  Loop* loop;                      // the connection's loop; fixed
  const http::Request* request;    // http11: the request being answered (worker only)
  PyObject* headers;               // http11: lazily built http_headers dict (worker only)
};

namespace {

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

bool prepare_send(PyObject* before, const char* path, PyObject* after, long long offset,
                  long long nbytes, PreparedSend& out) {
  std::uint64_t size = 0;
  std::string error;
  int code = 0;
  out.file = open_file_for_send(path, size, error, &code);
  if (out.file == invalid_handle) {
    errno = -code;
    PyErr_SetFromErrnoWithFilename(PyExc_OSError, path);
    return false;
  }
  if (offset < 0 || nbytes < -1 ||
      (nbytes >= 0 && static_cast<std::uint64_t>(offset) + nbytes > size) ||
      static_cast<std::uint64_t>(offset) > size) {
    PyErr_Format(PyExc_ValueError,
                 "range offset=%lld nbytes=%lld is past the end of '%s' (%llu bytes)", offset,
                 nbytes, path, static_cast<unsigned long long>(size));
    return false;
  }
  out.offset = static_cast<std::uint64_t>(offset);
  out.length = nbytes < 0 ? size - offset : static_cast<std::uint64_t>(nbytes);
  return (before == Py_None || append_sendable(before, out.before)) &&
         (after == Py_None || append_sendable(after, out.after));
}

// Protocol callbacks that a URL must never reach in http11 mode.
bool reserved_route(std::string_view name) {
  static constexpr std::string_view kReserved[] = {
      "connection_made", "data_received",         "send_complete", "connection_lost",
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

/// The Python side of one connection. Everything runs on the connection's worker
/// thread; each entry point attaches first.
class Session {
 public:
  Session(pp::Connection& conn, const ProtocolInfo& info) : conn_(conn), info_(info) {}

  ~Session() {
    // Normally released in closed(); this covers a connection deleted without a
    // close callback (worker torn down early).
    if (instance_ || transport_) {
      ensure_attached();
      release();
    }
  }

  void opened() {
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

  void data(std::span<const std::byte> bytes) {
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

  void drained() {
    if (!info_.has_send_complete || !instance_ || sends_ == 0) return;
    ensure_attached();
    Ref id(PyLong_FromUnsignedLongLong(sends_));
    Ref r(PyObject_CallMethodObjArgs(instance_.get(), names().send_complete, transport_.get(),
                                     id.get(), nullptr));
    deliver(std::move(r), "send_complete");
  }

  void closed(std::int64_t error) {
    ensure_attached();
    Counters::bump(thread_counters().active, static_cast<std::uint64_t>(-1));
    if (instance_ && info_.has_connection_lost) {
      Ref exc = error ? os_error(error) : Ref::borrow(Py_None);
      Ref r(PyObject_CallMethodObjArgs(instance_.get(), names().connection_lost,
                                       transport_.get(), exc.get(), nullptr));
      if (!r) log_exception(fmt::format("{}.connection_lost raised", info_.name), fetch_exception());
    }
    release();
  }

  // ---- http11 ----------------------------------------------------------------

  void respond(const http::Request& request, bool close) {
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
    Ref result(body ? PyObject_CallFunctionObjArgs(method.get(), transport_.get(), body.get(),
                                                   nullptr)
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
  void queue_send(PreparedSend& p) {
    conn_.out().tail_buffer().append(p.before);
    Counters::bump(thread_counters().bytes_sent, p.before.size() + p.length + p.after.size());
    conn_.out().append_file(std::exchange(p.file, invalid_handle), p.offset, p.length,
                            /*owned=*/true);
    conn_.out().append(p.after);
    ++sends_;
    raw_sent_ = true;
    conn_.flush();
  }

  void close() { conn_.close_after_send(); }
  Handle socket() const { return conn_.socket(); }
  const ProtocolInfo& info() const { return info_; }

 private:
  TransportObject* transport() { return reinterpret_cast<TransportObject*>(transport_.get()); }

  void clear_request() {
    auto* t = transport();
    t->request = nullptr;
    Py_CLEAR(t->headers);
  }

  void release() {
    if (transport_) {
      transport()->session = nullptr;
      clear_request();
    }
    transport_ = Ref();
    instance_ = Ref();
  }

  static Ref os_error(std::int64_t error) {
    int e = static_cast<int>(-error);
    // OSError(errno, strerror) picks the subclass (ConnectionResetError, ...) itself.
    return Ref(PyObject_CallFunction(PyExc_OSError, "is", e, std::strerror(e)));
  }

  // Raw protocols: send what a callback returned; report what went wrong.
  bool deliver(Ref result, const char* callback) {
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
  bool queue_value(PyObject* value) {
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
  void report(Ref exc, const char* callback, bool force_close) {
    if (info_.has_exception_handler && instance_) {
      Ref r(PyObject_CallMethodObjArgs(instance_.get(), names().exception_handler,
                                       transport_.get(), exc.get(), nullptr));
      if (!r) {
        log_exception(fmt::format("{}.exception_handler raised", info_.name), fetch_exception());
        conn_.abort();
        return;
      }
      if (!queue_value(r.get())) {
        log_exception(fmt::format("{}.exception_handler returned", info_.name),
                      fetch_exception());
        conn_.abort();
        return;
      }
      if (force_close) conn_.close_after_send();
      return;
    }
    log_exception(fmt::format("{}.{} raised; closing the connection", info_.name, callback), exc);
    conn_.abort();
  }

  // http11: turn a handler's return value into a response.
  void http_value(PyObject* value, const http::Request& request, bool close, int status) {
    std::string& buf = conn_.out().tail_buffer();
    if (value == Py_None) {
      if (raw_sent_) return;  // the handler queued a whole response with sendfile
      http::ResponseHead head;
      head.status = 204;
      head.has_content_length = false;
      head.connection = http::connection_for(request, close);
      http::append_response_head(buf, head);
      return;
    }
    if (Py_IS_TYPE(value, names().file_response_type)) {
      auto* f = reinterpret_cast<FileResponseObject*>(value);
      std::string error;
      int code = 0;
      if (!http::queue_file_response(conn_.out(), request, *f->path, *f->content_type, close,
                                     error, code))
        http::append_error_response(conn_.out().tail_buffer(), 404, close);
      return;
    }
    Ref extra_headers;
    PyObject* body = value;
    std::string content_type_storage;
    std::string_view content_type;
    // Subclasses too: users add helpers (a JSON response class) on top of Response.
    if (PyObject_TypeCheck(value, names().response_type)) {
      auto* r = reinterpret_cast<ResponseObject*>(value);
      status = r->status;
      body = r->body;
      if (r->headers != Py_None) extra_headers = Ref::borrow(r->headers);
      if (r->content_type != Py_None) {
        Py_ssize_t n = 0;
        const char* s = PyUnicode_AsUTF8AndSize(r->content_type, &n);
        if (!s) return fail_500(request, close, "Response.content_type");
        content_type_storage.assign(s, static_cast<std::size_t>(n));
        content_type = content_type_storage;
      }
    }
    std::string payload;
    std::string_view default_type;
    if (body == Py_None) {
      default_type = "text/plain";
    } else if (PyUnicode_Check(body)) {
      default_type = "text/html; charset=utf-8";
      if (!append_sendable(body, payload)) return fail_500(request, close, "str body");
    } else if (PyDict_Check(body) || PyList_Check(body) || PyTuple_Check(body)) {
      default_type = "application/json";
      Ref json(PyObject_CallOneArg(names().json_dumps, body));
      if (!json || !append_sendable(json.get(), payload))
        return fail_500(request, close, "JSON encoding");
    } else {
      default_type = "text/plain";
      if (!append_sendable(body, payload)) return fail_500(request, close, "handler result");
    }
    if (content_type.empty()) content_type = default_type;

    std::vector<http::Header> fields;
    std::vector<std::string> storage;
    if (extra_headers) {
      if (!PyDict_Check(extra_headers.get())) {
        PyErr_SetString(PyExc_TypeError, "Response headers must be a dict of str to str");
        return fail_500(request, close, "Response.headers");
      }
      PyObject *k, *v;
      Py_ssize_t pos = 0;
      storage.reserve(2 * static_cast<std::size_t>(PyDict_Size(extra_headers.get())));
      while (PyDict_Next(extra_headers.get(), &pos, &k, &v)) {
        Ref vs(PyObject_Str(v));
        Py_ssize_t kn = 0, vn = 0;
        const char* ks = PyUnicode_Check(k) ? PyUnicode_AsUTF8AndSize(k, &kn) : nullptr;
        const char* vc = vs ? PyUnicode_AsUTF8AndSize(vs.get(), &vn) : nullptr;
        if (!ks || !vc) {
          if (!PyErr_Occurred()) PyErr_SetString(PyExc_TypeError, "header names must be str");
          return fail_500(request, close, "Response.headers");
        }
        // With their lengths: a NUL must not cut a name or value short unseen.
        std::string_view name(ks, static_cast<std::size_t>(kn)),
            val(vc, static_cast<std::size_t>(vn));
        // The checks the gateway makes too (core/http/response.h): a name is an RFC 9110
        // token, a value holds no control byte but HTAB (CR or LF would inject a field
        // or a response).
        if (!http::is_token(name)) {
          PyErr_Format(PyExc_ValueError, "header name %R is not a token (RFC 9110)", k);
          return fail_500(request, close, "Response.headers");
        }
        if (!http::is_field_value(val)) {
          PyErr_Format(PyExc_ValueError, "header %R: its value holds a control character", k);
          return fail_500(request, close, "Response.headers");
        }
        storage.emplace_back(name);
        storage.emplace_back(val);
      }
      for (std::size_t i = 0; i < storage.size(); i += 2)
        fields.push_back({storage[i], storage[i + 1]});
    }
    http::ResponseHead head;
    head.status = status;
    head.content_type = content_type;
    head.connection = http::connection_for(request, close);
    head.extra = fields;
    if (status == 204 || status == 304 || (status >= 100 && status < 200)) {
      head.has_content_length = false;
      http::append_response_head(buf, head);
    } else if (request.method == "HEAD") {
      head.content_length = payload.size();
      http::append_response_head(buf, head);
    } else {
      http::append_response(buf, head, payload);
    }
    Counters::bump(thread_counters().bytes_sent, payload.size());
  }

  void fail_500(const http::Request& request, bool close, const char* what) {
    log_exception(fmt::format("{}: bad {} for {} (answered 500)", info_.name, what, request.path),
                  fetch_exception());
    http::append_error_response(conn_.out().tail_buffer(), 500, close);
  }

  pp::Connection& conn_;
  const ProtocolInfo& info_;
  Ref instance_;
  Ref transport_;
  std::uint64_t sends_ = 0;
  bool raw_sent_ = false;
};

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

// ---- the Transport type ----------------------------------------------------------

Session* live_session(PyObject* self) {
  Session* s = reinterpret_cast<TransportObject*>(self)->session.load();
  if (!s) PyErr_SetString(names().transport_closed_error, "the connection is closed");
  return s;
}

// True on the connection's worker, the only thread that may touch the connection.
bool on_worker(PyObject* self) {
  return current_loop() == reinterpret_cast<TransportObject*>(self)->loop;
}

// Runs `fn(session)` on the connection's worker, from another thread: false when the
// runtime refuses (stopping, or gone). The transport stays alive until `fn` has run;
// a connection that closes before then is skipped.
template <class Fn>
bool post_to_worker(PyObject* self, Fn fn) {
  Ref keep = Ref::borrow(self);
  return post_to_loop(reinterpret_cast<TransportObject*>(self)->loop, [keep, fn] {
    if (Session* s = reinterpret_cast<TransportObject*>(keep.get())->session.load()) fn(*s);
  });
}

PyObject* send_file(PyObject* self, PyObject* before, const char* path, PyObject* after,
                    long long offset, long long nbytes) {
  Session* s = live_session(self);
  if (!s) return nullptr;
  PreparedSend prepared;
  if (!prepare_send(before, path, after, offset, nbytes, prepared)) return nullptr;
  if (on_worker(self)) {
    s->queue_send(prepared);
    Py_RETURN_NONE;
  }
  // Another thread: the worker queues it. If the connection closes first, the send is
  // dropped, as bytes already queued are when a connection fails. (Shared: std::function
  // wants a copyable callable.)
  auto p = std::make_shared<PreparedSend>(std::move(prepared));
  if (!post_to_worker(self, [p](Session& session) { session.queue_send(*p); })) {
    PyErr_SetString(names().transport_closed_error,
                    "the connection is closed (the runtime is stopping)");
    return nullptr;
  }
  Py_RETURN_NONE;
}

PyObject* transport_sendfile(PyObject* self, PyObject* args) {
  PyObject *before, *after;
  const char* path;
  if (!PyArg_ParseTuple(args, "OsO:sendfile", &before, &path, &after)) return nullptr;
  return send_file(self, before, path, after, 0, -1);
}

PyObject* transport_ranged_sendfile(PyObject* self, PyObject* args) {
  PyObject *before, *after;
  const char* path;
  long long offset, nbytes;
  if (!PyArg_ParseTuple(args, "OsOLL:ranged_sendfile", &before, &path, &after, &offset, &nbytes))
    return nullptr;
  if (nbytes < 0) {
    PyErr_SetString(PyExc_ValueError, "nbytes must be >= 0");
    return nullptr;
  }
  return send_file(self, before, path, after, offset, nbytes);
}

PyObject* transport_close(PyObject* self, PyObject*) {
  Session* s = reinterpret_cast<TransportObject*>(self)->session.load();
  if (!s) Py_RETURN_NONE;
  if (on_worker(self))
    s->close();
  else  // refused only while the runtime stops, which closes every connection itself
    post_to_worker(self, [](Session& session) { session.close(); });
  Py_RETURN_NONE;
}

const http::Request* current_request(PyObject* self) {
  auto* t = reinterpret_cast<TransportObject*>(self);
  // Set and cleared by the worker around a handler: other threads never see one.
  if (!on_worker(self) || !t->request) {
    PyErr_SetString(PyExc_AttributeError,
                    "HTTP request attributes exist only inside an http11 handler");
    return nullptr;
  }
  return t->request;
}

PyObject* transport_headers(PyObject* self, void*) {
  auto* t = reinterpret_cast<TransportObject*>(self);
  const http::Request* req = current_request(self);
  if (!req) return nullptr;
  if (!t->headers) {
    Ref dict(PyDict_New());
    if (!dict) return nullptr;
    for (const http::Header& h : req->fields()) {
      std::string lower(h.name);
      for (char& c : lower)
        if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
      Ref k(str_from(lower)), v(str_from(h.value));
      if (!k || !v || PyDict_SetItem(dict.get(), k.get(), v.get()) < 0) return nullptr;
    }
    t->headers = dict.release();
  }
  return Py_NewRef(t->headers);
}

PyObject* transport_method(PyObject* self, void*) {
  const http::Request* r = current_request(self);
  return r ? str_from(r->method) : nullptr;
}
PyObject* transport_path(PyObject* self, void*) {
  const http::Request* r = current_request(self);
  return r ? str_from(r->path) : nullptr;
}
PyObject* transport_query(PyObject* self, void*) {
  const http::Request* r = current_request(self);
  return r ? str_from(r->query) : nullptr;
}
PyObject* transport_version(PyObject* self, void*) {
  const http::Request* r = current_request(self);
  return r ? PyUnicode_FromString(r->minor_version == 0 ? "HTTP/1.0" : "HTTP/1.1") : nullptr;
}
PyObject* transport_peer(PyObject* self, void*) {
  Session* s = live_session(self);
  if (!s) return nullptr;
  if (!on_worker(self)) {
    // The socket is the worker's (it may be closed and its number reused at any moment).
    PyErr_SetString(names().parallel_error,
                    "transport.peer is read on the connection's worker (in its callbacks); "
                    "keep it from connection_made for other threads");
    return nullptr;
  }
  std::string host;
  std::uint16_t port = 0;
  if (!peer_address(s->socket(), host, port)) {
    PyErr_SetFromErrno(PyExc_OSError);
    return nullptr;
  }
  return Py_BuildValue("(si)", host.c_str(), static_cast<int>(port));
}

PyObject* transport_is_closed(PyObject* self, void*) {
  return PyBool_FromLong(reinterpret_cast<TransportObject*>(self)->session.load() == nullptr);
}

void transport_dealloc(PyObject* self) {
  auto* t = reinterpret_cast<TransportObject*>(self);
  Py_CLEAR(t->headers);
  PyTypeObject* type = Py_TYPE(self);
  PyObject_Free(self);
  Py_DECREF(type);
}

PyMethodDef transport_methods[] = {
    {"sendfile", transport_sendfile, METH_VARARGS,
     "sendfile(before, path, after)\n--\n\nQueue `before`, the file at `path` (sent from the "
     "page cache, never through Python) and `after`."},
    {"ranged_sendfile", transport_ranged_sendfile, METH_VARARGS,
     "ranged_sendfile(before, path, after, offset, nbytes)\n--\n\nLike sendfile, for nbytes "
     "bytes from offset."},
    {"sendfile_ranged", transport_ranged_sendfile, METH_VARARGS, "Alias of ranged_sendfile."},
    {"close", transport_close, METH_NOARGS,
     "close()\n--\n\nClose the connection once what is queued has been sent."},
    {nullptr, nullptr, 0, nullptr},
};

PyGetSetDef transport_getset[] = {
    {"http_headers", transport_headers, nullptr, "Request header fields (lower-case names).",
     nullptr},
    {"http_method", transport_method, nullptr, "The request method.", nullptr},
    {"http_path", transport_path, nullptr, "The request path (without the query).", nullptr},
    {"http_query", transport_query, nullptr, "The query string (after '?').", nullptr},
    {"http_version", transport_version, nullptr, "HTTP/1.0 or HTTP/1.1.", nullptr},
    {"peer", transport_peer, nullptr, "The remote (host, port).", nullptr},
    {"closed", transport_is_closed, nullptr, "True once the connection is gone.", nullptr},
    {nullptr, nullptr, nullptr, nullptr, nullptr},
};

PyType_Slot transport_slots[] = {
    {Py_tp_dealloc, reinterpret_cast<void*>(transport_dealloc)},
    {Py_tp_methods, transport_methods},
    {Py_tp_getset, transport_getset},
    {Py_tp_doc, const_cast<char*>("A connection, as protocol callbacks see it.")},
    {0, nullptr},
};

}  // namespace

PyType_Spec transport_spec = {
    "parallel.Transport", sizeof(TransportObject), 0,
    Py_TPFLAGS_DEFAULT | Py_TPFLAGS_DISALLOW_INSTANTIATION, transport_slots,
};

pp::Connection* make_connection(pp::Loop& loop, Handle sock, pp::ConnectionSet& set,
                                const ProtocolInfo& info) {
  if (info.gateway) return make_gateway_connection(loop, sock, set, info);
  if (info.http11) return new HttpPyConnection(loop, sock, set, info);
  return new RawConnection(loop, sock, set, info);
}

void report_connect_failure(const ProtocolInfo& info, const std::string& where,
                            std::int64_t error) {
  ensure_attached();
  pp::log("client {}: connect to {} failed: {}", info.name, where, error_text(error));
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
