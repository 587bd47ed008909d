// platform/win32/winsock.cpp -- Winsock start-up, the extension functions, socket creation.
#include "platform/win32/winsock.h"

#include <mutex>

#include <fmt/format.h>

namespace pp::platform::win32 {

bool ensure_winsock() {
  // Never WSACleanup: sockets live until the process ends, and Windows releases Winsock
  // with the process.
  static const bool started = [] {
    WSADATA data;
    return WSAStartup(MAKEWORD(2, 2), &data) == 0;
  }();
  return started;
}

namespace {

template <class Fn>
Fn lookup(SOCKET s, GUID guid) {
  Fn fn = nullptr;
  DWORD bytes = 0;
  if (WSAIoctl(s, SIO_GET_EXTENSION_FUNCTION_POINTER, &guid, sizeof guid, &fn, sizeof fn, &bytes,
               nullptr, nullptr) != 0)
    return nullptr;
  return fn;
}

}  // namespace

const Extensions& extensions() {
  static const Extensions ext = [] {
    Extensions e;
    if (!ensure_winsock()) return e;
    SOCKET s = ::socket(AF_INET, SOCK_STREAM, IPPROTO_TCP);
    if (s == INVALID_SOCKET) return e;
    GUID accept_guid = WSAID_ACCEPTEX;
    GUID addrs_guid = WSAID_GETACCEPTEXSOCKADDRS;
    GUID connect_guid = WSAID_CONNECTEX;
    GUID transmit_guid = WSAID_TRANSMITFILE;
    e.accept_ex = lookup<LPFN_ACCEPTEX>(s, accept_guid);
    e.get_accept_ex_sockaddrs = lookup<LPFN_GETACCEPTEXSOCKADDRS>(s, addrs_guid);
    e.connect_ex = lookup<LPFN_CONNECTEX>(s, connect_guid);
    e.transmit_file = lookup<LPFN_TRANSMITFILE>(s, transmit_guid);
    ::closesocket(s);
    return e;
  }();
  return ext;
}

SOCKET overlapped_socket(int family) {
  if (!ensure_winsock()) return INVALID_SOCKET;
  return ::WSASocketW(family, SOCK_STREAM, IPPROTO_TCP, nullptr, 0,
                      WSA_FLAG_OVERLAPPED | WSA_FLAG_NO_HANDLE_INHERIT);
}

std::string windows_error_text(std::uint32_t code) {
  char buf[512] = {};
  DWORD n = ::FormatMessageA(FORMAT_MESSAGE_FROM_SYSTEM | FORMAT_MESSAGE_IGNORE_INSERTS, nullptr,
                             code, 0, buf, sizeof buf, nullptr);
  while (n > 0 && (buf[n - 1] == '\n' || buf[n - 1] == '\r' || buf[n - 1] == ' ')) --n;
  if (n == 0) return fmt::format("Windows error {}", code);
  return fmt::format("{} (Windows error {})", std::string(buf, n), code);
}

}  // namespace pp::platform::win32
