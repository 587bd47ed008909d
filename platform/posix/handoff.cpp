// platform/posix/handoff.cpp -- passing listening sockets to a successor instance over a
// Unix socket (SCM_RIGHTS). Linux only: the rendezvous is an abstract-namespace name, which
// needs no file, no folder and no clean-up after a crash. See core/handoff.h.
#include "core/handoff.h"

#if defined(__linux__)

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <mutex>
#include <thread>

#include <fmt/format.h>

#include "core/log.h"
#include "core/net.h"

namespace pp {
namespace {

// SCM_MAX_FD: the most descriptors one message carries.
constexpr std::size_t kMaxFds = 253;

// "pyparallel-handoff/<uid>/<family address port>", from the address as asked for (not
// as bound), so that old and new instances given the same --host/--port meet.
bool rendezvous_name(std::string_view host, std::uint16_t port, std::string& name) {
  Endpoint ep;
  std::string error;
  if (port == 0 || !resolve_endpoint(host, port, ep, error)) return false;
  char buf[INET6_ADDRSTRLEN] = {};
  const auto* sa = reinterpret_cast<const sockaddr*>(ep.storage);
  if (sa->sa_family == AF_INET)
    ::inet_ntop(AF_INET, &reinterpret_cast<const sockaddr_in*>(sa)->sin_addr, buf, sizeof buf);
  else if (sa->sa_family == AF_INET6)
    ::inet_ntop(AF_INET6, &reinterpret_cast<const sockaddr_in6*>(sa)->sin6_addr, buf, sizeof buf);
  else
    return false;
  name = fmt::format("pyparallel-handoff/{}/{}/{}", ::geteuid(), buf, port);
  return true;
}

socklen_t abstract_address(const std::string& name, sockaddr_un& addr) {
  addr = {};
  addr.sun_family = AF_UNIX;
  // Abstract: a leading NUL, then the name; the length says where it ends.
  std::size_t n = std::min(name.size(), sizeof addr.sun_path - 1);
  std::memcpy(addr.sun_path + 1, name.data(), n);
  return static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) + 1 + n);
}

struct Offer {
  std::string name;
  std::vector<int> fds;  // our own copies
  int rendezvous = -1;   // the bound Unix socket; -1 while an older instance holds the name
};

struct Offers {
  std::mutex mutex;
  std::vector<Offer> offers;  // guarded by mutex
  std::thread thread;
  int wake[2] = {-1, -1};  // 'w': offers changed; 'q': quit
};

Offers& state() {
  static Offers s;
  return s;
}

void try_bind(Offer& o) {
  if (o.rendezvous >= 0) return;
  int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
  if (fd < 0) return;
  sockaddr_un addr;
  socklen_t len = abstract_address(o.name, addr);
  if (::bind(fd, reinterpret_cast<sockaddr*>(&addr), len) != 0 || ::listen(fd, 16) != 0) {
    ::close(fd);  // EADDRINUSE: the instance we replace still answers; retried
    return;
  }
  o.rendezvous = fd;
}

// Answers one successor: same user only, then one message with every socket.
void answer(int client, const std::vector<int>& fds) {
  ucred cred{};
  socklen_t len = sizeof cred;
  if (::getsockopt(client, SOL_SOCKET, SO_PEERCRED, &cred, &len) != 0 || cred.uid != ::geteuid()) {
    log_warning("handoff: refused a request from uid {} (not this user)", cred.uid);
    return;
  }
  std::size_t n = std::min(fds.size(), kMaxFds);
  std::string text = fmt::format("pyparallel-handoff pid={} n={}\n", ::getpid(), n);
  iovec iov{text.data(), text.size()};
  std::vector<char> control(CMSG_SPACE(sizeof(int) * n));
  msghdr msg{};
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  msg.msg_control = control.data();
  msg.msg_controllen = control.size();
  cmsghdr* c = CMSG_FIRSTHDR(&msg);
  c->cmsg_level = SOL_SOCKET;
  c->cmsg_type = SCM_RIGHTS;
  c->cmsg_len = CMSG_LEN(sizeof(int) * n);
  std::memcpy(CMSG_DATA(c), fds.data(), sizeof(int) * n);
  if (::sendmsg(client, &msg, MSG_NOSIGNAL) < 0)
    log_warning("handoff: sending listeners to pid {} failed: {}", cred.pid, std::strerror(errno));
  else
    log("handoff: listening sockets handed to pid {}", cred.pid);
}

