// interpreter/parallel/share.cpp -- see share.h.
#include "interpreter/parallel/share.h"

#include <unordered_set>
#include <vector>

namespace pp::py {

#ifdef Py_GIL_DISABLED
namespace {

struct Walk {
  ShareResult result;
  std::vector<PyObject*> pending;  // untracked GC objects whose referents are not seen yet
  // Untracked GC objects seen so far. Only these need remembering: tracked objects are the
  // walk's own roots, and non-GC objects (str, int, float, bytes) reference nothing.
  std::unordered_set<PyObject*> seen_untracked;
  // Objects to leave mortal (and a tuple's items): the caller's, see share.h.
  std::unordered_set<PyObject*> keep_mortal;
  std::span<PyTypeObject* const> keep_types;
};

// Whether `op` may become immortal. Each exclusion keeps a promise the interpreter made:
bool may_share(PyObject* op, const Walk& walk) {
  if (_Py_IsImmortal(op)) return false;
  if (walk.keep_mortal.contains(op)) return false;
  PyTypeObject* type = Py_TYPE(op);
  for (PyTypeObject* t : walk.keep_types)
    if (type == t) return false;
  // An immortal object is never deallocated, so its finalizer would never run: a file
  // would lose its buffered bytes, a socket would stay open past its last user.
  if (type->tp_finalize != nullptr || type->tp_del != nullptr) return false;
  // The object sits in a thread's merge queue (or uses deferred counting, which 3.13
  // immortalizes itself once a second thread state exists): the queue will still adjust
  // its counts, which immortality must not race with.
  if ((op->ob_ref_shared & _Py_REF_SHARED_FLAG_MASK) == _Py_REF_QUEUED) return false;
  // Interned strings are immortal already in the free-threaded build; one that is not has
  // its lifetime managed by the interned table at finalization.
  if (PyUnicode_Check(op) && PyUnicode_CHECK_INTERNED(op)) return false;
  return true;
}

// The world is stopped (PyUnstable_GC_VisitObjects), so plain stores cannot race with a
// reference count update: every other thread is parked outside the interpreter.
// Tracked objects stay tracked, so the heap walk still meets them as roots (the collector
// untracks immortal objects on its next pass).
void share(PyObject* op, Walk& walk) {
  if (may_share(op, walk)) {
    op->ob_tid = _Py_UNOWNED_TID;
    op->ob_ref_local = _Py_IMMORTAL_REFCNT_LOCAL;
    op->ob_ref_shared = 0;
    ++walk.result.immortalized;
  } else if (!_Py_IsImmortal(op)) {
    ++walk.result.kept_mortal;
  }
}

// Called for each referent of a walked object. Untracked containers (a dict or tuple of
// atomic values, which the collector never tracks; a module's dict, which 3.13 made
// immortal and so untracked when the first thread started) and non-GC objects are not in
// the heap walk, so they are shared here, where something reaches them, and untracked
// containers are walked in turn.
int visit_referent(PyObject* r, void* arg) {
  auto* walk = static_cast<Walk*>(arg);
  if (r == nullptr) return 0;
  ++walk->result.walked;
  if (!PyObject_IS_GC(r)) {
    share(r, *walk);
    return 0;
  }
  if (PyObject_GC_IsTracked(r)) return 0;  // a root of the walk
  if (!walk->seen_untracked.insert(r).second) return 0;
  share(r, *walk);
  if (Py_TYPE(r)->tp_traverse) walk->pending.push_back(r);
  return 0;
}

int visit_root(PyObject* op, void* arg) {
  auto* walk = static_cast<Walk*>(arg);
  ++walk->result.walked;
  share(op, *walk);
  // Referents are walked even from objects kept mortal or immortal already (a module,
  // a function): their dicts, defaults and closures hold the data workers read.
  if (traverseproc t = Py_TYPE(op)->tp_traverse) t(op, visit_referent, walk);
  while (!walk->pending.empty()) {
    PyObject* next = walk->pending.back();
    walk->pending.pop_back();
    Py_TYPE(next)->tp_traverse(next, visit_referent, walk);
  }
  return 1;
}

void keep(PyObject* op, Walk& walk) {
  if (op == nullptr || !walk.keep_mortal.insert(op).second) return;
  if (PyTuple_CheckExact(op))
    for (Py_ssize_t i = 0; i < PyTuple_GET_SIZE(op); ++i) keep(PyTuple_GET_ITEM(op, i), walk);
}

}  // namespace

ShareResult share_main_thread_data(std::span<PyObject* const> keep_mortal,
                                   std::span<PyTypeObject* const> keep_types) {
  Walk walk;
  walk.keep_types = keep_types;
  for (PyObject* op : keep_mortal) keep(op, walk);
  PyUnstable_GC_VisitObjects(visit_root, &walk);
  return walk.result;
}

#else

ShareResult share_main_thread_data(std::span<PyObject* const>, std::span<PyTypeObject* const>) {
  return {};
}

#endif

}  // namespace pp::py
