// interpreter/parallel/share.cpp -- see share.h.
//
// Why a walk from roots, not over the whole heap. An earlier version made every object the
// collector tracks immortal (PyUnstable_GC_VisitObjects). That also caught:
// - garbage not yet collected, which then never was: a cycle whose objects have __del__
//   was never finalized;
// - objects another thread is still building. `tuple(gen)` on a thread parked inside the
//   generator holds a tracked tuple that only its C stack references; made immortal, its
//   count is no longer 1 and the next _PyTuple_Resize (or PyTuple_SetItem) fails with
//   SystemError. Only the builder knows when such an object is done, and nothing in the
//   header says so: its refcount, owner and tracking look like any finished object's.
// - nothing at all after a gc.freeze(): the heap walk skips frozen objects.
// What workers read is what they can reach: modules and their globals, the function that
// called run() (its locals, closures), the protocols and gateways registered with the
// runtime. Walking from there shares exactly that data and cannot reach garbage (nothing
// references it) or what only another thread's stack holds, frozen or not. What it leaves
// mortal is still correct, only counted atomically by the workers that touch it. The cost:
// a visited set of the GC objects reached (tracked ones were previously met once each by the
// heap walk without one); bench/share_start.py measures the start of run() either way.
#include "interpreter/parallel/share.h"

#include <cstdint>
#include <memory>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include "core/log.h"
#include "interpreter/parallel/share_guard.h"

// Compile-time guard: the header fields written below are free-threaded CPython 3.13's.
#if defined(Py_GIL_DISABLED) && PY_VERSION_HEX >= 0x030D0000 && PY_VERSION_HEX < 0x030E0000
#define PP_SHARE_WRITES_313_HEADERS 1
#endif

namespace pp::py {

#ifdef PP_SHARE_WRITES_313_HEADERS
namespace {

// The GC objects reached so far: one bit per 16 bytes of address space, in bitmaps of 4 MiB
// of it each, made as the walk meets them. Two objects' addresses differ by at least an
// object header (32 bytes), so the bit is theirs alone. Objects allocated one after the other
// (a table's rows) land on neighbouring bits, so the set stays in cache where a hash set's
// scattered slots missed it at every insertion (most of the walk's time, measured with perf).
class VisitedSet {
 public:
  // True when `p` was not in the set (and now is).
  bool insert(PyObject* p) {
    auto address = reinterpret_cast<std::uintptr_t>(p);
    std::uintptr_t chunk = address >> chunk_shift;
    if (chunk != last_chunk_ || last_ == nullptr) {
      std::unique_ptr<std::uint64_t[]>& bits = chunks_[chunk];
      if (!bits) bits = std::make_unique<std::uint64_t[]>(words_per_chunk);  // zeroed
      last_chunk_ = chunk;
      last_ = bits.get();
    }
    std::uintptr_t bit = (address & (chunk_bytes - 1)) >> 4;
    std::uint64_t& word = last_[bit >> 6];
    std::uint64_t mask = std::uint64_t{1} << (bit & 63);
    if (word & mask) return false;
    word |= mask;
    return true;
  }

