// interpreter/parallel/gateway_environ.cpp -- Exchange.environ() and Exchange.scope(): the
// request as a WSGI environ (PEP 3333) or an ASGI http scope dict, each built in C++ in one
// call. A file of its own: how each spec names the request's parts is apart from the
// response side (gateway_exchange.cpp), which never reads them.
#include "interpreter/parallel/gateway_internal.h"

#include <string>

#include "core/net.h"

namespace pp::py {

namespace {

// Percent-decodes a path (WSGI's PATH_INFO and ASGI's path are decoded; invalid
// escapes stay as they are, as Python's unquote leaves them).
std::string percent_decode(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  auto hex = [](char c) -> int {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
  };
  for (std::size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '%' && i + 2 < s.size()) {
      int h = hex(s[i + 1]), l = hex(s[i + 2]);
      if (h >= 0 && l >= 0) {
        out.push_back(static_cast<char>(h * 16 + l));
        i += 2;
        continue;
      }
    }
    out.push_back(s[i]);
  }
  return out;
}

PyObject* latin1(std::string_view s) {
  return PyUnicode_DecodeLatin1(s.data(), static_cast<Py_ssize_t>(s.size()), nullptr);
}

bool set_str(PyObject* dict, const char* key, PyObject* value) {
  if (!value) return false;
  int rc = PyDict_SetItemString(dict, key, value);
  Py_DECREF(value);
  return rc == 0;
}

// Where the client reached the server, (numeric host, port): the socket's local address
// (the ASGI spec's `server`; SERVER_NAME/SERVER_PORT alike), never the client's Host
// header, which the app reads as HTTP_HOST or the `host` header when it wants it.
void server_of(Handle sock, std::string& name, int& port) {
  std::uint16_t p = 0;
  if (!local_address(sock, name, p)) name = "localhost";
  port = p;
}

}  // namespace

#define EX reinterpret_cast<ExchangeObject*>(self)

PyObject* ex_environ(PyObject* self, PyObject* base) {
  // Its views point into the connection's input, which the worker reuses for the next
  // request as soon as the handler returns: another thread must not read them.
  if (!on_its_worker(EX)) return nullptr;
  const http::Request* r = EX->request;
  if (!r || !EX->conn) {
    PyErr_SetString(names().parallel_error, "environ() is read during the handler call only");
    return nullptr;
  }
  if (!PyDict_Check(base)) {
    PyErr_SetString(PyExc_TypeError, "environ(base): base must be a dict");
    return nullptr;
  }
  Ref env(PyDict_Copy(base));
  if (!env) return nullptr;
  PyObject* d = env.get();
  std::string host, name;
  std::uint16_t rport = 0;
  int sport = 0;
  peer_address(EX->conn->sock(), host, rport);
  server_of(EX->conn->sock(), name, sport);
  std::string path = percent_decode(r->path);
  if (!set_str(d, "REQUEST_METHOD", latin1(r->method)) || !set_str(d, "PATH_INFO", latin1(path)) ||
      !set_str(d, "QUERY_STRING", latin1(r->query)) || !set_str(d, "RAW_URI", latin1(r->target)) ||
      !set_str(d, "SERVER_PROTOCOL", PyUnicode_FromString(EX->http10 ? "HTTP/1.0" : "HTTP/1.1")) ||
      !set_str(d, "SERVER_NAME", latin1(name)) ||
      !set_str(d, "SERVER_PORT", PyUnicode_FromFormat("%d", sport)) ||
      !set_str(d, "REMOTE_ADDR", latin1(host)) ||
      !set_str(d, "REMOTE_PORT", PyUnicode_FromFormat("%d", static_cast<int>(rport))))
    return nullptr;
  std::string key;
  for (const http::Header& h : r->fields()) {
    if (h.name.find('_') != std::string_view::npos) continue;  // HTTP_X_Y would be ambiguous
    bool is_type = http::ascii_iequals(h.name, "content-type");
    bool is_length = http::ascii_iequals(h.name, "content-length");
    if (is_length) continue;  // set below, from the parsed length
    key.assign(is_type || is_length ? "" : "HTTP_");
    for (char c : h.name)
      key.push_back(c == '-' ? '_' : (c >= 'a' && c <= 'z') ? static_cast<char>(c - 32) : c);
    PyObject* old = PyDict_GetItemString(d, key.c_str());  // borrowed
    Ref value;
    if (old && !is_type && !is_length && PyUnicode_Check(old) &&
        !PyDict_Contains(base, Ref(PyUnicode_FromString(key.c_str())).get())) {
      // Repeated fields join with ", " (RFC 9110 5.3); cookies with "; ".
      Ref extra(latin1(h.value));
      Ref sep(PyUnicode_FromString(key == "HTTP_COOKIE" ? "; " : ", "));
      Ref joined(extra && sep ? PyUnicode_Concat(old, sep.get()) : nullptr);
      value = Ref(joined ? PyUnicode_Concat(joined.get(), extra.get()) : nullptr);
    } else {
      value = Ref(latin1(h.value));
    }
    if (!value || PyDict_SetItemString(d, key.c_str(), value.get()) < 0) return nullptr;
  }
  if (r->chunked || !r->header("Content-Length").empty()) {
    // The body's length as the parser read it, never the raw field (which may be a list
    // of equal values, "3, 3"): for a chunked body, the decoded length, so apps that
    // read CONTENT_LENGTH bytes get all of it.
    if (!set_str(d, "CONTENT_LENGTH", PyUnicode_FromFormat("%zu", r->body.size()))) return nullptr;
  }
  return env.release();
}

