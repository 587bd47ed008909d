// interpreter/parallel/gateway.cpp -- the gateway's module plumbing (see gateway.h): wsgi(),
// asgi(), the private functions the Python gateways reach a worker's event loop with, the
// lazy WSGIGateway/ASGIGateway names, and init_gateway, which adds them, the Exchange type
// and the package's __path__. The engine side is gateway_connection.cpp (the connection),
// gateway_exchange.cpp (the Exchange and response framing) and gateway_environ.cpp (the
// WSGI environ and ASGI scope), sharing gateway_internal.h.
#include "interpreter/parallel/gateway.h"

#include <cstring>
#include <string>

#include "core/log.h"
#include "interpreter/parallel/gateway_internal.h"

namespace pp::py {

// ---- module functions ------------------------------------------------------------

namespace {

// _gateway_loop() -> int: the calling runtime thread's loop, for _gateway_post.
PyObject* fn_gateway_loop(PyObject*, PyObject*) {
  Loop* loop = current_loop();
  if (!loop) {
    PyErr_SetString(names().parallel_error, "not on a runtime thread");
    return nullptr;
  }
  return PyLong_FromVoidPtr(loop);
}

// _gateway_post(loop, func): func() on that runtime thread, from any thread. False when
// the runtime refuses (stopping, or that thread is gone).
PyObject* fn_gateway_post(PyObject*, PyObject* args) {
  PyObject *loop_obj, *func;
  if (!PyArg_ParseTuple(args, "OO:_gateway_post", &loop_obj, &func)) return nullptr;
  void* loop = PyLong_AsVoidPtr(loop_obj);
  if (!loop && PyErr_Occurred()) return nullptr;
  Ref fn = Ref::borrow(func);
  bool ok = post_to_loop(static_cast<Loop*>(loop), [fn]() mutable {
    Ref r(PyObject_CallNoArgs(fn.get()));
    if (!r) log_exception("gateway: posted function raised", fetch_exception());
    fn = Ref();
  });
  return PyBool_FromLong(ok);
}

// _gateway_timer(seconds, func) -> Timer: func() on this runtime thread after seconds.
PyObject* fn_gateway_timer(PyObject*, PyObject* args) {
  double seconds;
  PyObject* func;
  if (!PyArg_ParseTuple(args, "dO:_gateway_timer", &seconds, &func)) return nullptr;
  return timer_on_this_thread(seconds, func);
}

// wsgi(app, **options) / asgi(app, **options): the protocol classes, made by the Python
// side, which checks the arguments (root_path, proxy_headers, forwarded_allow_ips).
PyObject* make_adapter(const char* module, PyObject* args, PyObject* kwargs) {
  Ref mod(PyImport_ImportModule(module));
  if (!mod) return nullptr;
  Ref adapter(PyObject_GetAttrString(mod.get(), "adapter"));
  return adapter ? PyObject_Call(adapter.get(), args, kwargs) : nullptr;
}
PyObject* fn_wsgi(PyObject*, PyObject* args, PyObject* kwargs) {
  return make_adapter("parallel._wsgi", args, kwargs);
}
PyObject* fn_asgi(PyObject*, PyObject* args, PyObject* kwargs) {
  return make_adapter("parallel._asgi", args, kwargs);
}

// Module __getattr__ (PEP 562): the gateway base classes come from the Python part on
// first use, so `import parallel` does not import asyncio.
PyObject* fn_module_getattr(PyObject*, PyObject* name) {
  const char* n = PyUnicode_Check(name) ? PyUnicode_AsUTF8(name) : nullptr;
  if (n && std::strcmp(n, "WSGIGateway") == 0) {
    Ref mod(PyImport_ImportModule("parallel._wsgi"));
    return mod ? PyObject_GetAttr(mod.get(), name) : nullptr;
  }
  if (n && std::strcmp(n, "ASGIGateway") == 0) {
    Ref mod(PyImport_ImportModule("parallel._asgi"));
    return mod ? PyObject_GetAttr(mod.get(), name) : nullptr;
  }
  PyErr_Format(PyExc_AttributeError, "module 'parallel' has no attribute %R", name);
  return nullptr;
}

PyMethodDef gateway_methods[] = {
    {"__getattr__", fn_module_getattr, METH_O, "Lazily provided names (PEP 562)."},
    {"wsgi", reinterpret_cast<PyCFunction>(reinterpret_cast<void (*)()>(fn_wsgi)),
     METH_VARARGS | METH_KEYWORDS,
     "wsgi(app, *, root_path='', proxy_headers=False, forwarded_allow_ips='127.0.0.1')\n--\n\n"
     "A protocol class serving the WSGI (PEP 3333) application `app`: "
     "register(server, wsgi(app))."},
    {"asgi", reinterpret_cast<PyCFunction>(reinterpret_cast<void (*)()>(fn_asgi)),
     METH_VARARGS | METH_KEYWORDS,
     "asgi(app, *, root_path='', proxy_headers=False, forwarded_allow_ips='127.0.0.1')\n--\n\n"
     "A protocol class serving the ASGI 3.0 application `app`, each request's "
     "coroutine on the worker that owns its connection: register(server, asgi(app))."},
    {"_gateway_loop", fn_gateway_loop, METH_NOARGS, "The calling runtime thread's loop (id)."},
    {"_gateway_post", fn_gateway_post, METH_VARARGS,
     "_gateway_post(loop, func)\n--\n\nRun func() on the runtime thread of `loop`."},
    {"_gateway_timer", fn_gateway_timer, METH_VARARGS,
     "_gateway_timer(seconds, func)\n--\n\nRun func() on this runtime thread after seconds."},
    {nullptr, nullptr, 0, nullptr},
};

// The folder of the Python submodules: parallel/python beside the binary that holds
// the module (the host or the extension, in the build tree or a bundle), else
// <bin>/../lib/pyparallel/python (an installed host). Empty when neither exists.
std::string python_folder(PyObject* module) {
  Ref file(PyObject_GetAttrString(module, "__file__"));  // the extension's
  if (!file) {
    PyErr_Clear();
    file = Ref(PySys_GetObject("executable"));  // borrowed
    if (file) Py_INCREF(file.get());
  }
  if (!file || !PyUnicode_Check(file.get())) return {};
  Ref os(PyImport_ImportModule("os.path"));
  if (!os) {
    PyErr_Clear();
    return {};
  }
  Ref real(PyObject_CallMethod(os.get(), "realpath", "O", file.get()));
  Ref dir(real ? PyObject_CallMethod(os.get(), "dirname", "O", real.get()) : nullptr);
  if (!dir) {
    PyErr_Clear();
    return {};
  }
  for (const char* rel : {"parallel/python", "../lib/pyparallel/python"}) {
    Ref cand(PyObject_CallMethod(os.get(), "join", "Os", dir.get(), rel));
    Ref norm(cand ? PyObject_CallMethod(os.get(), "normpath", "O", cand.get()) : nullptr);
    Ref is_dir(norm ? PyObject_CallMethod(os.get(), "isdir", "O", norm.get()) : nullptr);
    if (is_dir && PyObject_IsTrue(is_dir.get()) == 1) {
      const char* s = PyUnicode_AsUTF8(norm.get());
      if (s) return s;
    }
    PyErr_Clear();
  }
  return {};
}

}  // namespace

int init_gateway(PyObject* module) {
  if (PyModule_AddFunctions(module, gateway_methods) < 0) return -1;
  exchange_type = reinterpret_cast<PyTypeObject*>(PyType_FromSpec(&exchange_spec));
  if (!exchange_type) return -1;
  if (PyModule_AddObjectRef(module, "_Exchange", reinterpret_cast<PyObject*>(exchange_type)) < 0)
    return -1;
  // A package: `import parallel.serve` and `-m parallel.serve` find the Python part.
  std::string folder = python_folder(module);
  Ref path(folder.empty() ? PyList_New(0) : Py_BuildValue("[s]", folder.c_str()));
  if (!path || PyModule_AddObjectRef(module, "__path__", path.get()) < 0) return -1;
  return 0;
}

}  // namespace pp::py