 private:
  static constexpr unsigned chunk_shift = 22;
  static constexpr std::uintptr_t chunk_bytes = std::uintptr_t{1} << chunk_shift;
  static constexpr std::size_t words_per_chunk = chunk_bytes / 16 / 64;
  std::unordered_map<std::uintptr_t, std::unique_ptr<std::uint64_t[]>> chunks_;
  std::uintptr_t last_chunk_ = 0;
  std::uint64_t* last_ = nullptr;
};

struct Walk {
  ShareResult result;
  VisitedSet seen;
  std::vector<PyObject*> pending;  // reached GC objects whose referents are not seen yet
  // Objects to leave mortal (and a tuple's items): the caller's, see share.h.
  std::unordered_set<PyObject*> keep_mortal;
  std::span<PyTypeObject* const> keep_types;
  std::span<const Ref> roots;
  bool ran = false;
};

// Whether `op` may become immortal. Each exclusion keeps a promise the interpreter made:
bool may_share(PyObject* op, const Walk& walk) {
  if (_Py_IsImmortal(op)) return false;
  if (walk.keep_mortal.contains(op)) return false;
  // Subclasses too: an instance of one is released by the runtime as its base's are.
  for (PyTypeObject* t : walk.keep_types)
    if (PyObject_TypeCheck(op, t)) return false;
  PyTypeObject* type = Py_TYPE(op);
  // An immortal object is never deallocated, so its finalizer would never run: a file
  // would lose its buffered bytes, a socket would stay open past its last user. (A
  // subclass inherits the slot, so a subclass of such a type is kept too.)
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

// The world is stopped (see share_main_thread_data), so plain stores cannot race with a
// reference count update: every other thread is parked outside the interpreter. Tracked
// objects stay tracked; the collector untracks immortal ones on its next pass.
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

// Shares `r` and queues its referents. Referents are walked from objects kept mortal or
// immortal already too (a module, a function, a class): their dicts, defaults and closures
// hold the data workers read. Non-GC objects (str, int, float, bytes) reference nothing
// traversable and become immortal (or stay mortal) idempotently, so they need no set.
void reach(PyObject* r, Walk& walk) {
  ++walk.result.walked;
  if (!PyObject_IS_GC(r)) {
    share(r, walk);
    return;
  }
  if (!walk.seen.insert(r)) return;
  share(r, walk);
  if (Py_TYPE(r)->tp_traverse) walk.pending.push_back(r);
}

int visit_referent(PyObject* r, void* arg) {
  if (r != nullptr) reach(r, *static_cast<Walk*>(arg));
  return 0;
}

// PyUnstable_GC_VisitObjects is the public way to stop the world: it calls this for the
// first object of the heap, and the whole walk from the roots runs here, while every other
// thread is parked. Returning 0 ends the heap visit at once.
int walk_from_roots(PyObject*, void* arg) {
  auto* walk = static_cast<Walk*>(arg);
  walk->ran = true;
  for (const Ref& root : walk->roots) reach(root.get(), *walk);
  while (!walk->pending.empty()) {
    PyObject* next = walk->pending.back();
    walk->pending.pop_back();
    Py_TYPE(next)->tp_traverse(next, visit_referent, walk);
  }
  return 0;
}

void keep(PyObject* op, Walk& walk) {
  if (op == nullptr || !walk.keep_mortal.insert(op).second) return;
  if (PyTuple_CheckExact(op))
    for (Py_ssize_t i = 0; i < PyTuple_GET_SIZE(op); ++i) keep(PyTuple_GET_ITEM(op, i), walk);
}

// The values a frame's locals mapping holds. Function frames give a FrameLocalsProxy,
// which must not be walked itself (it references the frame, and frames must stay mortal):
// its values are copied out. Errors only lose roots, i.e. leave data mortal.
void add_locals(PyObject* locals, std::vector<Ref>& roots) {
  if (PyDict_Check(locals)) {
    roots.push_back(Ref::borrow(locals));
    return;
  }
  Ref values(PyMapping_Values(locals));
  if (!values) {
    PyErr_Clear();
    return;
  }
  for (Py_ssize_t i = 0; i < PyList_GET_SIZE(values.get()); ++i)
    roots.push_back(Ref::borrow(PyList_GET_ITEM(values.get(), i)));
}

// The modules and the calling thread's frames (attached; the world is still running).
void interpreter_roots(std::vector<Ref>& roots) {
  roots.push_back(Ref::borrow(PyImport_GetModuleDict()));
  Ref frame = Ref::borrow(reinterpret_cast<PyObject*>(PyEval_GetFrame()));
  while (frame) {
    auto* f = reinterpret_cast<PyFrameObject*>(frame.get());
    roots.emplace_back(PyFrame_GetGlobals(f));
    roots.emplace_back(PyFrame_GetBuiltins(f));
    if (Ref locals{PyFrame_GetLocals(f)})
      add_locals(locals.get(), roots);
    else
      PyErr_Clear();
    frame = Ref(reinterpret_cast<PyObject*>(PyFrame_GetBack(f)));
  }
}

// Whether the running interpreter's header reads as the one compiled for: True is a static
// immortal object of bool's type. Empty when it does.
std::string header_mismatch() {
  if (std::string why = share_refusal(PY_VERSION_HEX, Py_Version); !why.empty()) return why;
  if (!Py_IS_TYPE(Py_True, &PyBool_Type) || Py_True->ob_tid != _Py_UNOWNED_TID ||
      Py_True->ob_ref_local != _Py_IMMORTAL_REFCNT_LOCAL)
    return fmt::format(
        "the running interpreter's object header is not the one this pyparallel was built "
        "for (CPython {}); run with --share-main-data off, or rebuild pyparallel against it",
        python_version_text(PY_VERSION_HEX));
  return {};
}

}  // namespace

ShareResult share_main_thread_data(std::span<PyObject* const> roots,
                                   std::span<PyObject* const> keep_mortal,
                                   std::span<PyTypeObject* const> keep_types) {
  if (std::string why = header_mismatch(); !why.empty()) {
    pp::log_warning("main-thread data is not shared: {}", why);
    ShareResult refused;
    refused.refused = why;
    return refused;
  }
  std::vector<Ref> all_roots;
  interpreter_roots(all_roots);
  for (PyObject* r : roots)
    if (r) all_roots.push_back(Ref::borrow(r));
  Walk walk;
  walk.keep_types = keep_types;
  walk.roots = all_roots;
  for (PyObject* op : keep_mortal) keep(op, walk);
  // A fresh tracked object, so the heap visit calls walk_from_roots even when every other
  // object is frozen (the visit skips frozen ones).
  Ref first(PyList_New(0));
  if (!first) {
    PyErr_Clear();  // out of memory: nothing is shared, which is safe
    return {};
  }
  PyUnstable_GC_VisitObjects(walk_from_roots, &walk);
  if (!walk.ran) {
    walk.result.refused = "the interpreter's heap visit found no object to start from";
    pp::log_warning("main-thread data is not shared: {}", walk.result.refused);
  }
  return walk.result;
}

#elif defined(Py_GIL_DISABLED)

// A free-threaded CPython other than 3.13: its header is not the one share.cpp knows.
ShareResult share_main_thread_data(std::span<PyObject* const>, std::span<PyObject* const>,
                                   std::span<PyTypeObject* const>) {
  ShareResult result;
  result.refused = share_refusal(PY_VERSION_HEX, Py_Version);
  pp::log_warning("main-thread data is not shared: {}", result.refused);
  return result;
}

#else

ShareResult share_main_thread_data(std::span<PyObject* const>, std::span<PyObject* const>,
                                   std::span<PyTypeObject* const>) {
  return {};
}

#endif

}  // namespace pp::py
