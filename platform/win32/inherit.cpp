// platform/win32/inherit.cpp -- core/inherit.h on Windows, which has no systemd socket
// activation: nothing is inherited, so every server binds its own listeners. Duplicating a
// listener (for core/listeners.cpp) is WSADuplicateSocket into this same process.
#include <fmt/format.h>

#include "core/inherit.h"
#include "platform/win32/winsock.h"

namespace pp {

int take_systemd_listeners(std::string& note) {
  note.clear();
  return 0;
}

std::vector<Handle> claim_inherited_listeners(std::string_view, std::uint16_t) {
  return {};
}

std::vector<std::string> unclaimed_inherited_listeners() {
  return {};
}

Handle duplicate_handle(Handle h) {
  WSAPROTOCOL_INFOW info{};
  SOCKET s = platform::win32::to_socket(h);
  if (::WSADuplicateSocketW(s, ::GetCurrentProcessId(), &info) != 0) return invalid_handle;
  SOCKET dup = ::WSASocketW(FROM_PROTOCOL_INFO, FROM_PROTOCOL_INFO, FROM_PROTOCOL_INFO, &info, 0,
                            WSA_FLAG_OVERLAPPED | WSA_FLAG_NO_HANDLE_INHERIT);
  return platform::win32::to_handle(dup);
}

std::string local_address_text(Handle sock) {
  sockaddr_storage ss{};
  int len = sizeof ss;
  if (::getsockname(platform::win32::to_socket(sock), reinterpret_cast<sockaddr*>(&ss), &len) != 0)
    return "?";
  char host[INET6_ADDRSTRLEN] = {};
  if (ss.ss_family == AF_INET) {
    auto* a = reinterpret_cast<sockaddr_in*>(&ss);
    ::inet_ntop(AF_INET, &a->sin_addr, host, sizeof host);
    return fmt::format("{}:{}", host, ntohs(a->sin_port));
  }
  if (ss.ss_family == AF_INET6) {
    auto* a = reinterpret_cast<sockaddr_in6*>(&ss);
    ::inet_ntop(AF_INET6, &a->sin6_addr, host, sizeof host);
    return fmt::format("[{}]:{}", host, ntohs(a->sin6_port));
  }
  return "?";
}

}  // namespace pp
