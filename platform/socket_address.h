// platform/socket_address.h -- reading an IPv4/IPv6 sockaddr_storage, shared by the POSIX
// and Winsock net.cpp: both OSes lay the structures out the same way and both have
// inet_ntop, so the code that names a socket's address is written once.
#pragma once

#ifdef _WIN32
#include "platform/win32/winsock.h"
#else
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#endif

#include <cstdint>
#include <string>

namespace pp::platform {

/// The port of an IPv4 or IPv6 address; 0 for any other family. Use for a socket's own port
/// (`local_port`), where the numeric host is not needed.
inline std::uint16_t address_port(const sockaddr_storage& ss) {
  if (ss.ss_family == AF_INET) return ntohs(reinterpret_cast<const sockaddr_in*>(&ss)->sin_port);
  if (ss.ss_family == AF_INET6)
    return ntohs(reinterpret_cast<const sockaddr_in6*>(&ss)->sin6_port);
  return 0;
}

/// (numeric host, port) of an IPv4 or IPv6 address, as `peer_address` and `local_address`
/// report it. False for any other family (a Unix socket has no host to name).
inline bool format_address(const sockaddr_storage& ss, std::string& host, std::uint16_t& port) {
  char buf[INET6_ADDRSTRLEN] = {};
  if (ss.ss_family == AF_INET) {
    ::inet_ntop(AF_INET, &reinterpret_cast<const sockaddr_in*>(&ss)->sin_addr, buf, sizeof buf);
  } else if (ss.ss_family == AF_INET6) {
    ::inet_ntop(AF_INET6, &reinterpret_cast<const sockaddr_in6*>(&ss)->sin6_addr, buf,
                sizeof buf);
  } else {
    return false;
  }
  host = buf;
  port = address_port(ss);
  return true;
}

}  // namespace pp::platform
