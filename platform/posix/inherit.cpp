// platform/posix/inherit.cpp -- systemd socket activation without libsystemd: the
// LISTEN_FDS protocol of sd_listen_fds(3), and matching inherited sockets to servers.
#include "core/inherit.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <charconv>
#include <cstdlib>
#include <cstring>
#include <mutex>

#include <fmt/format.h>

#include "core/net.h"

namespace pp {
namespace {

// sd_listen_fds(3): passed descriptors start here.
constexpr int kListenFdsStart = 3;

std::mutex inherited_mutex;
std::vector<int> inherited;  // guarded by inherited_mutex
bool taken = false;          // guarded by inherited_mutex

bool parse_int(const char* text, long& out) {
  if (!text || !*text) return false;
  const char* end = text + std::strlen(text);
  auto [p, ec] = std::from_chars(text, end, out);
  return ec == std::errc{} && p == end;
}

bool is_wildcard(const sockaddr_storage& ss) {
  if (ss.ss_family == AF_INET)
    return reinterpret_cast<const sockaddr_in&>(ss).sin_addr.s_addr == htonl(INADDR_ANY);
  if (ss.ss_family == AF_INET6) {
    const auto& a = reinterpret_cast<const sockaddr_in6&>(ss).sin6_addr;
    return std::memcmp(&a, &in6addr_any, sizeof a) == 0;
  }
  return false;
}

std::uint16_t port_of(const sockaddr_storage& ss) {
  if (ss.ss_family == AF_INET) return ntohs(reinterpret_cast<const sockaddr_in&>(ss).sin_port);
  if (ss.ss_family == AF_INET6) return ntohs(reinterpret_cast<const sockaddr_in6&>(ss).sin6_port);
  return 0;
}

// Same family, address and port; or both wildcards on the same port.
bool same_address(const sockaddr_storage& a, const sockaddr_storage& b) {
  if (port_of(a) != port_of(b) || port_of(a) == 0) return false;
  if (is_wildcard(a) && is_wildcard(b)) return true;
  if (a.ss_family != b.ss_family) return false;
  if (a.ss_family == AF_INET)
    return reinterpret_cast<const sockaddr_in&>(a).sin_addr.s_addr ==
           reinterpret_cast<const sockaddr_in&>(b).sin_addr.s_addr;
  if (a.ss_family == AF_INET6)
    return std::memcmp(&reinterpret_cast<const sockaddr_in6&>(a).sin6_addr,
                       &reinterpret_cast<const sockaddr_in6&>(b).sin6_addr, sizeof(in6_addr)) == 0;
  return false;
}

bool local_sockaddr(int fd, sockaddr_storage& ss) {
  socklen_t len = sizeof ss;
  return ::getsockname(fd, reinterpret_cast<sockaddr*>(&ss), &len) == 0;
}

}  // namespace

int take_systemd_listeners(std::string& note) {
  std::lock_guard lock(inherited_mutex);
  if (taken) return 0;
  taken = true;
  const char* pid_text = std::getenv("LISTEN_PID");
  const char* fds_text = std::getenv("LISTEN_FDS");
  long pid = 0, count = 0;
  bool ours = parse_int(pid_text, pid) && pid == static_cast<long>(::getpid());
  bool counted = parse_int(fds_text, count) && count > 0 && count < 4096;
  if (pid_text || fds_text) {
    // Unset whether or not they were ours: a child must never take them for its own
    // (sd_listen_fds(unset_environment=1)).
    ::unsetenv("LISTEN_PID");
    ::unsetenv("LISTEN_FDS");
    ::unsetenv("LISTEN_FDNAMES");
  }
  if (!ours || !counted) {
    if (pid_text && !ours)
      note = fmt::format("LISTEN_PID={} is not this process ({}): inherited sockets ignored",
                         pid_text, ::getpid());
    return 0;
  }
  std::string found;
  for (int fd = kListenFdsStart; fd < kListenFdsStart + count; ++fd) {
    ::fcntl(fd, F_SETFD, FD_CLOEXEC);  // never leaked to a child
    int listening = 0, type = 0;
    socklen_t len = sizeof listening;
    socklen_t tlen = sizeof type;
    if (::getsockopt(fd, SOL_SOCKET, SO_ACCEPTCONN, &listening, &len) != 0 || !listening ||
        ::getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &tlen) != 0 || type != SOCK_STREAM) {
      found += fmt::format("{}fd {} skipped (not a listening stream socket)",
                           found.empty() ? "" : ", ", fd);
      continue;
    }
    // The engine's accepts must never block the loop. The flag is on the open file
    // description that systemd shares with us, which systemd does not mind.
    ::fcntl(fd, F_SETFL, ::fcntl(fd, F_GETFL) | O_NONBLOCK);
    inherited.push_back(fd);
    found += fmt::format("{}{} (fd {})", found.empty() ? "" : ", ", local_address_text(fd), fd);
  }
  note = fmt::format("socket activation: {} inherited: {}", count, found);
  return static_cast<int>(inherited.size());
}

std::vector<Handle> claim_inherited_listeners(std::string_view host, std::uint16_t port) {
  std::vector<Handle> out;
  if (port == 0) return out;
  Endpoint want;
  std::string error;
  if (!resolve_endpoint(host, port, want, error)) return out;
  sockaddr_storage target{};
  std::memcpy(&target, want.storage, want.size);
  std::lock_guard lock(inherited_mutex);
  for (auto it = inherited.begin(); it != inherited.end();) {
    sockaddr_storage have{};
    if (local_sockaddr(*it, have) && same_address(have, target)) {
      out.push_back(*it);
      it = inherited.erase(it);
    } else {
      ++it;
    }
  }
  return out;
}

std::vector<std::string> unclaimed_inherited_listeners() {
  std::lock_guard lock(inherited_mutex);
  std::vector<std::string> out;
  for (int fd : inherited) out.push_back(local_address_text(fd));
  return out;
}

Handle duplicate_handle(Handle h) {
  int fd = ::fcntl(static_cast<int>(h), F_DUPFD_CLOEXEC, 0);
  return fd < 0 ? invalid_handle : fd;
}

std::string local_address_text(Handle sock) {
  sockaddr_storage ss{};
  if (!local_sockaddr(static_cast<int>(sock), ss)) return "?";
  char buf[INET6_ADDRSTRLEN] = {};
  if (ss.ss_family == AF_INET) {
    ::inet_ntop(AF_INET, &reinterpret_cast<sockaddr_in&>(ss).sin_addr, buf, sizeof buf);
    return fmt::format("{}:{}", buf, port_of(ss));
  }
  if (ss.ss_family == AF_INET6) {
    ::inet_ntop(AF_INET6, &reinterpret_cast<sockaddr_in6&>(ss).sin6_addr, buf, sizeof buf);
    return fmt::format("[{}]:{}", buf, port_of(ss));
  }
  return "?";
}

}  // namespace pp
