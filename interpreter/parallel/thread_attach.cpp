// interpreter/parallel/thread_attach.cpp -- a runtime thread's attachment to the
// interpreter: which thread state, loop, counters and WorkerLocal the calling thread has,
// and attaching lazily to run Python (runtime.h, "Threading model").
#include "interpreter/parallel/runtime_state.h"

namespace pp::py {

namespace {
thread_local ThreadContext* this_thread = nullptr;
}  // namespace

void set_thread_context(ThreadContext* t) {
  this_thread = t;
}

void ensure_attached() {
  ThreadContext* t = this_thread;
  if (t && !t->attached) {
    PyEval_RestoreThread(t->tstate);
    t->attached = true;
  }
}

void detach() {
  ThreadContext* t = this_thread;
  if (t && t->attached) {
    t->attached = false;
    PyEval_SaveThread();
  }
}

Counters& thread_counters() {
  static Counters unowned;  // callbacks never run off runtime threads; a safe sink anyway
  return this_thread && this_thread->counters ? *this_thread->counters : unowned;
}

Loop* current_loop() {
  return this_thread ? this_thread->loop : nullptr;
}

WorkerLocal* worker_local() {
  return this_thread ? this_thread->local : nullptr;
}

}  // namespace pp::py