void serve() {
  Offers& s = state();
  for (;;) {
    std::vector<pollfd> polls{{s.wake[0], POLLIN, 0}};
    bool waiting = false;
    {
      std::lock_guard lock(s.mutex);
      for (Offer& o : s.offers) {
        try_bind(o);
        if (o.rendezvous >= 0)
          polls.push_back({o.rendezvous, POLLIN, 0});
        else
          waiting = true;
      }
    }
    int n = ::poll(polls.data(), polls.size(), waiting ? 100 : -1);
    if (n < 0 && errno != EINTR) return;
    if (polls[0].revents & POLLIN) {
      char c[16];
      ssize_t got = ::read(s.wake[0], c, sizeof c);
      for (ssize_t i = 0; i < got; ++i)
        if (c[i] == 'q') return;
    }
    for (std::size_t i = 1; i < polls.size(); ++i) {
      if (!(polls[i].revents & POLLIN)) continue;
      int client = ::accept4(polls[i].fd, nullptr, nullptr, SOCK_CLOEXEC);
      if (client < 0) continue;
      {
        std::lock_guard lock(s.mutex);
        for (Offer& o : s.offers)
          if (o.rendezvous == polls[i].fd) answer(client, o.fds);
      }
      ::close(client);
    }
  }
}

}  // namespace

std::vector<Handle> request_listeners(std::string_view host, std::uint16_t port,
                                      std::string& from) {
  std::vector<Handle> out;
  std::string name;
  if (!rendezvous_name(host, port, name)) return out;
  int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return out;
  timeval two_seconds{2, 0};
  ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &two_seconds, sizeof two_seconds);
  sockaddr_un addr;
  socklen_t len = abstract_address(name, addr);
  if (::connect(fd, reinterpret_cast<sockaddr*>(&addr), len) != 0) {
    int e = errno;
    ::close(fd);  // ECONNREFUSED: no instance serves this address; bind anew
    if (e != ECONNREFUSED && e != ENOENT)
      log_warning("handoff: cannot reach the instance serving {}:{}: {}", host, port, std::strerror(e));
    return out;
  }
  char text[128] = {};
  iovec iov{text, sizeof text - 1};
  std::vector<char> control(CMSG_SPACE(sizeof(int) * kMaxFds));
  msghdr msg{};
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  msg.msg_control = control.data();
  msg.msg_controllen = control.size();
  ssize_t got = ::recvmsg(fd, &msg, MSG_CMSG_CLOEXEC);
  int why = errno;
  ::close(fd);
  if (got <= 0) {
    // An instance holds the address's name but did not answer: bind anew (a restart then
    // loses what is queued on the old sockets when they close).
    log_warning("handoff: the instance serving {}:{} did not hand its sockets over ({}); binding anew",
        host, port, got < 0 ? std::strerror(why) : "closed");
    return out;
  }
  for (cmsghdr* c = CMSG_FIRSTHDR(&msg); c; c = CMSG_NXTHDR(&msg, c)) {
    if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS) continue;
    std::size_t n = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
    for (std::size_t i = 0; i < n; ++i) {
      int s = -1;
      std::memcpy(&s, CMSG_DATA(c) + i * sizeof(int), sizeof s);
      int listening = 0;
      socklen_t l = sizeof listening;
      if (::getsockopt(s, SOL_SOCKET, SO_ACCEPTCONN, &listening, &l) == 0 && listening)
        out.push_back(s);
      else
        ::close(s);
    }
  }
  std::string_view t(text, static_cast<std::size_t>(got));
  auto p = t.find("pid=");
  from = p == std::string_view::npos
             ? "an older instance"
             : fmt::format("pid {}", t.substr(p + 4, t.find(' ', p) - p - 4));
  return out;
}

void offer_listeners(std::string_view host, std::uint16_t port,
                     const std::vector<Handle>& sockets) {
  Offer o;
  if (sockets.empty() || !rendezvous_name(host, port, o.name)) return;
  for (Handle h : sockets) {
    int d = ::fcntl(static_cast<int>(h), F_DUPFD_CLOEXEC, 0);
    if (d >= 0) o.fds.push_back(d);
  }
  Offers& s = state();
  std::lock_guard lock(s.mutex);
  try_bind(o);
  s.offers.push_back(std::move(o));
  if (!s.thread.joinable()) {
    if (::pipe2(s.wake, O_CLOEXEC) != 0) return;
    s.thread = std::thread(serve);
  } else {
    char w = 'w';
    [[maybe_unused]] auto r = ::write(s.wake[1], &w, 1);
  }
}

void withdraw_listeners() {
  Offers& s = state();
  if (s.thread.joinable()) {
    char q = 'q';
    [[maybe_unused]] auto r = ::write(s.wake[1], &q, 1);
    s.thread.join();
    ::close(s.wake[0]);
    ::close(s.wake[1]);
    s.wake[0] = s.wake[1] = -1;
  }
  std::lock_guard lock(s.mutex);
  for (Offer& o : s.offers) {
    if (o.rendezvous >= 0) ::close(o.rendezvous);
    for (int fd : o.fds) ::close(fd);
  }
  s.offers.clear();
}

}  // namespace pp

#else  // no abstract Unix sockets: restarts bind anew

namespace pp {
std::vector<Handle> request_listeners(std::string_view, std::uint16_t, std::string&) {
  return {};
}
void offer_listeners(std::string_view, std::uint16_t, const std::vector<Handle>&) {}
void withdraw_listeners() {}
}  // namespace pp

#endif
