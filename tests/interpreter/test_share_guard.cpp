// tests/interpreter/test_share_guard.cpp -- which CPython share.cpp may write the object
// headers of (interpreter/parallel/share_guard.h): any 3.13.x, built and running on the
// same minor version; anything else is refused with a message that says what to do.
#include <doctest/doctest.h>

#include "interpreter/parallel/share_guard.h"

using pp::py::python_version_text;
using pp::py::share_refusal;

namespace {
constexpr unsigned long v3_13_0 = 0x030D00F0, v3_13_5 = 0x030D05F0, v3_13_15 = 0x030D0FF0;
constexpr unsigned long v3_14_0 = 0x030E00F0, v3_12_7 = 0x030C07F0, v3_14_0a1 = 0x030E00A1;
}  // namespace

TEST_CASE("every 3.13.x shares, whichever 3.13.x the module was built for") {
  for (unsigned long built : {v3_13_0, v3_13_5, v3_13_15})
    for (unsigned long running : {v3_13_0, v3_13_5, v3_13_15})
      CHECK(share_refusal(built, running).empty());
}

TEST_CASE("a module built for 3.13 refuses on another minor version and says what to do") {
  for (unsigned long running : {v3_14_0, v3_12_7, v3_14_0a1}) {
    std::string why = share_refusal(v3_13_5, running);
    CAPTURE(why);
    CHECK(why.find("built for CPython 3.13.5 but runs on " + python_version_text(running)) !=
          std::string::npos);
    CHECK(why.find("--share-main-data off") != std::string::npos);
    CHECK(why.find("the server runs") != std::string::npos);
  }
}

TEST_CASE("a module built for another CPython refuses even on that same CPython") {
  std::string why = share_refusal(v3_14_0, v3_14_0);
  CHECK(why.find("built for CPython 3.14.0") != std::string::npos);
  CHECK(why.find("free-threaded CPython 3.13 only") != std::string::npos);
  CHECK(why.find("--share-main-data off") != std::string::npos);
}

TEST_CASE("versions read as Python prints them") {
  CHECK(python_version_text(v3_13_15) == "3.13.15");
  CHECK(python_version_text(v3_14_0a1) == "3.14.0a1");
  CHECK(python_version_text(0x030D00C2) == "3.13.0rc2");
}
