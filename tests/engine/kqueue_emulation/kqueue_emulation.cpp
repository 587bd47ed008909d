// tests/engine/kqueue_emulation/kqueue_emulation.cpp -- TEST-ONLY. kqueue()/kevent() for Linux,
// mapped onto epoll, so that the kqueue backend (platform/bsd/kqueue_loop.cpp) runs the
// generic engine suite here. Linked only into the kqueue test binaries, never into ppcore,
// the interpreter or anything shipped. What it cannot show of a real BSD: README.md.
//
// The mapping:
//  - A kqueue is an epoll fd; this file keeps, per kqueue, the state epoll has no room for:
//    which filters of each fd are registered, enabled, EV_CLEAR or EV_ONESHOT, and their
//    udata.
//  - An fd's EVFILT_READ and EVFILT_WRITE share its one epoll registration: EPOLLIN|EPOLLRDHUP
//    for read, EPOLLOUT for write, EPOLLET for EV_CLEAR. Every change re-registers with
//    EPOLL_CTL_MOD, which (like EV_ADD on BSD) evaluates readiness again. An fd closed behind
//    the emulation's back loses its registration, as BSD drops its knotes: MOD answering
//    ENOENT means exactly that, and EV_ADD then starts afresh with ADD.
//  - One epoll event may become two kevents (read and write). What does not fit the caller's
//    list waits for the next call: under EV_CLEAR a dropped event is an edge that never comes
//    again, which would hang an edge-triggered loop.
//  - EVFILT_USER is an eventfd in the epoll set, level-triggered: NOTE_TRIGGER writes it, and
//    delivering an EV_CLEAR event reads it (that is the reset).
//  - Timeouts: epoll_pwait2 (ns) where the kernel has it, else epoll_wait in ms rounded up.
#include "sys/event.h"

#include <fcntl.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <climits>
#include <cstdint>
#include <deque>
#include <map>
#include <memory>
#include <mutex>
#include <unordered_map>
#include <vector>

namespace {

// epoll_event.data of an EVFILT_USER eventfd: this bit plus the ident. An fd's is the fd.
constexpr std::uint64_t kUserTag = std::uint64_t{1} << 63;
// Registration flags an event echoes back (BSD returns the knote's flags, less the actions).
constexpr unsigned short kEchoedFlags = EV_CLEAR | EV_ONESHOT | EV_RECEIPT;

/// One filter of one ident: a knote.
struct Filter {
  bool added = false;
  bool disabled = false;
  bool clear = false;
  bool oneshot = false;
  unsigned short flags = 0;  // kEchoedFlags as registered
  void* udata = nullptr;
  bool active() const { return added && !disabled; }
};

struct FdEntry {
  Filter read, write;
  bool in_epoll = false;  // epoll holds a registration for this fd (as far as we know)
  bool any() const { return read.added || write.added; }
};

struct User {
  int efd = -1;
  Filter f;
  unsigned fflags = 0;  // the user flags (NOTE_FFLAGSMASK)
};

struct Kq {
  explicit Kq(int fd) : epfd(fd) {}
  // The epoll fd itself is the caller's (closed with close(2)); the eventfds are ours.
  ~Kq() {
    for (auto& [ident, u] : users) ::close(u.efd);
  }
  Kq(const Kq&) = delete;
  Kq& operator=(const Kq&) = delete;

