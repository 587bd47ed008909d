// platform/bsd/kqueue_loop.cpp -- the kqueue backend: the engine on FreeBSD, DragonFly and
// macOS (OpenBSD and NetBSD lack sendfile(2), and older releases EVFILT_USER).
//
// Everything but watching handles lives in the readiness core (platform/posix/); this file
// registers each fd once, EVFILT_READ and EVFILT_WRITE edge-triggered (EV_CLEAR, as the epoll
// backend uses EPOLLET), and turns kevents into ReadyFlags. post() triggers an EVFILT_USER
// event registered once with EV_CLEAR, so its delivery resets it.
//
// Timers use no EVFILT_TIMER (the first design said they would): the core keeps one timer
// heap for every readiness backend and hands `wait` the time to the earliest deadline, which
// goes to kevent() as its timespec. That costs no kevent change per timeout armed or
// cancelled (an EVFILT_TIMER knote per timeout costs an EV_ADD and, when cancelled, an
// EV_DELETE), keeps one timer implementation shared with epoll and libaio instead of one per
// backend, and keeps nanosecond precision: EVFILT_TIMER counts in milliseconds unless given a
// unit flag (NOTE_NSECONDS), which not every BSD release has.
//
// Written against the real <sys/event.h>. On Linux the engine tests compile this same file
// against tests/engine/kqueue_emulation/ (a test-only mapping of kevent onto epoll), which
// is how it is built and run without a BSD machine; see platform/bsd/README.md for what that
// leaves unexercised.
// <sys/types.h> first: older BSDs' <sys/event.h> uses its types without including it.
#include <sys/types.h>

#include <fcntl.h>
#include <sys/event.h>
#include <sys/time.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <memory>
#include <vector>

#include <fmt/format.h>

#include "platform/bsd/backends.h"
#include "platform/posix/readiness_loop.h"

namespace pp::platform {
namespace {

// The ident of post()'s EVFILT_USER event. EVFILT_USER idents are their own namespace, apart
// from the fds that EVFILT_READ/EVFILT_WRITE idents name, so no fd can collide with it.
constexpr uintptr_t kWakeIdent = 0;

class KqueueLoop final : public ReadinessLoop {
 public:
  KqueueLoop(int kq, const LoopOptions& options)
      : ReadinessLoop(options),
        kq_(kq),
        events_(std::clamp<std::uint32_t>(options.queue_depth, 1, 65536)) {}

  ~KqueueLoop() override { ::close(kq_); }

  std::string_view backend_name() const override { return "kqueue"; }

 protected:
  int watch(int fd, bool /*known*/) override {
    // Both directions, edge-triggered (EV_CLEAR), in one kevent() call: later operations on
    // the fd cost no kevent change. EV_ADD on a knote that exists modifies it and evaluates
    // its filter again, so an edge that came while nothing was waiting is not lost -- the
    // role epoll's MOD plays -- and there is no ADD-or-MOD choice to make, hence `known` is
    // unused. EV_RECEIPT makes each change report its own result (an EV_ERROR entry whose
    // data is 0 or the errno) and keeps this call from dequeuing pending events, which only
    // wait() may hand to the core.
    struct kevent changes[2];
    EV_SET(&changes[0], static_cast<uintptr_t>(fd), EVFILT_READ, EV_ADD | EV_CLEAR | EV_RECEIPT, 0,
           0, nullptr);
    EV_SET(&changes[1], static_cast<uintptr_t>(fd), EVFILT_WRITE, EV_ADD | EV_CLEAR | EV_RECEIPT, 0,
           0, nullptr);
    struct kevent receipts[2];
    const timespec no_wait{0, 0};
    int n;
    do {
      n = ::kevent(kq_, changes, 2, receipts, 2, &no_wait);
    } while (n < 0 && errno == EINTR);
    if (n < 0) return -errno;
    for (int i = 0; i < n; ++i)
      if ((receipts[i].flags & EV_ERROR) && receipts[i].data != 0)
        return -static_cast<int>(receipts[i].data);
    return 0;
  }

  bool wait(std::int64_t timeout_ns) override {
    // kevent takes a timespec: sub-millisecond timers fire on time.
    timespec ts{static_cast<time_t>(timeout_ns / 1'000'000'000),
                static_cast<long>(timeout_ns % 1'000'000'000)};
    const int cap = static_cast<int>(events_.size());
    int n = ::kevent(kq_, nullptr, 0, events_.data(), cap, timeout_ns < 0 ? nullptr : &ts);
    if (n < 0) return false;  // EINTR: a signal ended the wait early, which is harmless
    bool woken = false;
    for (int i = 0; i < n; ++i) {
      const struct kevent& ev = events_[i];
      if (ev.filter == EVFILT_USER) {
        // EV_CLEAR reset the trigger as it was delivered: a post that lands after the core
        // drained the queue triggers it again, so no wake-up is lost.
        woken = true;
        continue;
      }
      unsigned flags = 0;
      if (ev.filter == EVFILT_READ) flags |= kReadable;
      if (ev.filter == EVFILT_WRITE) flags |= kWritable;
      // EV_EOF: the peer shut its side (read) or the connection is gone (write), with the
      // socket error in fflags; EV_ERROR cannot come from a wait without changes, but if it
      // did, treating it as a hang-up makes the core find the error with its next syscall.
      if (ev.flags & (EV_EOF | EV_ERROR)) flags |= kHangup;
      // One fd's read and write readiness arrive as two kevents: two calls, which the core
      // handles like any other pair of events.
      if (flags != 0) on_ready(static_cast<int>(ev.ident), flags);
    }
    return woken;
  }

  void wake() override {
    // NOTE_FFNOP: trigger without touching the event's user flags (it is 0, spelled out as
    // macOS's and FreeBSD's examples do).
    struct kevent trigger;
    EV_SET(&trigger, kWakeIdent, EVFILT_USER, 0, NOTE_FFNOP | NOTE_TRIGGER, 0, nullptr);
    while (::kevent(kq_, &trigger, 1, nullptr, 0, nullptr) < 0 && errno == EINTR) {
    }
  }

 private:
  int kq_;
  std::vector<struct kevent> events_;
};

}  // namespace

std::unique_ptr<Loop> open_kqueue_loop(const LoopOptions& options, std::string& why) {
  if (options.recv_buffer_size == 0) {
    why = "recv_buffer_size must be at least 1";
    return nullptr;
  }
  int kq = ::kqueue();
  if (kq < 0) {
    why = fmt::format("kqueue: {}", std::strerror(errno));
    return nullptr;
  }
  // kqueue(2) has no close-on-exec flag everywhere (kqueuex/kqueue1 are recent and not on
  // macOS); a kqueue is not inherited by fork, but its descriptor would survive an exec.
  ::fcntl(kq, F_SETFD, FD_CLOEXEC);
  struct kevent user;
  EV_SET(&user, kWakeIdent, EVFILT_USER, EV_ADD | EV_CLEAR, 0, 0, nullptr);
  if (::kevent(kq, &user, 1, nullptr, 0, nullptr) != 0) {
    why = fmt::format("kevent(EVFILT_USER): {}", std::strerror(errno));
    ::close(kq);
    return nullptr;
  }
  return std::make_unique<KqueueLoop>(kq, options);
}

}  // namespace pp::platform
