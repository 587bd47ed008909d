// interpreter/parallel/sendfile_prep.cpp -- transport.sendfile and ranged_sendfile
// made ready on the calling thread: the file opened, the range checked, before/after
// as bytes. A file of its own: it raises the Python errors, where the Transport and
// the Session only queue what it prepared.
#include <cerrno>
#include <cstdint>
#include <string>

#include "core/net.h"
#include "interpreter/parallel/runtime.h"
#include "interpreter/parallel/session_internal.h"

namespace pp::py {

bool prepare_send(PyObject* before, const char* path, PyObject* after, long long offset,
                  long long nbytes, PreparedSend& out) {
  std::uint64_t size = 0;
  std::string error;
  int code = 0;
  out.file = open_file_for_send(path, size, error, &code);
  if (out.file == invalid_handle) {
    errno = -code;
    PyErr_SetFromErrnoWithFilename(PyExc_OSError, path);
    return false;
  }
  if (offset < 0 || nbytes < -1 ||
      (nbytes >= 0 && static_cast<std::uint64_t>(offset) + nbytes > size) ||
      static_cast<std::uint64_t>(offset) > size) {
    PyErr_Format(PyExc_ValueError,
                 "range offset=%lld nbytes=%lld is past the end of '%s' (%llu bytes)", offset,
                 nbytes, path, static_cast<unsigned long long>(size));
    return false;
  }
  out.offset = static_cast<std::uint64_t>(offset);
  out.length = nbytes < 0 ? size - offset : static_cast<std::uint64_t>(nbytes);
  return (before == Py_None || append_sendable(before, out.before)) &&
         (after == Py_None || append_sendable(after, out.after));
}

}  // namespace pp::py
