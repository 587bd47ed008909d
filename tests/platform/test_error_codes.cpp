// tests/platform/test_error_codes.cpp -- the Windows error table (platform/win32/error_codes.h)
// checked on every OS: the IOCP backend reports through it, so its rows are what Windows
// callers will see as Completion::result.
#include <doctest/doctest.h>

#include <set>

#include "platform/win32/error_codes.h"

using pp::platform::win32::kWindowsErrors;
using pp::platform::win32::result_from_windows_error;

TEST_CASE("windows errors: the ones core/ and the protocols act on map to their errno") {
  CHECK(result_from_windows_error(10054) == -ECONNRESET);   // WSAECONNRESET
  CHECK(result_from_windows_error(64) == -ECONNRESET);      // ERROR_NETNAME_DELETED
  CHECK(result_from_windows_error(995) == -ECANCELED);      // ERROR_OPERATION_ABORTED
  CHECK(result_from_windows_error(1168) == -ENOENT);        // ERROR_NOT_FOUND (cancel)
  CHECK(result_from_windows_error(10035) == -EAGAIN);       // WSAEWOULDBLOCK
  CHECK(result_from_windows_error(10061) == -ECONNREFUSED); // WSAECONNREFUSED
  CHECK(result_from_windows_error(1225) == -ECONNREFUSED);  // ERROR_CONNECTION_REFUSED
  CHECK(result_from_windows_error(10058) == -EPIPE);        // WSAESHUTDOWN
  CHECK(result_from_windows_error(10024) == -EMFILE);       // WSAEMFILE
  CHECK(result_from_windows_error(10048) == -EADDRINUSE);   // WSAEADDRINUSE
}

TEST_CASE("windows errors: unknown codes become -EIO, never a raw Windows number") {
  for (std::uint32_t code : {0u, 1u, 997u /* ERROR_IO_PENDING */, 10999u, 0xffffffffu}) {
    INFO("code " << code);
    CHECK(result_from_windows_error(code) == -EIO);
  }
}

TEST_CASE("windows errors: every row is unique, negative, and a real errno") {
  std::set<std::uint32_t> seen;
  for (const auto& m : kWindowsErrors) {
    INFO("code " << m.windows_code);
    CHECK(seen.insert(m.windows_code).second);
    CHECK(m.errno_value > 0);
    CHECK(result_from_windows_error(m.windows_code) == -m.errno_value);
  }
  CHECK(seen.size() > 40);
}
