// interpreter/parallel/share_guard.h -- whether share.cpp may write the object headers of
// the interpreter it runs on.
//
// Making an object immortal (share.cpp) writes three fields of the free-threaded object
// header that CPython keeps private: ob_tid, ob_ref_local and ob_ref_shared, and their
// meaning (which value reads as immortal, the flags in ob_ref_shared). Those are CPython
// 3.13's: 3.14 reworked the header (ob_flags, other immortal encodings). Every 3.13.x keeps
// the layout (it is the 3.13 ABI: extension modules built for 3.13.0 load on 3.13.15), so
// the guard compares major and minor only. The module can run on an interpreter other than
// the one it was compiled against (the extension module is loaded by whichever python3.13t
// imports it), hence a run-time check besides the compile-time one. No Python here: the
// decision is tested on its own (tests/interpreter/test_share_guard.cpp).
#pragma once

#include <string>

namespace pp::py {

/// Empty when the header written by share.cpp is that of the interpreter running it;
/// otherwise why main-thread data is not shared, and what to do about it. `built_for`:
/// PY_VERSION_HEX of the headers the module was compiled with; `running`: the running
/// interpreter's Py_Version (the same encoding).
std::string share_refusal(unsigned long built_for, unsigned long running);

/// "3.13.5", "3.14.0a1": a PY_VERSION_HEX for messages.
std::string python_version_text(unsigned long hex);

}  // namespace pp::py
