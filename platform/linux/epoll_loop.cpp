// platform/linux/epoll_loop.cpp -- the epoll backend: the fallback for Linux hosts that block
// io_uring (seccomp profiles, kernel.io_uring_disabled, old kernels).
//
// Everything but watching handles lives in the readiness core (platform/posix/); this file
// registers each fd once, edge-triggered for both directions, and turns epoll events into
// ReadyFlags. post() writes an eventfd that sits level-triggered in the same epoll set.
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <climits>
#include <cstring>
#include <memory>
#include <vector>

#include <fmt/format.h>

#include "platform/linux/backends.h"
#include "platform/posix/readiness_loop.h"

namespace pp::platform {
namespace {

class EpollLoop final : public ReadinessLoop {
 public:
  EpollLoop(int epfd, int wakefd, const LoopOptions& options)
      : ReadinessLoop(options),
        epfd_(epfd),
        wakefd_(wakefd),
        events_(std::clamp<std::uint32_t>(options.queue_depth, 1, 65536)) {}

  ~EpollLoop() override {
    ::close(epfd_);
    ::close(wakefd_);
  }

  std::string_view backend_name() const override { return "epoll"; }

 protected:
  int watch(int fd, bool known) override {
    // Both directions, edge-triggered, registered once per fd: later operations on it cost
    // no epoll_ctl. EPOLLRDHUP reports the peer's half-close.
    epoll_event ev{};
    ev.events = EPOLLIN | EPOLLOUT | EPOLLRDHUP | EPOLLET;
    ev.data.fd = fd;
    // MOD on a registered fd also re-checks readiness, so an edge that came while nothing
    // was waiting is not lost; ENOENT means the registration went with an fd closed behind
    // our back, whose number has been reused.
    int rc = ::epoll_ctl(epfd_, known ? EPOLL_CTL_MOD : EPOLL_CTL_ADD, fd, &ev);
    if (rc != 0 && errno == ENOENT && known)
      rc = ::epoll_ctl(epfd_, EPOLL_CTL_ADD, fd, &ev);
    else if (rc != 0 && errno == EEXIST && !known)
      rc = ::epoll_ctl(epfd_, EPOLL_CTL_MOD, fd, &ev);
    return rc == 0 ? 0 : -errno;
  }

  bool wait(std::int64_t timeout_ns) override {
    int n = wait_events(timeout_ns);
    bool woken = false;
    for (int i = 0; i < n; ++i) {
      const epoll_event& ev = events_[i];
      if (ev.data.fd == wakefd_) {
        woken = true;
        continue;
      }
      std::uint32_t e = ev.events;
      unsigned flags = 0;
      if (e & EPOLLIN) flags |= kReadable;
      if (e & EPOLLOUT) flags |= kWritable;
      if (e & (EPOLLRDHUP | EPOLLHUP | EPOLLERR)) flags |= kHangup;
      on_ready(ev.data.fd, flags);
    }
    if (woken) {
      // Reset the eventfd before the core drains the posts: a post that lands after the
      // drain took the queue writes it again, so no wake-up is lost.
      std::uint64_t count;
      while (::read(wakefd_, &count, sizeof count) < 0 && errno == EINTR) {
      }
    }
    return woken;
  }

  void wake() override {
    std::uint64_t one = 1;
    // EAGAIN means the counter is saturated: the loop is already due to wake.
    while (::write(wakefd_, &one, sizeof one) < 0 && errno == EINTR) {
    }
  }

 private:
  int wait_events(std::int64_t timeout_ns) {
    const int cap = static_cast<int>(events_.size());
    // epoll_pwait2 takes a timespec: sub-millisecond timers fire on time without a timerfd
    // (which would cost a timerfd_settime syscall whenever the earliest deadline changes).
    if (use_pwait2_) {
      timespec ts{timeout_ns / 1'000'000'000, timeout_ns % 1'000'000'000};
      int n =
          ::epoll_pwait2(epfd_, events_.data(), cap, timeout_ns < 0 ? nullptr : &ts, nullptr);
      if (n >= 0) return n;
      if (errno == EINTR) return 0;
      if (errno != ENOSYS && errno != EPERM) return 0;
      use_pwait2_ = false;  // old kernel, or a seccomp profile that does not know it
    }
    // Milliseconds, rounded up so that a timer never fires early (late by < 1 ms instead).
    int ms = -1;
    if (timeout_ns >= 0)
      ms = static_cast<int>(std::min<std::int64_t>((timeout_ns + 999'999) / 1'000'000, INT_MAX));
    int n = ::epoll_wait(epfd_, events_.data(), cap, ms);
    return n < 0 ? 0 : n;
  }

  int epfd_;
  int wakefd_;
  std::vector<epoll_event> events_;
  bool use_pwait2_ = true;  // epoll_pwait2 (Linux 5.11+) until it says ENOSYS/EPERM
};

}  // namespace

std::unique_ptr<Loop> open_epoll_loop(const LoopOptions& options, std::string& why) {
  if (options.recv_buffer_size == 0) {
    why = "recv_buffer_size must be at least 1";
    return nullptr;
  }
  int epfd = ::epoll_create1(EPOLL_CLOEXEC);
  if (epfd < 0) {
    why = fmt::format("epoll_create1: {}", std::strerror(errno));
    return nullptr;
  }
  int wakefd = ::eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
  if (wakefd < 0) {
    why = fmt::format("eventfd: {}", std::strerror(errno));
    ::close(epfd);
    return nullptr;
  }
  // Level-triggered: the wake-up stays visible until wait() reads the counter.
  epoll_event ev{};
  ev.events = EPOLLIN;
  ev.data.fd = wakefd;
  if (::epoll_ctl(epfd, EPOLL_CTL_ADD, wakefd, &ev) != 0) {
    why = fmt::format("epoll_ctl(eventfd): {}", std::strerror(errno));
    ::close(wakefd);
    ::close(epfd);
    return nullptr;
  }
  return std::make_unique<EpollLoop>(epfd, wakefd, options);
}

}  // namespace pp::platform
