// interpreter/parallel/py_util.h -- small C-API helpers shared by the parallel
// module's files: an owning reference, exception capture/report across Python
// versions (3.11 with the GIL, 3.13 free-threaded), and "what to send" conversion.
#pragma once

#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <string>
#include <string_view>
#include <utility>

namespace pp::py {

/// An owned (strong) reference; releases it on destruction. The thread must be
/// attached to the interpreter whenever a Ref with a value is destroyed.
class Ref {
 public:
  Ref() = default;
  /// Takes ownership of a new reference (may be null).
  explicit Ref(PyObject* owned) : p_(owned) {}
  Ref(const Ref& other) : p_(Py_XNewRef(other.p_)) {}
  Ref(Ref&& other) noexcept : p_(std::exchange(other.p_, nullptr)) {}
  Ref& operator=(Ref other) noexcept {
    std::swap(p_, other.p_);
    return *this;
  }
  ~Ref() { Py_XDECREF(p_); }
  /// A new strong reference to a borrowed one.
  static Ref borrow(PyObject* borrowed) { return Ref(Py_XNewRef(borrowed)); }
  PyObject* get() const { return p_; }
  /// Gives up ownership (e.g. to return it to Python).
  PyObject* release() { return std::exchange(p_, nullptr); }
  explicit operator bool() const { return p_ != nullptr; }

 private:
  PyObject* p_ = nullptr;
};

/// Takes the raised exception (normalized, traceback attached) off the thread,
/// leaving no error set. Null if none is set.
inline Ref fetch_exception() {
#if PY_VERSION_HEX >= 0x030C0000
  return Ref(PyErr_GetRaisedException());
#else
  PyObject *type = nullptr, *value = nullptr, *tb = nullptr;
  PyErr_Fetch(&type, &value, &tb);
  if (!type) return Ref();
  PyErr_NormalizeException(&type, &value, &tb);
  if (tb && value) PyException_SetTraceback(value, tb);
  Py_XDECREF(type);
  Py_XDECREF(tb);
  return Ref(value);
#endif
}

/// Raises `exc` again on this thread (takes a new reference of its own).
inline void restore_exception(const Ref& exc) {
#if PY_VERSION_HEX >= 0x030C0000
  PyErr_SetRaisedException(Py_NewRef(exc.get()));
#else
  PyObject* value = exc.get();
  PyErr_Restore(Py_NewRef(reinterpret_cast<PyObject*>(Py_TYPE(value))), Py_NewRef(value),
                PyException_GetTraceback(value));
#endif
}

/// Writes "pyparallel: <context>" and the exception's traceback to stderr. Used
/// for every exception no Python code handled: the server logs it and goes on.
void log_exception(std::string_view context, const Ref& exc);

/// Appends what a callback returned to `out` as the bytes to send: bytes,
/// bytearray, memoryview (any buffer) as they are, str as UTF-8. Returns false with
/// a TypeError set for anything else (None is the caller's business).
bool append_sendable(PyObject* value, std::string& out);

/// A Python str from a view (UTF-8; invalid bytes become surrogate escapes).
inline PyObject* str_from(std::string_view s) {
  return PyUnicode_DecodeUTF8(s.data(), static_cast<Py_ssize_t>(s.size()), "surrogateescape");
}

/// A bytes object from a view.
inline PyObject* bytes_from(std::string_view s) {
  return PyBytes_FromStringAndSize(s.data(), static_cast<Py_ssize_t>(s.size()));
}

}  // namespace pp::py
