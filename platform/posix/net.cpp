// platform/posix/net.cpp -- sockets and files for the engine's users, on POSIX calls
// (Linux, the BSDs, macOS).
#include "core/net.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include <fmt/format.h>

#include "platform/posix/socket_flags.h"
#include "platform/socket_address.h"

namespace pp {
namespace {

#if defined(SO_REUSEPORT_LB)
// FreeBSD: plain SO_REUSEPORT lets sockets share a port but sends every connection to one
// of them; the _LB form spreads connections like Linux's SO_REUSEPORT.
constexpr int kReusePort = SO_REUSEPORT_LB;
#else
constexpr int kReusePort = SO_REUSEPORT;
#endif

/// A non-blocking, close-on-exec TCP socket, or -1 with errno set.
int stream_socket(int family) {
#if defined(SOCK_NONBLOCK)
  return ::socket(family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
#else
  // macOS: no atomic flags on socket(2).
  int fd = ::socket(family, SOCK_STREAM, 0);
  if (fd >= 0) platform::set_engine_socket_flags(fd);
  return fd;
#endif
}

}  // namespace

bool resolve_endpoint(std::string_view host, std::uint16_t port, Endpoint& out,
                      std::string& error) {
  std::string name(host.empty() ? "0.0.0.0" : host);
  // Bracketed IPv6 literals ("[::1]") as URLs write them.
  if (name.size() > 2 && name.front() == '[' && name.back() == ']')
    name = name.substr(1, name.size() - 2);
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_NUMERICSERV | AI_ADDRCONFIG;
  addrinfo* found = nullptr;
  auto service = std::to_string(port);
  int rc = getaddrinfo(name.c_str(), service.c_str(), &hints, &found);
  if (rc != 0 || found == nullptr) {
    // AI_ADDRCONFIG hides loopback-only families on hosts without other interfaces.
    hints.ai_flags = AI_NUMERICSERV;
    rc = getaddrinfo(name.c_str(), service.c_str(), &hints, &found);
  }
  if (rc != 0 || found == nullptr) {
    error = fmt::format("cannot resolve '{}': {}", name, gai_strerror(rc));
    return false;
  }
  std::memcpy(out.storage, found->ai_addr, found->ai_addrlen);
  out.size = found->ai_addrlen;
  freeaddrinfo(found);
  return true;
}

Handle listen_tcp(std::string_view host, std::uint16_t port, bool reuse_port, int backlog,
                  std::string& error) {
  Endpoint ep;
  if (!resolve_endpoint(host, port, ep, error)) return invalid_handle;
  auto* sa = reinterpret_cast<sockaddr*>(ep.storage);
  int fd = stream_socket(sa->sa_family);
  if (fd < 0) {
    error = fmt::format("socket: {}", std::strerror(errno));
    return invalid_handle;
  }
  int one = 1;
  ::setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  if (reuse_port && ::setsockopt(fd, SOL_SOCKET, kReusePort, &one, sizeof one) != 0) {
    error = fmt::format("SO_REUSEPORT: {}", std::strerror(errno));
    ::close(fd);
    return invalid_handle;
  }
  if (::bind(fd, sa, ep.size) != 0) {
    error = fmt::format("cannot listen on {}:{}: {}", host, port, std::strerror(errno));
    ::close(fd);
    return invalid_handle;
  }
  if (::listen(fd, backlog) != 0) {
    error = fmt::format("listen on {}:{}: {}", host, port, std::strerror(errno));
    ::close(fd);
    return invalid_handle;
  }
  return fd;
}

Handle open_stream_socket(const Endpoint& to, std::string& error) {
  auto* sa = reinterpret_cast<const sockaddr*>(to.storage);
  int fd = stream_socket(sa->sa_family);
  if (fd < 0) error = fmt::format("socket: {}", std::strerror(errno));
  return fd < 0 ? invalid_handle : fd;
}

std::uint16_t local_port(Handle sock) {
  sockaddr_storage ss{};
  socklen_t len = sizeof ss;
  if (::getsockname(static_cast<int>(sock), reinterpret_cast<sockaddr*>(&ss), &len) != 0)
    return 0;
  return platform::address_port(ss);
}

bool peer_address(Handle sock, std::string& host, std::uint16_t& port) {
  sockaddr_storage ss{};
  socklen_t len = sizeof ss;
  if (::getpeername(static_cast<int>(sock), reinterpret_cast<sockaddr*>(&ss), &len) != 0)
    return false;
  return platform::format_address(ss, host, port);
}

bool local_address(Handle sock, std::string& host, std::uint16_t& port) {
  sockaddr_storage ss{};
  socklen_t len = sizeof ss;
  if (::getsockname(static_cast<int>(sock), reinterpret_cast<sockaddr*>(&ss), &len) != 0)
    return false;
  return platform::format_address(ss, host, port);
}

void set_nodelay(Handle sock) {
  int one = 1;
  ::setsockopt(static_cast<int>(sock), IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
}

void shutdown_send(Handle sock) {
  if (sock >= 0) ::shutdown(static_cast<int>(sock), SHUT_WR);
}

void close_socket(Handle sock) {
  if (sock >= 0) ::close(static_cast<int>(sock));
}

void close_file(Handle file) {
  if (file >= 0) ::close(static_cast<int>(file));
}

Handle open_file_for_send(const std::string& path, std::uint64_t& size, std::string& error,
                          int* error_code) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    if (error_code) *error_code = -errno;
    error = fmt::format("cannot open '{}': {}", path, std::strerror(errno));
    return invalid_handle;
  }
  struct stat st {};
  if (::fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
    if (error_code) *error_code = -EISDIR;
    error = fmt::format("'{}' is not a regular file", path);
    ::close(fd);
    return invalid_handle;
  }
  size = static_cast<std::uint64_t>(st.st_size);
  return fd;
}

std::string error_text(std::int64_t negated_errno) {
  int e = static_cast<int>(negated_errno < 0 ? -negated_errno : negated_errno);
  return fmt::format("{} ({})", std::strerror(e), e);
}

}  // namespace pp
