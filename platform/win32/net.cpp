// platform/win32/net.cpp -- core/net.h on Winsock and Win32 files.
//
// Listeners: Windows has no SO_REUSEPORT (its SO_REUSEADDR lets a second socket take over a
// port, without balancing), so `listen_tcp(..., reuse_port=true)` for an address this
// process already listens on returns a duplicate of that one listener (WSADuplicateSocket):
// every worker posts AcceptEx on the same socket, and the kernel gives each connection to
// a worker whose accept is waiting. Why this and not one completion port served by N
// threads: docs/decisions.md ("Windows: one listener shared by the workers' ports").
#include <cerrno>
#include <cstring>
#include <map>
#include <mutex>
#include <utility>

#include <fmt/format.h>

#include "core/net.h"
#include "platform/win32/error_codes.h"
#include "platform/socket_address.h"
#include "platform/win32/winsock.h"

namespace pp {
namespace {

using platform::win32::ensure_winsock;
using platform::win32::overlapped_socket;
using platform::win32::result_from_windows_error;
using platform::win32::to_handle;
using platform::win32::to_socket;
using platform::win32::windows_error_text;

std::string wsa_text() {
  return windows_error_text(static_cast<std::uint32_t>(::WSAGetLastError()));
}

/// The listeners opened with reuse_port, by "address|port", so that later workers share
/// them. An entry goes when its socket is closed through close_socket.
struct SharedListeners {
  std::mutex mutex;
  std::map<std::string, SOCKET> by_address;
};
SharedListeners& shared_listeners() {
  static SharedListeners s;
  return s;
}

std::string address_key(const Endpoint& ep) {
  char host[INET6_ADDRSTRLEN] = {};
  std::uint16_t port = 0;
  auto* sa = reinterpret_cast<const sockaddr*>(ep.storage);
  if (sa->sa_family == AF_INET) {
    auto* a = reinterpret_cast<const sockaddr_in*>(sa);
    ::inet_ntop(AF_INET, &a->sin_addr, host, sizeof host);
    port = ntohs(a->sin_port);
  } else {
    auto* a = reinterpret_cast<const sockaddr_in6*>(sa);
    ::inet_ntop(AF_INET6, &a->sin6_addr, host, sizeof host);
    port = ntohs(a->sin6_port);
  }
  return fmt::format("{}|{}", host, port);
}

/// Another handle to the same listening socket (same accept queue, same port).
SOCKET duplicate_listener(SOCKET s) {
  WSAPROTOCOL_INFOW info{};
  if (::WSADuplicateSocketW(s, ::GetCurrentProcessId(), &info) != 0) return INVALID_SOCKET;
  return ::WSASocketW(FROM_PROTOCOL_INFO, FROM_PROTOCOL_INFO, FROM_PROTOCOL_INFO, &info, 0,
                      WSA_FLAG_OVERLAPPED | WSA_FLAG_NO_HANDLE_INHERIT);
}

std::wstring widen(const std::string& utf8) {
  if (utf8.empty()) return {};
  int n = ::MultiByteToWideChar(CP_UTF8, 0, utf8.data(), static_cast<int>(utf8.size()), nullptr, 0);
  std::wstring out(static_cast<std::size_t>(n), L'\0');
  ::MultiByteToWideChar(CP_UTF8, 0, utf8.data(), static_cast<int>(utf8.size()), out.data(), n);
  return out;
}

}  // namespace

bool resolve_endpoint(std::string_view host, std::uint16_t port, Endpoint& out,
                      std::string& error) {
  if (!ensure_winsock()) {
    error = fmt::format("WSAStartup: {}", wsa_text());
    return false;
  }
  std::string name(host.empty() ? "0.0.0.0" : host);
  if (name.size() > 2 && name.front() == '[' && name.back() == ']')
    name = name.substr(1, name.size() - 2);
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_NUMERICSERV;
  addrinfo* found = nullptr;
  auto service = std::to_string(port);
  int rc = ::getaddrinfo(name.c_str(), service.c_str(), &hints, &found);
  if (rc != 0 || found == nullptr) {
    error = fmt::format("cannot resolve '{}': {}", name,
                        windows_error_text(static_cast<std::uint32_t>(rc)));
    return false;
  }
  std::memcpy(out.storage, found->ai_addr, found->ai_addrlen);
  out.size = static_cast<std::uint32_t>(found->ai_addrlen);
  ::freeaddrinfo(found);
  return true;
}

Handle listen_tcp(std::string_view host, std::uint16_t port, bool reuse_port, int backlog,
                  std::string& error) {
  Endpoint ep;
  if (!resolve_endpoint(host, port, ep, error)) return invalid_handle;
  auto& shared = shared_listeners();
  std::lock_guard lock(shared.mutex);
  std::string key = address_key(ep);
  if (reuse_port && port != 0) {
    auto it = shared.by_address.find(key);
    if (it != shared.by_address.end()) {
      SOCKET dup = duplicate_listener(it->second);
      if (dup == INVALID_SOCKET) {
        error = fmt::format("cannot share the listener on {}:{}: {}", host, port, wsa_text());
        return invalid_handle;
      }
      return to_handle(dup);
    }
  }
  auto* sa = reinterpret_cast<const sockaddr*>(ep.storage);
  SOCKET s = overlapped_socket(sa->sa_family);
  if (s == INVALID_SOCKET) {
    error = fmt::format("socket: {}", wsa_text());
    return invalid_handle;
  }
  // SO_EXCLUSIVEADDRUSE: no other socket may bind this port while we listen (Windows'
  // SO_REUSEADDR would let one steal it). Windows has no TIME_WAIT bind problem to avoid.
  BOOL one = TRUE;
  ::setsockopt(s, SOL_SOCKET, SO_EXCLUSIVEADDRUSE, reinterpret_cast<const char*>(&one), sizeof one);
  if (::bind(s, sa, static_cast<int>(ep.size)) != 0) {
    error = fmt::format("cannot listen on {}:{}: {}", host, port, wsa_text());
    ::closesocket(s);
    return invalid_handle;
  }
  if (::listen(s, backlog) != 0) {
    error = fmt::format("listen on {}:{}: {}", host, port, wsa_text());
    ::closesocket(s);
    return invalid_handle;
  }
  if (reuse_port) {
    // Keyed by the port actually bound, so that port 0's later workers (who ask for the
    // port the first one got) find it.
    sockaddr_storage bound{};
    int len = sizeof bound;
    ::getsockname(s, reinterpret_cast<sockaddr*>(&bound), &len);
    Endpoint actual;
    std::memcpy(actual.storage, &bound, static_cast<std::size_t>(len));
    actual.size = static_cast<std::uint32_t>(len);
    shared.by_address[address_key(actual)] = s;
  }
  return to_handle(s);
}

Handle open_stream_socket(const Endpoint& to, std::string& error) {
  auto* sa = reinterpret_cast<const sockaddr*>(to.storage);
  SOCKET s = overlapped_socket(sa->sa_family);
  if (s == INVALID_SOCKET) error = fmt::format("socket: {}", wsa_text());
  return to_handle(s);
}

std::uint16_t local_port(Handle sock) {
  sockaddr_storage ss{};
  int len = sizeof ss;
  if (::getsockname(to_socket(sock), reinterpret_cast<sockaddr*>(&ss), &len) != 0) return 0;
  return platform::address_port(ss);
}

bool peer_address(Handle sock, std::string& host, std::uint16_t& port) {
  sockaddr_storage ss{};
  int len = sizeof ss;
  if (::getpeername(to_socket(sock), reinterpret_cast<sockaddr*>(&ss), &len) != 0) return false;
  return platform::format_address(ss, host, port);
}

bool local_address(Handle sock, std::string& host, std::uint16_t& port) {
  sockaddr_storage ss{};
  int len = sizeof ss;
  if (::getsockname(to_socket(sock), reinterpret_cast<sockaddr*>(&ss), &len) != 0) return false;
  return platform::format_address(ss, host, port);
}

void set_nodelay(Handle sock) {
  BOOL one = TRUE;
  ::setsockopt(to_socket(sock), IPPROTO_TCP, TCP_NODELAY, reinterpret_cast<const char*>(&one),
               sizeof one);
}

void shutdown_send(Handle sock) {
  if (sock != invalid_handle) ::shutdown(to_socket(sock), SD_SEND);
}

void close_socket(Handle sock) {
  if (sock == invalid_handle) return;
  SOCKET s = to_socket(sock);
  {
    auto& shared = shared_listeners();
    std::lock_guard lock(shared.mutex);
    for (auto it = shared.by_address.begin(); it != shared.by_address.end(); ++it) {
      if (it->second == s) {
        shared.by_address.erase(it);
        break;
      }
    }
  }
  ::closesocket(s);
}

void close_file(Handle file) {
  if (file != invalid_handle) ::CloseHandle(reinterpret_cast<HANDLE>(file));
}

Handle open_file_for_send(const std::string& path, std::uint64_t& size, std::string& error,
                          int* error_code) {
  std::wstring wide = widen(path);
  DWORD attrs = ::GetFileAttributesW(wide.c_str());
  if (attrs != INVALID_FILE_ATTRIBUTES && (attrs & FILE_ATTRIBUTE_DIRECTORY)) {
    if (error_code) *error_code = -EISDIR;
    error = fmt::format("'{}' is not a regular file", path);
    return invalid_handle;
  }
  // FILE_SHARE_DELETE: a file being served may be replaced or deleted meanwhile, as on
  // POSIX. SEQUENTIAL_SCAN: TransmitFile reads ahead.
  HANDLE h = ::CreateFileW(wide.c_str(), GENERIC_READ,
                           FILE_SHARE_READ | FILE_SHARE_WRITE | FILE_SHARE_DELETE, nullptr,
                           OPEN_EXISTING, FILE_FLAG_SEQUENTIAL_SCAN, nullptr);
  if (h == INVALID_HANDLE_VALUE) {
    DWORD e = ::GetLastError();
    auto code = static_cast<int>(result_from_windows_error(e));
    if (error_code) *error_code = code;
    error = fmt::format("cannot open '{}': {}", path, windows_error_text(e));
    return invalid_handle;
  }
  LARGE_INTEGER sz{};
  if (::GetFileType(h) != FILE_TYPE_DISK || !::GetFileSizeEx(h, &sz)) {
    if (error_code) *error_code = -EISDIR;
    error = fmt::format("'{}' is not a regular file", path);
    ::CloseHandle(h);
    return invalid_handle;
  }
  size = static_cast<std::uint64_t>(sz.QuadPart);
  return reinterpret_cast<Handle>(h);
}

std::string error_text(std::int64_t negated_errno) {
  int e = static_cast<int>(negated_errno < 0 ? -negated_errno : negated_errno);
  // The C runtime's strerror knows only the classic errno values; the socket ones that
  // mingw and the SDK add (ECONNRESET...) read "Unknown error" there.
  const char* text = nullptr;
  switch (e) {
    case ECONNRESET:
      text = "Connection reset by peer";
      break;
    case ECONNREFUSED:
      text = "Connection refused";
      break;
    case ECONNABORTED:
      text = "Software caused connection abort";
      break;
    case ECANCELED:
      text = "Operation canceled";
      break;
    case ETIMEDOUT:
      text = "Connection timed out";
      break;
    case ENOTCONN:
      text = "Transport endpoint is not connected";
      break;
    case ENOTSOCK:
      text = "Socket operation on non-socket";
      break;
    case EADDRINUSE:
      text = "Address already in use";
      break;
    case EADDRNOTAVAIL:
      text = "Cannot assign requested address";
      break;
    case ENOBUFS:
      text = "No buffer space available";
      break;
    case EWOULDBLOCK:
      text = "Resource temporarily unavailable";
      break;
    case EHOSTUNREACH:
      text = "No route to host";
      break;
    case ENETUNREACH:
      text = "Network is unreachable";
      break;
    case ENODATA:
      text = "No data available";
      break;
    default:
      text = std::strerror(e);
      break;
  }
  return fmt::format("{} ({})", text, e);
}

}  // namespace pp
