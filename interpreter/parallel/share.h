// interpreter/parallel/share.h -- the main thread's data, shared with the workers by
// making it immortal when run() starts.
//
// PyParallel let parallel contexts read main-thread objects without touching their
// reference counts. The free-threaded build instead gives each object an owner thread:
// the owner counts references with plain adds, every other thread with atomic adds on a
// shared counter. A worker that reads a table built at import (or the app object, its
// config, its routes) therefore pays an atomic increment and decrement per access, and two
// workers reading the same object bounce its cache line between cores: measured, a loop
// over a main-thread dict ran at half speed on a worker (bench/README.md, wsgi_asgi.py).
// Immortal objects skip reference counting altogether, in every thread.
#pragma once

#include "interpreter/parallel/py_util.h"

#include <cstddef>
#include <span>
#include <string>

namespace pp::py {

/// What share_main_thread_data() did, for the log and for tests.
struct ShareResult {
  std::size_t walked = 0;        // references followed from the roots (the roots included)
  std::size_t immortalized = 0;  // made immortal by this call
  std::size_t kept_mortal = 0;   // left mortal: finalizers, refcounts in a merge queue, ...
  std::string refused;  // why nothing was shared (another CPython: share_guard.h), or empty
};

/// Makes the data the workers can reach immortal: everything reachable, when run()
/// starts, from the interpreter's modules (sys.modules), from the calling thread's frames
/// (their locals, globals and builtins) and from `roots` (what the runtime holds for the
/// workers: the registered protocols and gateways). Left mortal: objects whose type (or a
/// base of it) has a finalizer (their `__del__`/tp_finalize must still run: a buffered file
/// flushes in it), objects the interpreter is merging reference counts of, `keep_mortal`
/// (with a tuple's items) and instances of `keep_types` or of their subclasses: what the
/// runtime itself releases, such as a pending timer's function and arguments (let go when
/// the timer is cancelled or run() returns) and the timer handle, whose deallocation
/// releases its state. What only another thread's stack holds (an object it is still
/// building) and garbage are not reached, so they stay mortal; objects frozen by
/// gc.freeze() are walked like any other. Called by run() on its thread before any worker
/// starts (unless `share_main_data` is off). What is shared then lives as long as the
/// process: the price of lock-free, count-free reads.
/// A no-op on interpreters with the GIL, which have no per-thread counts to contend on.
/// On a free-threaded CPython other than 3.13 (share_guard.h) it shares nothing, logs why
/// and says so in `refused`.
ShareResult share_main_thread_data(std::span<PyObject* const> roots,
                                   std::span<PyObject* const> keep_mortal,
                                   std::span<PyTypeObject* const> keep_types);

}  // namespace pp::py