PyObject* ex_scope(PyObject* self, PyObject* base) {
  if (!on_its_worker(EX)) return nullptr;  // as environ(): views into the worker's input
  const http::Request* r = EX->request;
  if (!r || !EX->conn) {
    PyErr_SetString(names().parallel_error, "scope() is read during the handler call only");
    return nullptr;
  }
  if (!PyDict_Check(base)) {
    PyErr_SetString(PyExc_TypeError, "scope(base): base must be a dict");
    return nullptr;
  }
  Ref scope(PyDict_Copy(base));
  if (!scope) return nullptr;
  PyObject* d = scope.get();
  std::string host, name;
  std::uint16_t rport = 0;
  int sport = 0;
  bool have_peer = peer_address(EX->conn->sock(), host, rport);
  server_of(EX->conn->sock(), name, sport);
  std::string path = percent_decode(r->path);
  Ref headers(PyList_New(static_cast<Py_ssize_t>(r->num_headers)));
  if (!headers) return nullptr;
  std::string lower;
  Py_ssize_t i = 0;
  for (const http::Header& h : r->fields()) {
    lower.assign(h.name);
    for (char& c : lower)
      if (c >= 'A' && c <= 'Z') c = static_cast<char>(c + 32);
    PyObject* pair = Py_BuildValue("(y#y#)", lower.data(), static_cast<Py_ssize_t>(lower.size()),
                                   h.value.data(), static_cast<Py_ssize_t>(h.value.size()));
    if (!pair) return nullptr;
    PyList_SET_ITEM(headers.get(), i++, pair);
  }
  if (!set_str(d, "http_version", PyUnicode_FromString(EX->http10 ? "1.0" : "1.1")) ||
      !set_str(d, "method", latin1(r->method)) ||
      !set_str(
          d, "path",
          PyUnicode_DecodeUTF8(path.data(), static_cast<Py_ssize_t>(path.size()), "replace")) ||
      !set_str(d, "raw_path", bytes_from(r->path)) ||
      !set_str(d, "query_string", bytes_from(r->query)) ||
      PyDict_SetItemString(d, "headers", headers.get()) < 0 ||
      !set_str(d, "server", Py_BuildValue("(si)", name.c_str(), sport)) ||
      !set_str(d, "client",
               have_peer ? Py_BuildValue("(si)", host.c_str(), static_cast<int>(rport))
                         : Py_NewRef(Py_None)))
    return nullptr;
  return scope.release();
}

#undef EX

}  // namespace pp::py
