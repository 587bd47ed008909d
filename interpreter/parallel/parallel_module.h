// interpreter/parallel/parallel_module.h -- the `parallel` module: entry point and thread identity.
//
// The module is compiled twice from the same source: into the `pyparallel` host, which
// registers it as a built-in (PyImport_AppendInittab), and as an extension module
// (parallel<EXT_SUFFIX>) importable from the matching python. On a free-threaded build it
// declares Py_MOD_GIL_NOT_USED, so importing it leaves the GIL off.
#pragma once

// Python.h comes first, as the C-API documentation asks (it sets feature macros).
#define PY_SSIZE_T_CLEAN
#include <Python.h>

extern "C" {
/// The module's init function (multi-phase initialisation: returns its PyModuleDef).
PyMODINIT_FUNC PyInit_parallel(void);
}

namespace pp {

/// Marks the calling thread as a parallel (worker) thread, or not. Workers call this once
/// when they start, before running any callback; `parallel.is_parallel_thread()` reads it.
void set_parallel_thread(bool value) noexcept;
/// True on a worker thread of the runtime; false on the main thread and on threads that
/// Python's `threading` starts.
bool is_parallel_thread() noexcept;

}  // namespace pp
