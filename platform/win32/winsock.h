// platform/win32/winsock.h -- the Windows headers in the order Winsock needs them, and the
// process-wide Winsock set-up every win32 file relies on.
//
// <winsock2.h> must come before <windows.h> (which would otherwise pull in the old
// <winsock.h>), and WIN32_LEAN_AND_MEAN keeps <windows.h> from doing so at all.
#pragma once

#ifndef WIN32_LEAN_AND_MEAN
#define WIN32_LEAN_AND_MEAN
#endif
#ifndef NOMINMAX
#define NOMINMAX
#endif
// clang-format off
#include <winsock2.h>
#include <ws2tcpip.h>
#include <mswsock.h>
#include <windows.h>
// clang-format on

#include <cstdint>
#include <string>

#include "core/loop.h"

namespace pp::platform::win32 {

/// Starts Winsock once per process (WSAStartup 2.2). Call before any socket call; every
/// function in platform/win32 that makes a socket does. Returns false when Winsock could not
/// start (then `WSAGetLastError` says why).
bool ensure_winsock();

/// The Microsoft extension functions, looked up once (SIO_GET_EXTENSION_FUNCTION_POINTER):
/// mingw and the SDK declare them, but the provider's own entry points are what must be
/// called. Null members mean the provider lacks that extension.
struct Extensions {
  LPFN_ACCEPTEX accept_ex = nullptr;
  LPFN_GETACCEPTEXSOCKADDRS get_accept_ex_sockaddrs = nullptr;
  LPFN_CONNECTEX connect_ex = nullptr;
  LPFN_TRANSMITFILE transmit_file = nullptr;
};

/// The extension functions of the TCP provider (looked up on first use, thread-safe).
const Extensions& extensions();

/// An overlapped, non-inheritable TCP socket of `family` (AF_INET or AF_INET6): the only
/// kind the IOCP backend accepts, since a socket made without WSA_FLAG_OVERLAPPED cannot
/// take part in completion-port I/O. INVALID_SOCKET with WSAGetLastError set on failure.
SOCKET overlapped_socket(int family);

/// SOCKET <-> pp::Handle. A SOCKET is a UINT_PTR whose value fits a Handle.
inline Handle to_handle(SOCKET s) {
  return s == INVALID_SOCKET ? invalid_handle : static_cast<Handle>(s);
}
inline SOCKET to_socket(Handle h) {
  return h == invalid_handle ? INVALID_SOCKET : static_cast<SOCKET>(h);
}

/// The text of Windows error `code` (FormatMessage), for logs and error strings.
std::string windows_error_text(std::uint32_t code);

}  // namespace pp::platform::win32