  const int epfd;
  // Guards everything below. Not held while waiting in epoll, so that another thread's
  // NOTE_TRIGGER (the engine's post) gets through.
  std::mutex mu;
  std::unordered_map<int, FdEntry> fds;
  std::map<uintptr_t, User> users;
  std::deque<struct kevent> pending;  // ready, but there was no room in the caller's list
};

/// Emulated kqueues by fd number. A kqueue closed with close(2) stays here until kqueue()
/// hands out its number again (the emulation cannot see the close); until then its eventfds
/// stay open -- a few fds per test process.
struct Registry {
  std::mutex mu;
  std::unordered_map<int, std::shared_ptr<Kq>> kqs;
};
Registry& registry() {
  static auto* r = new Registry;  // never destroyed: no exit-time ordering to get wrong
  return *r;
}

std::shared_ptr<Kq> find_kq(int fd) {
  Registry& r = registry();
  std::lock_guard lock(r.mu);
  auto it = r.kqs.find(fd);
  return it == r.kqs.end() ? nullptr : it->second;
}

std::atomic<bool> use_pwait2{true};  // until the kernel (or seccomp) says ENOSYS/EPERM

void drop_pending(Kq& kq, uintptr_t ident, short filter, bool any_fd_filter = false) {
  std::erase_if(kq.pending, [&](const struct kevent& ev) {
    if (ev.ident != ident) return false;
    if (any_fd_filter) return ev.filter == EVFILT_READ || ev.filter == EVFILT_WRITE;
    return ev.filter == filter;
  });
}

/// Makes epoll's registration of `fd` match `e`'s filters. `adding`: the filter an EV_ADD is
/// setting up, or null. Returns 0 or an errno; ENOENT (only when not adding) means the
/// registration had gone with a close behind our back, so the knotes are gone too.
int sync_fd(Kq& kq, int fd, FdEntry& e, Filter* adding) {
  if (!e.any()) {
    if (!e.in_epoll) return 0;
    e.in_epoll = false;
    return ::epoll_ctl(kq.epfd, EPOLL_CTL_DEL, fd, nullptr) == 0 ? 0 : errno;
  }
  epoll_event ev{};
  if (e.read.active()) ev.events |= EPOLLIN | EPOLLRDHUP;
  if (e.write.active()) ev.events |= EPOLLOUT;
  // Both filters are EV_CLEAR or neither (EV_ADD refuses a mix). With nothing enabled,
  // EPOLLET keeps the HUP/ERR that epoll always reports from coming back on every call.
  bool clear = e.read.added ? e.read.clear : e.write.clear;
  if (clear || ev.events == 0) ev.events |= EPOLLET;
  ev.data.u64 = static_cast<std::uint64_t>(fd);
  if (e.in_epoll) {
    if (::epoll_ctl(kq.epfd, EPOLL_CTL_MOD, fd, &ev) == 0) return 0;
    if (errno != ENOENT) return errno;
    // The fd was closed (and its number maybe reused) without us: BSD would have dropped its
    // knotes with the close. Keep only the filter being added now, and start afresh.
    if (!adding) return ENOENT;
    (adding == &e.read ? e.write : e.read) = Filter{};
    drop_pending(kq, static_cast<uintptr_t>(fd), 0, true);
    e.in_epoll = false;
    return sync_fd(kq, fd, e, adding);
  }
  if (::epoll_ctl(kq.epfd, EPOLL_CTL_ADD, fd, &ev) != 0) {
    // Registered by us before and the state here was lost: modify what is there.
    if (errno != EEXIST || ::epoll_ctl(kq.epfd, EPOLL_CTL_MOD, fd, &ev) != 0) return errno;
  }
  e.in_epoll = true;
  return 0;
}

int apply_fd_change(Kq& kq, const struct kevent& ch) {
  // BSD looks the fd up first: a closed (or never opened) fd is EBADF, whatever the action.
  if (ch.ident > static_cast<uintptr_t>(INT_MAX)) return EBADF;
  const int fd = static_cast<int>(ch.ident);
  if (::fcntl(fd, F_GETFD) < 0) return EBADF;
  const bool is_read = ch.filter == EVFILT_READ;
  auto it = kq.fds.find(fd);
  const bool exists = it != kq.fds.end() && (is_read ? it->second.read : it->second.write).added;

  if (ch.flags & EV_DELETE) {
    if (!exists) return ENOENT;
    FdEntry& e = it->second;
    (is_read ? e.read : e.write) = Filter{};
    drop_pending(kq, ch.ident, ch.filter);
    int err = sync_fd(kq, fd, e, nullptr);
    if (err == ENOENT || !e.any()) kq.fds.erase(it);
    return err;
  }

  if (ch.flags & EV_ADD) {
    if (it == kq.fds.end()) {
      it = kq.fds.emplace(fd, FdEntry{}).first;
      drop_pending(kq, ch.ident, 0, true);  // events of an earlier fd with this number
    }
    FdEntry& e = it->second;
    const FdEntry saved = e;
    Filter& f = is_read ? e.read : e.write;
    const Filter& other = is_read ? e.write : e.read;
    const bool clear = (ch.flags & EV_CLEAR) != 0;
    // epoll has one EPOLLET per fd, BSD one EV_CLEAR per knote: a mix is not emulated.
    if (other.added && other.clear != clear) return EINVAL;
    f.added = true;
    f.clear = clear;
    f.oneshot = (ch.flags & EV_ONESHOT) != 0;
    f.flags = ch.flags & kEchoedFlags;
    f.udata = ch.udata;
    // A new knote starts enabled; an existing one keeps its state unless told otherwise.
    if (ch.flags & EV_DISABLE)
      f.disabled = true;
    else if ((ch.flags & EV_ENABLE) || !exists)
      f.disabled = false;
    int err = sync_fd(kq, fd, e, &f);
    if (err != 0) {
      e = saved;
      if (!e.any() && !e.in_epoll) kq.fds.erase(it);
    }
    return err;
  }

  // EV_ENABLE, EV_DISABLE, or no action: all need the knote.
  if (!exists) return ENOENT;
  FdEntry& e = it->second;
  Filter& f = is_read ? e.read : e.write;
  if (ch.flags & EV_DISABLE) {
    f.disabled = true;
    drop_pending(kq, ch.ident, ch.filter);
  }
  if (ch.flags & EV_ENABLE) f.disabled = false;
  int err = sync_fd(kq, fd, e, nullptr);
  if (err == ENOENT) kq.fds.erase(it);
  return err;
}

void delete_user(Kq& kq, std::map<uintptr_t, User>::iterator it) {
  ::epoll_ctl(kq.epfd, EPOLL_CTL_DEL, it->second.efd, nullptr);
  ::close(it->second.efd);
  drop_pending(kq, it->first, EVFILT_USER);
  kq.users.erase(it);
}

int set_user_epoll(Kq& kq, uintptr_t ident, User& u, int op) {
  epoll_event ev{};
  // Level-triggered: a triggered event stays visible until delivery resets it (EV_CLEAR)
  // -- or forever, as on BSD, when it is not EV_CLEAR.
  ev.events = u.f.disabled ? 0u : std::uint32_t{EPOLLIN};
  ev.data.u64 = kUserTag | ident;
  return ::epoll_ctl(kq.epfd, op, u.efd, &ev) == 0 ? 0 : errno;
}

int apply_user_change(Kq& kq, const struct kevent& ch) {
  if (ch.ident & kUserTag) return EINVAL;  // the emulation's tag bit; real idents are small
  auto it = kq.users.find(ch.ident);
  if (ch.flags & EV_DELETE) {
    if (it == kq.users.end()) return ENOENT;
    delete_user(kq, it);
    return 0;
  }
  if (it == kq.users.end()) {
    if (!(ch.flags & EV_ADD)) return ENOENT;
    User u;
    u.efd = ::eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (u.efd < 0) return errno;
    u.f.added = true;
    u.f.disabled = (ch.flags & EV_DISABLE) != 0;
    if (int err = set_user_epoll(kq, ch.ident, u, EPOLL_CTL_ADD)) {
      ::close(u.efd);
      return err;
    }
    it = kq.users.emplace(ch.ident, u).first;
  }
  User& u = it->second;
  if (ch.flags & EV_ADD) {
    u.f.clear = (ch.flags & EV_CLEAR) != 0;
    u.f.oneshot = (ch.flags & EV_ONESHOT) != 0;
    u.f.flags = ch.flags & kEchoedFlags;
    u.f.udata = ch.udata;
  }
  if (ch.flags & (EV_ENABLE | EV_DISABLE)) {
    u.f.disabled = (ch.flags & EV_DISABLE) != 0;
    if (u.f.disabled) drop_pending(kq, ch.ident, EVFILT_USER);
    if (int err = set_user_epoll(kq, ch.ident, u, EPOLL_CTL_MOD)) return err;
  }
  const unsigned ffl = ch.fflags & NOTE_FFLAGSMASK;
  switch (ch.fflags & NOTE_FFCTRLMASK) {
    case NOTE_FFAND:
      u.fflags &= ffl;
      break;
    case NOTE_FFOR:
      u.fflags |= ffl;
      break;
    case NOTE_FFCOPY:
      u.fflags = ffl;
      break;
    default:  // NOTE_FFNOP
      break;
  }
  if (ch.fflags & NOTE_TRIGGER) {
    std::uint64_t one = 1;
    // EAGAIN: the counter is saturated, so the event is triggered already.
    while (::write(u.efd, &one, sizeof one) < 0 && errno == EINTR) {
    }
  }
  return 0;
}

int apply_change(Kq& kq, const struct kevent& ch) {
  switch (ch.filter) {
    case EVFILT_READ:
    case EVFILT_WRITE:
      return apply_fd_change(kq, ch);
    case EVFILT_USER:
      return apply_user_change(kq, ch);
    default:
      return EINVAL;  // a filter the emulation does not implement
  }
}

/// Hands `ev` to the caller if its knote still wants it, doing what delivery does on BSD:
/// fresh udata and user flags, EV_CLEAR's reset, EV_ONESHOT's removal. False: drop it.
bool deliver(Kq& kq, struct kevent& ev) {
  if (ev.filter == EVFILT_USER) {
    auto it = kq.users.find(ev.ident);
    if (it == kq.users.end() || !it->second.f.active()) return false;
    User& u = it->second;
    ev.flags = u.f.flags;
    ev.fflags = u.fflags;
    ev.data = 0;
    ev.udata = u.f.udata;
    if (u.f.clear) {
      std::uint64_t count;
      while (::read(u.efd, &count, sizeof count) < 0 && errno == EINTR) {
      }
      u.fflags = 0;
    }
    if (u.f.oneshot) delete_user(kq, it);
    return true;
  }
  auto it = kq.fds.find(static_cast<int>(ev.ident));
  if (it == kq.fds.end()) return false;
  FdEntry& e = it->second;
  Filter& f = ev.filter == EVFILT_READ ? e.read : e.write;
  if (!f.active()) return false;
  ev.flags = static_cast<unsigned short>(f.flags | (ev.flags & EV_EOF));
  ev.udata = f.udata;
  if (f.oneshot) {
    f = Filter{};
    if (sync_fd(kq, static_cast<int>(ev.ident), e, nullptr) == ENOENT || !e.any()) kq.fds.erase(it);
  }
  return true;
}

/// Queues `ev` for the next call, merged with one already queued for the same knote.
void keep_pending(Kq& kq, const struct kevent& ev) {
  for (auto& p : kq.pending)
    if (p.ident == ev.ident && p.filter == ev.filter) {
      p.flags |= ev.flags & EV_EOF;
      return;
    }
  kq.pending.push_back(ev);
}

int wait_epoll(int epfd, epoll_event* evs, int room, const timespec* timeout) {
  if (use_pwait2.load(std::memory_order_relaxed)) {
    int n = ::epoll_pwait2(epfd, evs, room, timeout, nullptr);
    if (n >= 0 || (errno != ENOSYS && errno != EPERM)) return n;
    use_pwait2.store(false, std::memory_order_relaxed);  // old kernel or seccomp profile
  }
  // Milliseconds, rounded up so that a timeout never ends early.
  int ms = -1;
  if (timeout) {
    if (timeout->tv_sec >= INT_MAX / 1000) {
      ms = INT_MAX;
    } else {
      std::int64_t ns = std::int64_t{timeout->tv_sec} * 1'000'000'000 + timeout->tv_nsec;
      ms = static_cast<int>((ns + 999'999) / 1'000'000);
    }
  }
  return ::epoll_wait(epfd, evs, room, ms);
}

/// The scan: queued events first, then epoll's (without waiting if some were queued).
int collect(Kq& kq, std::unique_lock<std::mutex>& lock, struct kevent* out, int nevents,
            const timespec* timeout) {
  int n = 0;
  while (n < nevents && !kq.pending.empty()) {
    struct kevent ev = kq.pending.front();
    kq.pending.pop_front();
    if (deliver(kq, ev)) out[n++] = ev;
  }
  if (n == nevents) return n;  // also BSD's answer to nevents == 0: no wait at all
  const timespec no_wait{0, 0};
  const int room = nevents - n;
  thread_local std::vector<epoll_event> evs;
  evs.resize(static_cast<std::size_t>(room));
  lock.unlock();
  int got = wait_epoll(kq.epfd, evs.data(), room, n > 0 ? &no_wait : timeout);
  int saved_errno = errno;
  lock.lock();
  if (got < 0) {
    if (n > 0) return n;
    errno = saved_errno;  // EINTR
    return -1;
  }
  auto emit = [&](struct kevent ev) {
    if (n < nevents) {
      if (deliver(kq, ev)) out[n++] = ev;
    } else {
      keep_pending(kq, ev);
    }
  };
  for (int i = 0; i < got; ++i) {
    const epoll_event& pe = evs[static_cast<std::size_t>(i)];
    if (pe.data.u64 & kUserTag) {
      emit({pe.data.u64 & ~kUserTag, EVFILT_USER, 0, 0, 0, nullptr});
      continue;
    }
    const int fd = static_cast<int>(pe.data.u64);
    auto it = kq.fds.find(fd);
    if (it == kq.fds.end()) continue;
    const std::uint32_t x = pe.events;
    // BSD: the read filter fires with EV_EOF once the socket can receive no more (FIN or
    // reset); the write filter once it can send no more (reset, refused connect).
    if (it->second.read.active() && (x & (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR))) {
      unsigned short flags = (x & (EPOLLRDHUP | EPOLLHUP)) ? EV_EOF : 0;
      emit({static_cast<uintptr_t>(fd), EVFILT_READ, flags, 0, 0, nullptr});
    }
    // `deliver` above may have removed a one-shot read filter, and the entry with it.
    it = kq.fds.find(fd);
    if (it == kq.fds.end()) continue;
    if (it->second.write.active() && (x & (EPOLLOUT | EPOLLHUP | EPOLLERR))) {
      unsigned short flags = (x & (EPOLLHUP | EPOLLERR)) ? EV_EOF : 0;
      emit({static_cast<uintptr_t>(fd), EVFILT_WRITE, flags, 0, 0, nullptr});
    }
  }
  return n;
}

}  // namespace

int kqueue(void) {
  int epfd = ::epoll_create1(EPOLL_CLOEXEC);
  if (epfd < 0) return -1;
  auto kq = std::make_shared<Kq>(epfd);
  std::shared_ptr<Kq> stale;  // a closed kqueue that had this number: destroyed unlocked
  {
    Registry& r = registry();
    std::lock_guard lock(r.mu);
    auto& slot = r.kqs[epfd];
    stale = std::move(slot);
    slot = std::move(kq);
  }
  return epfd;
}

int kevent(int kqfd, const struct kevent* changelist, int nchanges, struct kevent* eventlist,
           int nevents, const struct timespec* timeout) {
  std::shared_ptr<Kq> kq = find_kq(kqfd);
  if (!kq) {
    errno = EBADF;
    return -1;
  }
  if (nchanges < 0 || nevents < 0 || (nchanges > 0 && !changelist) || (nevents > 0 && !eventlist) ||
      (timeout &&
       (timeout->tv_sec < 0 || timeout->tv_nsec < 0 || timeout->tv_nsec >= 1'000'000'000))) {
    errno = EINVAL;
    return -1;
  }
  std::unique_lock lock(kq->mu);
  // Changes in order. A failing one, or any with EV_RECEIPT, takes an EV_ERROR entry in the
  // event list; with no room left a failure ends the call with its errno (as on FreeBSD).
  // The lists may be the same array: entry k is written only after change k was read.
  int entries = 0;
  for (int i = 0; i < nchanges; ++i) {
    struct kevent ch = changelist[i];
    int err = apply_change(*kq, ch);
    if (err == 0 && !(ch.flags & EV_RECEIPT)) continue;
    if (entries == nevents) {
      if (err == 0) continue;
      errno = err;
      return -1;
    }
    ch.flags = EV_ERROR;
    ch.data = err;
    eventlist[entries++] = ch;
  }
  // Any EV_ERROR entry ends the call before the scan: EV_RECEIPT changes never dequeue events.
  if (entries > 0) return entries;
  return collect(*kq, lock, eventlist, nevents, timeout);
}
