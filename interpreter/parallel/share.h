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

namespace pp::py {

/// What share_main_thread_data() did, for the log and for tests.
struct ShareResult {
  std::size_t walked = 0;        // GC-tracked objects, and each reference from them followed
  std::size_t immortalized = 0;  // made immortal by this call
  std::size_t kept_mortal = 0;   // left mortal: finalizers, refcounts in a merge queue
};

/// Makes every object alive now immortal, except objects whose type has a finalizer
/// (their `__del__`/tp_finalize must still run: a buffered file flushes in it), objects
/// the interpreter is merging reference counts of, `keep_mortal` (with a tuple's items) and
/// instances of `keep_types`: what the runtime itself releases, such as a pending timer's
/// function and arguments (let go when the timer is cancelled or run() returns) and the
/// timer handle, whose deallocation releases its state. Called by run() on the main thread
/// before any worker starts (unless `share_main_data` is off). Everything alive at that
/// moment then lives as long as the process: the price of lock-free, count-free reads.
/// A no-op on interpreters with the GIL, which have no per-thread counts to contend on.
ShareResult share_main_thread_data(std::span<PyObject* const> keep_mortal,
                                   std::span<PyTypeObject* const> keep_types);

}  // namespace pp::py
