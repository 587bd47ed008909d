// platform/win32/error_codes.h -- Windows errors translated into the negated <cerrno> values
// that `Completion::result` carries (core/loop.h), so core/ and everything above it handle
// one set of errors on every OS.
//
// POSIX backends need no table: their <cerrno> values are the OS's own. IOCP completions
// report Win32 codes (ERROR_*) from GetQueuedCompletionStatusEx/GetOverlappedResult, and
// Winsock calls report WSAE* codes; both land here. The numbers are written out rather than
// taken from <winsock2.h> so that this header compiles, and its test runs, on Linux; on
// Windows the static_asserts at the end check them against the SDK's.
#pragma once

#include <cerrno>
#include <cstdint>

namespace pp::platform::win32 {

/// One Windows code and the <cerrno> value it means to the engine's users.
struct ErrorMapping {
  std::uint32_t windows_code;
  int errno_value;
};

/// Every code the IOCP backend can meet on sockets and files. Why the less obvious rows:
/// ERROR_NETNAME_DELETED is how IOCP reports a peer's reset on a pending WSARecv/AcceptEx;
/// ERROR_OPERATION_ABORTED is a CancelIoEx'd or closed-under operation (ECANCELED is what
/// core/ expects from a cancel); WSAESHUTDOWN is a send after shutdown, which POSIX calls
/// EPIPE; ERROR_NOT_FOUND is CancelIoEx finding nothing to cancel (cancel's -ENOENT).
inline constexpr ErrorMapping kWindowsErrors[] = {
    // Win32 (ERROR_*), as completions report them.
    {2, ENOENT},           // ERROR_FILE_NOT_FOUND
    {3, ENOENT},           // ERROR_PATH_NOT_FOUND
    {4, EMFILE},           // ERROR_TOO_MANY_OPEN_FILES
    {5, EACCES},           // ERROR_ACCESS_DENIED
    {6, EBADF},            // ERROR_INVALID_HANDLE
    {8, ENOMEM},           // ERROR_NOT_ENOUGH_MEMORY
    {14, ENOMEM},          // ERROR_OUTOFMEMORY
    {64, ECONNRESET},      // ERROR_NETNAME_DELETED
    {87, EINVAL},          // ERROR_INVALID_PARAMETER
    {109, EPIPE},          // ERROR_BROKEN_PIPE
    {121, ETIMEDOUT},      // ERROR_SEM_TIMEOUT
    {995, ECANCELED},      // ERROR_OPERATION_ABORTED
    {1168, ENOENT},        // ERROR_NOT_FOUND
    {1225, ECONNREFUSED},  // ERROR_CONNECTION_REFUSED
    {1234, ECONNREFUSED},  // ERROR_PORT_UNREACHABLE
    {1236, ECONNABORTED},  // ERROR_CONNECTION_ABORTED
    // Winsock (WSAE*), as WSAGetLastError reports them.
    {10004, EINTR},            // WSAEINTR
    {10009, EBADF},            // WSAEBADF
    {10013, EACCES},           // WSAEACCES
    {10014, EFAULT},           // WSAEFAULT
    {10022, EINVAL},           // WSAEINVAL
    {10024, EMFILE},           // WSAEMFILE
    {10035, EAGAIN},           // WSAEWOULDBLOCK
    {10036, EINPROGRESS},      // WSAEINPROGRESS
    {10037, EALREADY},         // WSAEALREADY
    {10038, ENOTSOCK},         // WSAENOTSOCK
    {10039, EDESTADDRREQ},     // WSAEDESTADDRREQ
    {10040, EMSGSIZE},         // WSAEMSGSIZE
    {10041, EPROTOTYPE},       // WSAEPROTOTYPE
    {10042, ENOPROTOOPT},      // WSAENOPROTOOPT
    {10043, EPROTONOSUPPORT},  // WSAEPROTONOSUPPORT
    {10045, EOPNOTSUPP},       // WSAEOPNOTSUPP
    {10047, EAFNOSUPPORT},     // WSAEAFNOSUPPORT
    {10048, EADDRINUSE},       // WSAEADDRINUSE
    {10049, EADDRNOTAVAIL},    // WSAEADDRNOTAVAIL
    {10050, ENETDOWN},         // WSAENETDOWN
    {10051, ENETUNREACH},      // WSAENETUNREACH
    {10052, ENETRESET},        // WSAENETRESET
    {10053, ECONNABORTED},     // WSAECONNABORTED
    {10054, ECONNRESET},       // WSAECONNRESET
    {10055, ENOBUFS},          // WSAENOBUFS
    {10056, EISCONN},          // WSAEISCONN
    {10057, ENOTCONN},         // WSAENOTCONN
    {10058, EPIPE},            // WSAESHUTDOWN
    {10060, ETIMEDOUT},        // WSAETIMEDOUT
    {10061, ECONNREFUSED},     // WSAECONNREFUSED
    {10065, EHOSTUNREACH},     // WSAEHOSTUNREACH
};

/// The Completion::result for Windows error `code`: a negated <cerrno> value. Codes
/// without a row become -EIO (the engine's "something failed that has no better name"),
/// so no Windows number ever leaks to callers that compare against <cerrno>.
constexpr std::int64_t result_from_windows_error(std::uint32_t code) {
  for (const ErrorMapping& m : kWindowsErrors)
    if (m.windows_code == code) return -static_cast<std::int64_t>(m.errno_value);
  return -static_cast<std::int64_t>(EIO);
}

}  // namespace pp::platform::win32

#if defined(_WIN32)
#include <winsock2.h>
#include <windows.h>
static_assert(ERROR_NETNAME_DELETED == 64 && ERROR_OPERATION_ABORTED == 995 &&
              ERROR_NOT_FOUND == 1168 && ERROR_CONNECTION_REFUSED == 1225 &&
              ERROR_CONNECTION_ABORTED == 1236 && ERROR_PORT_UNREACHABLE == 1234);
static_assert(WSAEWOULDBLOCK == 10035 && WSAECONNRESET == 10054 && WSAECONNREFUSED == 10061 &&
              WSAESHUTDOWN == 10058 && WSAEHOSTUNREACH == 10065 && WSAENOTCONN == 10057);
#endif
