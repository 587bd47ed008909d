// interpreter/parallel/transport.cpp -- the parallel.Transport type: what protocol
// callbacks see of their connection (sendfile, close, peer, the http11 request
// attributes). A file of its own: any thread may call it, and it hands the work to
// the connection's worker, where the Session runs.
#include <memory>
#include <string>

#include "core/http/request.h"
#include "core/net.h"
#include "interpreter/parallel/runtime.h"
#include "interpreter/parallel/session_internal.h"

namespace pp::py {

namespace {

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
    "parallel.Transport",
    sizeof(TransportObject),
    0,
    Py_TPFLAGS_DEFAULT | Py_TPFLAGS_DISALLOW_INSTANTIATION,
    transport_slots,
};

}  // namespace pp::py
