// interpreter/parallel/gateway_exchange.cpp -- parallel._Exchange (gateway_internal.h): the
// response side of one request (start, write, sendfile, finish, respond, fail), the framing
// the gateway gives every response (status, headers, Content-Length or chunked, HEAD,
// Connection), and the type itself (getters, GC, spec). A file of its own: what goes on the
// wire, and the rules it follows, apart from the connection that sends it
// (gateway_connection.cpp) and the request's environ/scope (gateway_environ.cpp).
#include "interpreter/parallel/gateway_internal.h"

#include <algorithm>
#include <charconv>
#include <limits>
#include <string>

#include "core/http/date.h"
#include "core/http/response.h"
#include "core/http/status.h"
#include "core/metrics.h"
#include "core/net.h"

namespace pp::py {

namespace {

// ---- headers from Python ---------------------------------------------------------

// A header name or value from Python as bytes: WSGI's are str ("native strings",
// Latin-1), ASGI's are bytes (`want_str` says which); the other type is a TypeError, as
// PEP 3333 and the ASGI spec ask. `keep` owns an encoded copy.
bool header_bytes(PyObject* o, bool want_str, std::string_view& out, Ref& keep) {
  if (!want_str && PyBytes_Check(o)) {
    out = {PyBytes_AS_STRING(o), static_cast<std::size_t>(PyBytes_GET_SIZE(o))};
    return true;
  }
  if (want_str && PyUnicode_Check(o)) {
    if (PyUnicode_IS_ASCII(o)) {
      Py_ssize_t n = 0;
      const char* s = PyUnicode_AsUTF8AndSize(o, &n);
      if (!s) return false;
      out = {s, static_cast<std::size_t>(n)};
      return true;
    }
    keep = Ref(PyUnicode_AsLatin1String(o));
    if (!keep) return false;
    out = {PyBytes_AS_STRING(keep.get()), static_cast<std::size_t>(PyBytes_GET_SIZE(keep.get()))};
    return true;
  }
  PyErr_Format(PyExc_TypeError, "header names and values must be %s, not %.100s",
               want_str ? "str (WSGI)" : "bytes (ASGI)", Py_TYPE(o)->tp_name);
  return false;
}

// Hop-by-hop fields (RFC 9110 7.6.1) describe this connection, which is the server's to
// frame and manage: an app's are dropped (docs/decisions.md, "the gateway frames every
// response"); Connection: close is still honoured.
bool hop_by_hop(std::string_view name) {
  for (std::string_view h :
       {"connection", "keep-alive", "proxy-connection", "te", "transfer-encoding", "upgrade"})
    if (http::ascii_iequals(name, h)) return true;
  return false;
}

// True when the comma-separated `value` lists `token` (case-insensitive).
bool lists_token(std::string_view value, std::string_view token) {
  while (!value.empty()) {
    std::size_t comma = value.find(',');
    std::string_view item = value.substr(0, comma);
    while (!item.empty() && (item.front() == ' ' || item.front() == '\t')) item.remove_prefix(1);
    while (!item.empty() && (item.back() == ' ' || item.back() == '\t')) item.remove_suffix(1);
    if (http::ascii_iequals(item, token)) return true;
    if (comma == std::string_view::npos) break;
    value.remove_prefix(comma + 1);
  }
  return false;
}

}  // namespace

PyTypeObject* exchange_type = nullptr;

// The exchange's connection, or null (and false to return) when it is gone or finished.
GatewayConnection* live(ExchangeObject* ex) {
  if (!ex->conn || ex->finished) return nullptr;
  return ex->conn;
}

bool on_its_worker(ExchangeObject* ex) {
  if (current_loop() == ex->loop) return true;
  PyErr_SetString(names().parallel_error,
                  "an exchange is answered on its connection's worker (its event loop)");
  return false;
}

namespace {

// Writes the status line and the app's header fields, adding Server, Date and the
// framing. Sets the exchange's framing. False with an exception set for a bad status or
// header (nothing is written then; the caller's failure path answers 500).
//
// The gateway frames every response itself, whatever the app says (docs/decisions.md):
// hop-by-hop fields are dropped, a Content-Length must be one decimal number below
// 2^63, and the final status must be 200-599 -- an informational status (1xx, 101
// included: there is no upgrade) would make the client pair the next response with
// this request.
bool write_head(ExchangeObject* ex, PyObject* status, PyObject* headers, std::int64_t length) {
  int code = 0;
  std::string_view reason;  // empty: the standard phrase
  Ref reason_keep;
  // WSGI gives its status as a str and its headers as str; ASGI gives an int and bytes.
  bool str_headers = !PyLong_Check(status);
  if (PyLong_Check(status)) {
    long value = PyLong_AsLong(status);  // (PyLong_AsInt is 3.13+; 3.11 builds too)
    if (value == -1 && PyErr_Occurred()) return false;
    if (value < 100 || value > 999) {
      PyErr_Format(PyExc_ValueError, "status %ld is not a 3-digit HTTP status", value);
      return false;
    }
    code = static_cast<int>(value);
  } else {
    std::string_view s;
    if (!PyUnicode_Check(status) || !header_bytes(status, true, s, reason_keep)) {
      if (!PyErr_Occurred()) PyErr_SetString(PyExc_TypeError, "status must be an int or a str");
      return false;
    }
    auto [end, ec] = std::from_chars(s.data(), s.data() + std::min<std::size_t>(3, s.size()), code);
    if (s.size() < 3 || ec != std::errc() || end != s.data() + 3 || code < 100 ||
        (s.size() > 3 && s[3] != ' ') || !http::is_field_value(s)) {
      PyErr_Format(PyExc_ValueError, "status %R is not '<3-digit code> <reason>'", status);
      return false;
    }
    if (s.size() > 4) reason = s.substr(4);  // "200" or "200 ": the reason is ours
  }
  if (code < 200 || code > 599) {
    PyErr_Format(PyExc_ValueError,
                 "status %d cannot end a response (a final status is 200-599; 1xx are "
                 "interim, and there is no protocol upgrade)",
                 code);
    return false;
  }
  bool bodiless_status = code == 204 || code == 304;
  bool has_server = false, has_date = false, has_length = false, app_close = false;
  std::uint64_t app_length = 0;
  std::string fields;  // the app's, checked; written once all of them are
  fields.reserve(192);
  Ref seq(PySequence_Fast(headers, "headers must be a list of (name, value) pairs"));
  if (!seq) return false;
  Py_ssize_t n = PySequence_Fast_GET_SIZE(seq.get());
  PyObject** items = PySequence_Fast_ITEMS(seq.get());
  for (Py_ssize_t i = 0; i < n; ++i) {
    PyObject* pair = items[i];
    if (!PyTuple_Check(pair) && !PyList_Check(pair)) {
      PyErr_SetString(PyExc_TypeError, "each header must be a (name, value) pair");
      return false;
    }
    if (PySequence_Size(pair) != 2) {
      PyErr_SetString(PyExc_ValueError, "each header must be a (name, value) pair");
      return false;
    }
    Ref k(PySequence_GetItem(pair, 0)), v(PySequence_GetItem(pair, 1));
    std::string_view name, value;
    Ref kk, vk;
    if (!k || !v || !header_bytes(k.get(), str_headers, name, kk) ||
        !header_bytes(v.get(), str_headers, value, vk))
      return false;
    if (!http::is_token(name) || !http::is_field_value(value)) {
      // Header injection guard: a CR or LF would start a new field or response.
      PyErr_Format(PyExc_ValueError, "invalid header %R: %R", k.get(), v.get());
      return false;
    }
    if (http::ascii_iequals(name, "content-length")) {
      std::string_view digits = value;
      while (!digits.empty() && (digits.front() == ' ' || digits.front() == '\t'))
        digits.remove_prefix(1);
      while (!digits.empty() && (digits.back() == ' ' || digits.back() == '\t'))
        digits.remove_suffix(1);
      std::uint64_t len = 0;
      auto [end, ec] = std::from_chars(digits.data(), digits.data() + digits.size(), len);
      if (digits.empty() || ec != std::errc() || end != digits.data() + digits.size() ||
          len > static_cast<std::uint64_t>(std::numeric_limits<std::int64_t>::max())) {
        PyErr_Format(PyExc_ValueError, "Content-Length %R is not a number below 2**63", v.get());
        return false;
      }
      if (has_length) {
        if (len != app_length) {
          PyErr_Format(PyExc_ValueError, "two different Content-Lengths (%llu and %R)",
                       static_cast<unsigned long long>(app_length), v.get());
          return false;
        }
        continue;  // one is enough
      }
      has_length = true;
      app_length = len;
      // RFC 9110 8.6: never on a 204; on a 304 it is the GET's length (sent as it is).
      if (code == 204) continue;
      fields.append(name);  // as the app spelled it
      fields.append(": ");
      http::append_decimal(fields, len);
      fields.append("\r\n");
      continue;
    }
    if (hop_by_hop(name)) {
      if (http::ascii_iequals(name, "connection") && lists_token(value, "close")) app_close = true;
      continue;
    }
    if (http::ascii_iequals(name, "server")) {
      has_server = true;
    } else if (http::ascii_iequals(name, "date")) {
      has_date = true;
    }
    fields.append(name);
    fields.append(": ");
    fields.append(value);
    fields.append("\r\n");
  }
  std::string& head = ex->conn->out().tail_buffer();
  std::size_t head_start = head.size();
  http::append_status_line(head, code, reason);  // counts the response by status
  ex->conn->note_response_status(code);          // its access log line, when it finishes
  head.append(fields);
  http::append_server_and_date(head, !has_server, !has_date);
  ex->no_body = ex->head || bodiless_status;
  if (has_length) {
    ex->declared = static_cast<std::int64_t>(app_length);
  } else if (bodiless_status) {
    // No body by definition, and no framing header.
  } else if (length >= 0) {
    ex->declared = length;
    head.append("Content-Length: ");
    http::append_decimal(head, static_cast<std::uint64_t>(length));
    head.append("\r\n");
  } else if (ex->head) {
    // HEAD of a body of unknown length: no framing header at all.
  } else if (!ex->http10) {
    ex->chunked = true;
    head.append("Transfer-Encoding: chunked\r\n");
  } else {
    ex->until_close = true;
  }
  ex->close_after_response = app_close || ex->until_close || ex->conn->draining();
  bool close = ex->close_after || ex->close_after_response;
  http::append_connection(head, close        ? http::ConnectionHeader::close
                                : ex->http10 ? http::ConnectionHeader::keep_alive
                                             : http::ConnectionHeader::none);
  head.append("\r\n");
  ex->started = true;
  Counters::bump(thread_counters().bytes_sent, head.size() - head_start);
  return true;
}

// Appends body bytes in the response's framing.
void write_body(ExchangeObject* ex, std::string_view data) {
  if (data.empty() || ex->no_body) return;
  if (ex->declared >= 0) {
    // Never past the declared length: the next response would start inside this one.
    std::uint64_t room =
        static_cast<std::uint64_t>(ex->declared) -
        std::min<std::uint64_t>(ex->written, static_cast<std::uint64_t>(ex->declared));
    if (data.size() > room) {
      data = data.substr(0, room);
      ex->close_after_response = true;
    }
  }
  std::string& out = ex->conn->out().tail_buffer();
  if (ex->chunked)
    http::append_chunk(out, data);
  else
    out.append(data);
  ex->written += data.size();
  Counters::bump(thread_counters().bytes_sent, data.size());
}

void finish(ExchangeObject* ex) {
  GatewayConnection* conn = ex->conn;
  if (ex->chunked) conn->out().tail_buffer().append(http::kLastChunk);
  if (ex->declared >= 0 && !ex->no_body && ex->written != static_cast<std::uint64_t>(ex->declared))
    ex->close_after_response = true;  // short body: the client cannot find the next one
  ex->finished = true;
  ex->conn = nullptr;  // done with it: the connection may now go at any time
  Py_CLEAR(ex->on_disconnect);
  conn->written();
  conn->response_finished(ex);  // may close and delete the connection
}

// Bytes-like -> a view (buffer protocol). A str is a TypeError, in every path (PEP 3333
// and ASGI bodies are bytes; its encoding would be a guess).
bool body_view(PyObject* o, std::string_view& out, Py_buffer& view, bool& has_view) {
  has_view = false;
  if (PyBytes_Check(o)) {
    out = {PyBytes_AS_STRING(o), static_cast<std::size_t>(PyBytes_GET_SIZE(o))};
    return true;
  }
  if (PyUnicode_Check(o)) {
    PyErr_SetString(PyExc_TypeError, "a body must be bytes, not str (encode it)");
    return false;
  }
  if (PyObject_GetBuffer(o, &view, PyBUF_SIMPLE) < 0) {
    PyErr_Format(PyExc_TypeError, "a body must be bytes-like, not %.100s", Py_TYPE(o)->tp_name);
    return false;
  }
  has_view = true;
  out = {static_cast<const char*>(view.buf), static_cast<std::size_t>(view.len)};
  return true;
}

// ---- Exchange methods --------------------------------------------------------------

#define EX reinterpret_cast<ExchangeObject*>(self)

PyObject* ex_start(PyObject* self, PyObject* args) {
  PyObject *status, *headers;
  long long length = -1;
  if (!PyArg_ParseTuple(args, "OO|L:start", &status, &headers, &length)) return nullptr;
  if (!on_its_worker(EX)) return nullptr;
  if (!live(EX)) Py_RETURN_FALSE;
  if (EX->started) {
    PyErr_SetString(names().parallel_error, "the response has already started");
    return nullptr;
  }
  if (!write_head(EX, status, headers, length)) return nullptr;
  Py_RETURN_TRUE;
}

PyObject* ex_write(PyObject* self, PyObject* data) {
  if (!on_its_worker(EX)) return nullptr;
  GatewayConnection* conn = live(EX);
  if (!conn) Py_RETURN_FALSE;
  if (!EX->started) {
    PyErr_SetString(names().parallel_error, "write() before start()");
    return nullptr;
  }
  std::string_view v;
  Py_buffer view;
  bool has_view;
  if (!body_view(data, v, view, has_view)) return nullptr;
  write_body(EX, v);
  if (has_view) PyBuffer_Release(&view);
  conn->written();
  Py_RETURN_TRUE;
}

PyObject* ex_finish(PyObject* self, PyObject*) {
  if (!on_its_worker(EX)) return nullptr;
  if (!live(EX)) Py_RETURN_FALSE;
  if (!EX->started) {
    PyErr_SetString(names().parallel_error, "finish() before start()");
    return nullptr;
  }
  finish(EX);
  Py_RETURN_TRUE;
}

// respond(status, headers, body): a whole response in one call (the common case).
PyObject* ex_respond(PyObject* self, PyObject* const* args, Py_ssize_t nargs) {
  if (nargs != 3) {
    PyErr_SetString(PyExc_TypeError, "respond(status, headers, body)");
    return nullptr;
  }
  if (!on_its_worker(EX)) return nullptr;
  if (!live(EX)) Py_RETURN_FALSE;
  if (EX->started) {
    PyErr_SetString(names().parallel_error, "the response has already started");
    return nullptr;
  }
  std::string_view v;
  Py_buffer view;
  bool has_view;
  if (!body_view(args[2], v, view, has_view)) return nullptr;
  bool ok = write_head(EX, args[0], args[1], static_cast<std::int64_t>(v.size()));
  if (ok) write_body(EX, v);
  if (has_view) PyBuffer_Release(&view);
  if (!ok) return nullptr;
  finish(EX);
  Py_RETURN_TRUE;
}

// when_writable(fn): see GatewayConnection::when_writable. False (fn not kept) when the
// app may go on at once, or the connection is gone or the response finished.
PyObject* ex_when_writable(PyObject* self, PyObject* fn) {
  if (!on_its_worker(EX)) return nullptr;
  GatewayConnection* conn = live(EX);
  if (!conn) Py_RETURN_FALSE;
  if (!PyCallable_Check(fn)) {
    PyErr_SetString(PyExc_TypeError, "when_writable(fn): fn must be callable");
    return nullptr;
  }
  return PyBool_FromLong(conn->when_writable(fn));
}

// sendfile(fd, offset, count): `count` bytes of the open file `fd` (owned from now on:
// closed once sent) from `offset`, page cache to socket, in the response's framing.
PyObject* ex_sendfile(PyObject* self, PyObject* args) {
  long long fd, offset, count;
  if (!PyArg_ParseTuple(args, "LLL:sendfile", &fd, &offset, &count)) return nullptr;
  if (!on_its_worker(EX)) {
    close_file(static_cast<Handle>(fd));  // owned from the call on, whatever happens
    return nullptr;
  }
  GatewayConnection* conn = live(EX);
  if (!conn || EX->no_body || count <= 0) {
    close_file(static_cast<Handle>(fd));
    if (!conn) Py_RETURN_FALSE;
    Py_RETURN_TRUE;
  }
  if (!EX->started || offset < 0) {
    close_file(static_cast<Handle>(fd));
    PyErr_SetString(names().parallel_error, "sendfile() before start(), or a negative offset");
    return nullptr;
  }
  std::uint64_t n = static_cast<std::uint64_t>(count);
  if (EX->declared >= 0) {
    std::uint64_t room =
        static_cast<std::uint64_t>(EX->declared) -
        std::min<std::uint64_t>(EX->written, static_cast<std::uint64_t>(EX->declared));
    if (n > room) {
      n = room;
      EX->close_after_response = true;
    }
  }
  Outbound& out = conn->out();
  if (EX->chunked) http::append_chunk_head(out.tail_buffer(), n);
  out.append_file(static_cast<Handle>(fd), static_cast<std::uint64_t>(offset), n, /*owned=*/true);
  if (EX->chunked) out.append("\r\n");
  EX->written += n;
  Counters::bump(thread_counters().bytes_sent, n);
  conn->written();
  Py_RETURN_TRUE;
}

}  // namespace

// fail(): the app failed. Before the head went out: a 500 (it was logged by the
// caller); after: what was written goes out and the connection closes, without a
// last chunk, so the client sees a cut body rather than a whole one.
PyObject* ex_fail(PyObject* self, PyObject*) {
  if (!on_its_worker(EX)) return nullptr;
  GatewayConnection* conn = live(EX);
  if (!conn) Py_RETURN_FALSE;
  if (!EX->started) {
    http::append_error_response(conn->out().tail_buffer(), 500,
                                EX->close_after || conn->draining());
    EX->started = true;
    EX->finished = true;
    EX->conn = nullptr;
    Py_CLEAR(EX->on_disconnect);
    conn->written();
    conn->response_finished(EX);
  } else {
    EX->finished = true;
    EX->close_after_response = true;
    EX->conn = nullptr;
    Py_CLEAR(EX->on_disconnect);
    conn->written();
    conn->response_finished(EX);  // closes after the send (may delete the connection)
  }
  Py_RETURN_TRUE;
}

namespace {

PyObject* ex_get_body(PyObject* self, void*) {
  return Py_NewRef(EX->body);
}
PyObject* ex_get_started(PyObject* self, void*) {
  return PyBool_FromLong(EX->started);
}
// True once the body holds everything its framing promised (the declared length, or no
// body at all): what is left of an app's result can only be empty.
PyObject* ex_get_complete(PyObject* self, void*) {
  auto* ex = reinterpret_cast<ExchangeObject*>(self);
  return PyBool_FromLong(
      ex->started && (ex->no_body || (ex->declared >= 0 &&
                                      ex->written >= static_cast<std::uint64_t>(ex->declared))));
}
PyObject* ex_get_finished(PyObject* self, void*) {
  return PyBool_FromLong(EX->finished);
}
PyObject* ex_get_closed(PyObject* self, void*) {
  return PyBool_FromLong(EX->conn == nullptr);
}
PyObject* ex_get_method_is_head(PyObject* self, void*) {
  return PyBool_FromLong(EX->head);
}
PyObject* ex_get_on_disconnect(PyObject* self, void*) {
  return Py_NewRef(EX->on_disconnect ? EX->on_disconnect : Py_None);
}
int ex_set_on_disconnect(PyObject* self, PyObject* value, void*) {
  PyObject* v = value == Py_None ? nullptr : value;
  Py_XSETREF(EX->on_disconnect, Py_XNewRef(v));
  return 0;
}

#undef EX

int ex_traverse(PyObject* self, visitproc visit, void* arg) {
  auto* ex = reinterpret_cast<ExchangeObject*>(self);
  Py_VISIT(ex->on_disconnect);
  Py_VISIT(Py_TYPE(self));
  return 0;
}

int ex_clear(PyObject* self) {
  Py_CLEAR(reinterpret_cast<ExchangeObject*>(self)->on_disconnect);
  return 0;
}

void ex_dealloc(PyObject* self) {
  PyObject_GC_UnTrack(self);
  auto* ex = reinterpret_cast<ExchangeObject*>(self);
  Py_CLEAR(ex->body);
  Py_CLEAR(ex->on_disconnect);
  PyTypeObject* type = Py_TYPE(self);
  PyObject_GC_Del(self);
  Py_DECREF(type);
}

PyMethodDef exchange_methods[] = {
    {"environ", ex_environ, METH_O,
     "environ(base)\n--\n\nA copy of `base` with the request's PEP 3333 keys (during the handler "
     "call only)."},
    {"scope", ex_scope, METH_O,
     "scope(base)\n--\n\nA copy of `base` with the request's ASGI http scope keys (during the "
     "handler call only)."},
    {"start", ex_start, METH_VARARGS,
     "start(status, headers, length=-1)\n--\n\nSend the response head; length -1: unknown "
     "(chunked on HTTP/1.1)."},
    {"write", ex_write, METH_O, "write(data)\n--\n\nSend body bytes."},
    {"when_writable", ex_when_writable, METH_O,
     "when_writable(fn)\n--\n\nTrue when the queued output is over the low-water mark: fn() "
     "then runs once, on the worker, when it has gone to the kernel or the connection went. "
     "False (fn not kept) when the app may go on now."},
    {"sendfile", ex_sendfile, METH_VARARGS,
     "sendfile(fd, offset, count)\n--\n\nSend a file range from the page cache; takes fd."},
    {"finish", ex_finish, METH_NOARGS, "finish()\n--\n\nThe response is complete."},
    {"respond", reinterpret_cast<PyCFunction>(reinterpret_cast<void (*)()>(ex_respond)),
     METH_FASTCALL, "respond(status, headers, body)\n--\n\nA whole response at once."},
    {"fail", ex_fail, METH_NOARGS,
     "fail()\n--\n\nThe app failed: 500 if nothing was sent, else abort the connection."},
    {nullptr, nullptr, 0, nullptr},
};

PyGetSetDef exchange_getset[] = {
    {"body", ex_get_body, nullptr, "The decoded request body.", nullptr},
    {"started", ex_get_started, nullptr, "The response head was written.", nullptr},
    {"finished", ex_get_finished, nullptr, "The response is complete.", nullptr},
    {"complete", ex_get_complete, nullptr,
     "The body sent so far is all its framing promised (declared length, or no body).", nullptr},
    {"closed", ex_get_closed, nullptr,
     "The exchange has let go of its connection (the response finished, or the connection "
     "went first).",
     nullptr},
    {"is_head", ex_get_method_is_head, nullptr, "A HEAD request.", nullptr},
    {"on_disconnect", ex_get_on_disconnect, ex_set_on_disconnect,
     "Called once, on the worker, if the connection goes before the response finishes.", nullptr},
    {nullptr, nullptr, nullptr, nullptr, nullptr},
};

PyType_Slot exchange_slots[] = {
    {Py_tp_dealloc, reinterpret_cast<void*>(ex_dealloc)},
    {Py_tp_traverse, reinterpret_cast<void*>(ex_traverse)},
    {Py_tp_clear, reinterpret_cast<void*>(ex_clear)},
    {Py_tp_methods, exchange_methods},
    {Py_tp_getset, exchange_getset},
    {Py_tp_doc, const_cast<char*>("One request and its response, for a WSGI or ASGI gateway.")},
    {0, nullptr},
};

}  // namespace

PyType_Spec exchange_spec = {
    "parallel._Exchange",
    sizeof(ExchangeObject),
    0,
    Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC | Py_TPFLAGS_DISALLOW_INSTANTIATION,
    exchange_slots,
};

}  // namespace pp::py
