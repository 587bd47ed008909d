// interpreter/parallel/parallel_module.cpp -- the `parallel` module's definition: its identity
// functions (cpu_count, is_parallel_thread), and the exec slot that adds the option table's
// functions (parallel/option_keywords.h: _options, _option_table, _parse_option), the
// runtime's API (parallel/api.cpp: server, register, run, ...; its state -- names, types,
// the registry -- is the module's state, released by the interpreter with the module) and
// the WSGI/ASGI gateway (parallel/gateway.h). Options reach the module through
// pp::runtime_options() (interpreter/parallel/runtime_options.h).
#include "interpreter/parallel/parallel_module.h"

#include <string>
#include <vector>
#include "interpreter/parallel/gateway.h"
#include "interpreter/parallel/option_keywords.h"
#include "interpreter/parallel/runtime.h"

#include "interpreter/parallel/share.h"
#include "interpreter/parallel/runtime_options.h"

namespace pp {
namespace {
thread_local bool parallel_thread = false;
}  // namespace

void set_parallel_thread(bool value) noexcept { parallel_thread = value; }
bool is_parallel_thread() noexcept { return parallel_thread; }

}  // namespace pp

namespace {

// Builds {name: value} from (key, new reference) pairs; steals the references.
bool set_item(PyObject* dict, const char* key, PyObject* value) {
  if (value == nullptr) return false;
  int rc = PyDict_SetItemString(dict, key, value);
  Py_DECREF(value);
  return rc == 0;
}

PyObject* str_of(std::string_view text) {
  return PyUnicode_FromStringAndSize(text.data(), static_cast<Py_ssize_t>(text.size()));
}

/// parallel.cpu_count() -> int: CPUs this process may run on.
PyObject* parallel_cpu_count(PyObject* /*module*/, PyObject* /*unused*/) {
  return PyLong_FromUnsignedLong(pp::allowed_cpu_count());
}

/// parallel.is_parallel_thread() -> bool: True inside a runtime worker.
PyObject* parallel_is_parallel_thread(PyObject* /*module*/, PyObject* /*unused*/) {
  return PyBool_FromLong(pp::is_parallel_thread());
}

/// parallel._share_main_thread_data(keep_types=()) -> dict: what run() does when it starts
/// (interpreter/parallel/share.h), on its own, for tests and measurements: makes the data
/// reachable from the modules and the caller's frames immortal, except instances of
/// `keep_types` (and of their subclasses). Returns the counts, and why nothing was shared
/// on another CPython. Not while run() runs: the runtime's handles would not be kept.
PyObject* parallel_share_main_thread_data(PyObject* /*module*/, PyObject* args) {
  PyObject* types = nullptr;
  if (!PyArg_ParseTuple(args, "|O!:_share_main_thread_data", &PyTuple_Type, &types)) return nullptr;
  if (pp::py::runtime_running() || pp::is_parallel_thread()) {
    PyErr_SetString(PyExc_RuntimeError, "_share_main_thread_data() is for use outside run()");
    return nullptr;
  }
  std::vector<PyTypeObject*> keep_types;
  for (Py_ssize_t i = 0; types && i < PyTuple_GET_SIZE(types); ++i) {
    PyObject* t = PyTuple_GET_ITEM(types, i);
    if (!PyType_Check(t)) {
      PyErr_SetString(PyExc_TypeError, "keep_types must be a tuple of types");
      return nullptr;
    }
    keep_types.push_back(reinterpret_cast<PyTypeObject*>(t));
  }
  pp::py::ShareResult r = pp::py::share_main_thread_data({}, {}, keep_types);
  PyObject* dict = PyDict_New();
  if (dict == nullptr) return nullptr;
  if (!set_item(dict, "walked", PyLong_FromSize_t(r.walked)) ||
      !set_item(dict, "immortalized", PyLong_FromSize_t(r.immortalized)) ||
      !set_item(dict, "kept_mortal", PyLong_FromSize_t(r.kept_mortal)) ||
      !set_item(dict, "refused", str_of(r.refused))) {
    Py_DECREF(dict);
    return nullptr;
  }
  return dict;
}

// The module's method table: the `parallel` API grows here.
PyMethodDef parallel_methods[] = {
    {"_share_main_thread_data", parallel_share_main_thread_data, METH_VARARGS,
     "_share_main_thread_data(keep_types=(), /)\n--\n\nWhat run() does to share main-thread "
     "data with the workers, on its own (tests, measurements); not inside run()."},
    {"cpu_count", parallel_cpu_count, METH_NOARGS,
     "cpu_count()\n--\n\nThe number of CPUs this process may run on."},
    {"is_parallel_thread", parallel_is_parallel_thread, METH_NOARGS,
     "is_parallel_thread()\n--\n\nTrue when called from a parallel worker thread."},
    {nullptr, nullptr, 0, nullptr},
};

int parallel_exec(PyObject* module) {
  // Extension mode: malformed PYPARALLEL_* variables fail the import with the reason, as
  // the host would have refused to start.
  if (const std::string& error = pp::runtime_options_error(); !error.empty()) {
    PyErr_Format(PyExc_ValueError, "parallel: %s", error.c_str());
    return -1;
  }
  // The option table in Python: _options, _option_table, _parse_option.
  if (PyModule_AddFunctions(module, pp::py::option_methods) < 0) return -1;
  // The runtime: server/register/run, protocol callbacks on the workers (parallel/).
  if (PyModule_AddFunctions(module, pp::py::runtime_methods) < 0) return -1;
  if (pp::py::init_runtime_api(module) < 0) return -1;
  // parallel.wsgi/asgi and the Python submodules (parallel.serve): gateway.h.
  return pp::py::init_gateway(module);
}

PyModuleDef_Slot parallel_slots[] = {
    {Py_mod_exec, reinterpret_cast<void*>(parallel_exec)},
#ifdef Py_mod_multiple_interpreters
    // The engine is process-wide state; one interpreter owns it.
    {Py_mod_multiple_interpreters, Py_MOD_MULTIPLE_INTERPRETERS_NOT_SUPPORTED},
#endif
#ifdef Py_mod_gil
    // Without this, importing the module re-enables the GIL for the whole process.
    {Py_mod_gil, Py_MOD_GIL_NOT_USED},
#endif
    {0, nullptr},
};

PyModuleDef parallel_module = {
    PyModuleDef_HEAD_INIT,
    "parallel",
    "Parallel protocol callbacks on every core (pyparallel runtime).",
    pp::py::module_state_size,  // names, types, registry: released with the module
    parallel_methods,
    parallel_slots,
    pp::py::module_traverse,
    pp::py::module_clear,
    pp::py::module_free,
};

}  // namespace

PyMODINIT_FUNC PyInit_parallel(void) { return PyModuleDef_Init(&parallel_module); }
