// interpreter/parallel/http11_response.cpp -- an http11 handler's return value made a
// response: None, a FileResponse, a Response, str, JSON-able or bytes-like, with its
// status, content type and checked headers. A file of its own: the biggest piece of
// the Session, and the only one that frames HTTP responses itself.
#include <string>
#include <vector>

#include <fmt/format.h>

#include "core/http/file_response.h"
#include "core/http/response.h"
#include "interpreter/parallel/runtime.h"
#include "interpreter/parallel/session_internal.h"

namespace pp::py {

// http11: turn a handler's return value into a response.
void Session::http_value(PyObject* value, const http::Request& request, bool close, int status) {
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
    if (!http::queue_file_response(conn_.out(), request, *f->path, *f->content_type, close, error,
                                   code))
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

void Session::fail_500(const http::Request& request, bool close, const char* what) {
  log_exception(fmt::format("{}: bad {} for {} (answered 500)", info_.name, what, request.path),
                fetch_exception());
  http::append_error_response(conn_.out().tail_buffer(), 500, close);
}

}  // namespace pp::py
