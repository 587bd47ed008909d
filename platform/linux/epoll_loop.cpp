// platform/linux/epoll_loop.cpp -- the epoll backend: the completion model emulated on
// readiness.
//
// Every operation is performed by its own syscall when its handle is ready. Each fd has a
// read side (accept, recv) and a write side (send, sendfile, connect), each a FIFO of the
// operations waiting on it; only the head of a side runs, so sends on one socket never
// interleave and recvs are served in submission order. A new operation on an empty side is
// tried at once (most sends and many recvs finish without an epoll round trip); one that
// meets EAGAIN waits for an edge-triggered event. Callbacks run only from run_once, and while
// they run the loop's structures are never changed by them: submit() only appends to the
// submission queue, which run_once processes at its start. That is what makes it safe for a
// callback to submit, cancel, close, or free its operation after the last completion.
//
// Operation's backend-private fields, as used here:
//   state        where the operation lives (Where) plus a few flags
//   backend_slot the next operation in the list it is on, or its index in the timer heap
//   sent         send: bytes of slices[slice_index] already sent; sendfile: bytes sent;
//                timeout: the deadline (steady clock, ns)
//   slice_index  send: the first slice not yet fully sent
#include <fcntl.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/sendfile.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <cassert>
#include <cerrno>
#include <climits>
#include <cstring>
#include <memory>
#include <vector>

#include <fmt/format.h>

#include "core/post_queue.h"
#include "platform/linux/backends.h"

namespace pp::platform {
namespace {

// Where an operation is while the loop owns it (low byte of Operation::state). kIdle is 0,
// which is what Operation's prep_* helpers leave, so a never-submitted or finished operation
// reads as idle (cancel answers -ENOENT for it).
enum Where : std::uint32_t { kIdle = 0, kQueued = 1, kReadSide = 2, kWriteSide = 3, kTimer = 4 };
constexpr std::uint32_t kWhereMask = 0xff;
// Cancelled while still in the submission queue: completes with -ECANCELED when reached.
constexpr std::uint32_t kCancelRequested = 1u << 8;
// connect(2) has been issued; what is left is waiting for writability and reading SO_ERROR.
constexpr std::uint32_t kConnectStarted = 1u << 9;

// Reads (recv or accept) per fd per turn. Edge-triggered epoll asks us to read until EAGAIN,
// but a peer that sends as fast as we read would then keep run_once on one socket forever
// and starve every other connection (and the timers). After this many reads the fd moves to
// a backlog that the next turn serves first -- without waiting for a new edge, which would
// never come since the socket was not drained. 16 x 16 KiB buffers is 256 KiB per turn.
constexpr int kReadBudget = 16;
// Accepts per listener per turn, for the same reason: a connection storm must not starve
// the connections already accepted.
constexpr int kAcceptBudget = 64;
// iovecs per sendmsg; more slices than this go out over several calls.
constexpr int kMaxIov = 64;
// sendfile(2) moves at most this much per call (the kernel's MAX_RW_COUNT).
constexpr std::uint64_t kMaxSendfileChunk = 0x7ffff000;
// What a step returns when the syscall said EAGAIN: wait for readiness.
constexpr std::int64_t kAgain = INT64_MIN;

std::uint32_t where(const Operation& op) {
  return op.state & kWhereMask;
}
Operation* next_of(const Operation& op) {
  return reinterpret_cast<Operation*>(op.backend_slot);
}
void set_next(Operation& op, Operation* next) {
  op.backend_slot = reinterpret_cast<std::uintptr_t>(next);
}

std::int64_t now_ns() {
  timespec ts;
  ::clock_gettime(CLOCK_MONOTONIC, &ts);
  return std::int64_t{ts.tv_sec} * 1'000'000'000 + ts.tv_nsec;
}

/// An intrusive FIFO of operations, linked through backend_slot (no allocation).
struct OpList {
  Operation* head = nullptr;
  Operation* tail = nullptr;

  bool empty() const { return head == nullptr; }
  void push_back(Operation& op) {
    set_next(op, nullptr);
    if (tail)
      set_next(*tail, &op);
    else
      head = &op;
    tail = &op;
  }
  Operation* pop_front() {
    Operation* op = head;
    if (op) {
      head = next_of(*op);
      if (!head) tail = nullptr;
    }
    return op;
  }
  /// Unlinks `op` if it is on this list (linear: lists per fd are short and cancel is rare).
  bool remove(Operation& op) {
    Operation* prev = nullptr;
    for (Operation* it = head; it; prev = it, it = next_of(*it)) {
      if (it != &op) continue;
      if (prev)
        set_next(*prev, next_of(op));
      else
        head = next_of(op);
      if (tail == &op) tail = prev;
      return true;
    }
    return false;
  }
};

/// What the loop knows about one fd.
struct FdState {
  OpList read;   // accept, recv
  OpList write;  // send, sendfile, connect
  /// Believed to be in the epoll set. Cleared by our close and when accept hands out the
  /// number afresh; a stale true (the caller closed the fd behind our back) is caught by
  /// re-arming with EPOLL_CTL_MOD, which fails with ENOENT, whenever an idle fd must wait.
  bool registered = false;
  /// Queued on the backlog (its read side stopped at the budget, not at EAGAIN).
  bool in_backlog = false;
};

/// How driving one side of an fd ended.
enum class Drive { drained, waiting, yielded };

class EpollLoop final : public Loop {
 public:
  EpollLoop(int epfd, int wakefd, const LoopOptions& options)
      : epfd_(epfd),
        wakefd_(wakefd),
        events_(std::clamp<std::uint32_t>(options.queue_depth, 1, 65536)),
        recv_size_(options.recv_buffer_size),
        recv_buf_(new std::byte[recv_size_]) {
    fds_.resize(1024);
  }

  ~EpollLoop() override {
    // Operations still in flight never complete: the owner drains the loop (cancel or close
    // everything, then run until their last callbacks) before destroying it.
    ::close(epfd_);
    ::close(wakefd_);
  }

  std::string_view backend_name() const override { return "epoll"; }

  void submit(Operation& op) override {
    assert(where(op) == kIdle && "operation submitted while still in flight");
    op.state = kQueued;
    sq_.push_back(op);
  }

  int run_once(std::chrono::nanoseconds max_wait) override;

  void post(std::function<void()> fn) override {
    if (posts_.push(std::move(fn))) {
      std::uint64_t one = 1;
      // EAGAIN means the counter is saturated: the loop is already due to wake.
      while (::write(wakefd_, &one, sizeof one) < 0 && errno == EINTR) {
      }
    }
  }

 private:
  void complete(Operation& op, std::int64_t result, bool more = false,
                std::span<const std::byte> data = {}) {
    ++ran_;
    // The final completion hands the operation back before its callback runs: the callback
    // may resubmit or free it, and we never touch it again.
    if (!more) op.state = kIdle;
    if (CompletionFn cb = op.callback) cb(op, Completion{result, data, more});
  }

  FdState& fd_state(int fd) {
    if (static_cast<std::size_t>(fd) >= fds_.size())
      fds_.resize(std::max(fds_.size() * 2, static_cast<std::size_t>(fd) + 1));
    return fds_[fd];
  }

  void start(Operation& op);
  void start_on_side(Operation& op, bool read_side);
  Drive drive_read(int fd, FdState& s, bool trust_short_read);
  Drive drive_write(int fd, FdState& s, bool writable_event);
  std::int64_t step_send(int fd, Operation& op);
  std::int64_t step_sendfile(int fd, Operation& op);
  std::int64_t step_connect(int fd, Operation& op, bool writable_event);
  void arm(int fd, FdState& s);
  void fail_side(OpList& side, std::int64_t result);
  void do_cancel(Operation& op);
  void do_close(Operation& op);
  void to_backlog(int fd, FdState& s) {
    if (s.in_backlog) return;
    s.in_backlog = true;
    backlog_.push_back(fd);
  }
  int wait(std::int64_t timeout_ns);
  void dispatch(const epoll_event& ev);
  void expire_timers(std::int64_t now);

  // Timer min-heap on the deadline (op.sent); op.backend_slot holds the heap index, so a
  // cancel removes in O(log n).
  void heap_set(std::size_t i, Operation* op) {
    heap_[i] = op;
    op->backend_slot = i;
  }
  void heap_up(std::size_t i);
  void heap_down(std::size_t i);
  void heap_push(Operation& op) {
    heap_.push_back(&op);
    heap_set(heap_.size() - 1, &op);
    heap_up(heap_.size() - 1);
  }
  void heap_erase(std::size_t i);

  int epfd_;
  int wakefd_;
  std::vector<epoll_event> events_;
  std::uint32_t recv_size_;
  // One receive buffer is the whole pool this backend needs: a recv's data is lent only for
  // the duration of its callback, callbacks never nest, and the buffer is free again when
  // the callback returns. (io_uring needs recv_buffer_count buffers because the kernel fills
  // them while we are elsewhere; here the syscall runs on our thread, one at a time.)
  std::unique_ptr<std::byte[]> recv_buf_;
  std::vector<FdState> fds_;  // indexed by fd
  OpList sq_;                 // submitted, not yet started
  std::vector<int> backlog_;  // fds whose read side stopped at the budget
  std::vector<int> backlog_run_;
  std::vector<Operation*> heap_;
  PostQueue posts_;
  int ran_ = 0;
  bool running_ = false;
  bool use_pwait2_ = true;  // epoll_pwait2 (Linux 5.11+) until it says ENOSYS/EPERM
};

int EpollLoop::run_once(std::chrono::nanoseconds max_wait) {
  // run_once from inside a callback would reuse the receive buffer the outer callback is
  // reading, and re-enter lists being walked: refuse it.
  if (running_) return 0;
  running_ = true;
  ran_ = 0;

  // 1. Start what was submitted since the last turn (sends go out here, before we wait).
  //    Only this batch: operations submitted by the callbacks it runs wait for the next turn,
  //    so a callback that keeps resubmitting cannot keep us here.
  OpList batch = sq_;
  sq_ = OpList{};
  while (Operation* op = batch.pop_front()) start(*op);

  // 2. Read sides that stopped at their budget last turn.
  if (!backlog_.empty()) {
    backlog_run_.swap(backlog_);
    for (int fd : backlog_run_) {
      FdState& s = fds_[fd];
      s.in_backlog = false;
      if (!s.read.empty() && drive_read(fd, s, false) == Drive::yielded) to_backlog(fd, s);
    }
    backlog_run_.clear();
  }

  // 3. Wait: not at all if there is work already, else until the first timer or max_wait.
  std::int64_t timeout = max_wait.count() < 0 ? -1 : max_wait.count();
  if (ran_ > 0 || !sq_.empty() || !backlog_.empty()) {
    timeout = 0;
  } else if (!heap_.empty()) {
    std::int64_t until =
        std::max<std::int64_t>(static_cast<std::int64_t>(heap_[0]->sent) - now_ns(), 0);
    if (timeout < 0 || until < timeout) timeout = until;
  }
  int n = wait(timeout);

  // 4. Dispatch readiness, then timers, then posted functions.
  bool woken = false;
  for (int i = 0; i < n; ++i) {
    if (events_[i].data.fd == wakefd_)
      woken = true;
    else
      dispatch(events_[i]);
  }
  if (!heap_.empty()) expire_timers(now_ns());
  int ran = ran_;
  if (woken) {
    // Reset the eventfd before draining: a post that lands after the drain took the queue
    // writes it again, so no wake-up is lost.
    std::uint64_t count;
    while (::read(wakefd_, &count, sizeof count) < 0 && errno == EINTR) {
    }
    ran += posts_.drain();
  }
  running_ = false;
  return ran;
}

int EpollLoop::wait(std::int64_t timeout_ns) {
  const int cap = static_cast<int>(events_.size());
  // epoll_pwait2 takes a timespec: sub-millisecond timers fire on time without a timerfd
  // (which would cost a timerfd_settime syscall whenever the earliest deadline changes).
  if (use_pwait2_) {
    timespec ts{timeout_ns / 1'000'000'000, timeout_ns % 1'000'000'000};
    int n = ::epoll_pwait2(epfd_, events_.data(), cap, timeout_ns < 0 ? nullptr : &ts, nullptr);
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

void EpollLoop::dispatch(const epoll_event& ev) {
  int fd = ev.data.fd;
  if (fd < 0 || static_cast<std::size_t>(fd) >= fds_.size()) return;
  FdState& s = fds_[fd];
  std::uint32_t e = ev.events;
  if ((e & (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR)) && !s.read.empty()) {
    // A short read means the socket was drained at that instant, and data arriving later
    // raises a new edge, so we may stop there without paying for the EAGAIN read -- unless
    // this event already carried the hang-up or an error, whose edge we have now consumed.
    bool trust_short = !(e & (EPOLLRDHUP | EPOLLHUP | EPOLLERR));
    if (drive_read(fd, s, trust_short) == Drive::yielded) to_backlog(fd, s);
  }
  if ((e & (EPOLLOUT | EPOLLHUP | EPOLLERR)) && !s.write.empty()) drive_write(fd, s, true);
}

void EpollLoop::expire_timers(std::int64_t now) {
  // Timers submitted by these callbacks go to the submission queue, not the heap, so this
  // loop ends.
  while (!heap_.empty() && static_cast<std::int64_t>(heap_[0]->sent) <= now) {
    Operation* op = heap_[0];
    heap_erase(0);
    complete(*op, 0);
  }
}

void EpollLoop::start(Operation& op) {
  if (op.state & kCancelRequested) {
    complete(op, -ECANCELED);
    return;
  }
  switch (op.code) {
    case OpCode::accept:
    case OpCode::recv:
      start_on_side(op, true);
      return;
    case OpCode::send:
    case OpCode::sendfile:
    case OpCode::connect:
      start_on_side(op, false);
      return;
    case OpCode::timeout:
      op.state = kTimer;
      op.sent =
          static_cast<std::uint64_t>(now_ns() + std::max<std::int64_t>(op.duration.count(), 0));
      heap_push(op);
      return;
    case OpCode::cancel:
      do_cancel(op);
      return;
    case OpCode::close:
      do_close(op);
      return;
  }
  complete(op, -EINVAL);
}

void EpollLoop::start_on_side(Operation& op, bool read_side) {
  if (op.fd < 0 || op.fd > INT_MAX) {
    complete(op, -EBADF);
    return;
  }
  int fd = static_cast<int>(op.fd);
  FdState& s = fd_state(fd);
  bool was_idle = s.read.empty() && s.write.empty();
  OpList& side = read_side ? s.read : s.write;
  bool first = side.empty();
  op.state = read_side ? kReadSide : kWriteSide;
  side.push_back(op);
  // Behind others on its side it waits its turn; first in line it is tried at once.
  if (!first) return;
  Drive d = read_side ? drive_read(fd, s, false) : drive_write(fd, s, false);
  if (d == Drive::drained) return;
  if (was_idle) arm(fd, s);
  if (d == Drive::yielded) to_backlog(fd, s);
}

void EpollLoop::arm(int fd, FdState& s) {
  // Both directions, edge-triggered, registered once per fd: later operations on it cost no
  // epoll_ctl. EPOLLRDHUP reports the peer's half-close.
  epoll_event ev{};
  ev.events = EPOLLIN | EPOLLOUT | EPOLLRDHUP | EPOLLET;
  ev.data.fd = fd;
  // MOD on a registered fd also re-checks readiness, so an edge that came while nothing was
  // waiting is not lost; ENOENT means the registration went with an fd closed behind our
  // back, whose number has been reused.
  int rc = ::epoll_ctl(epfd_, s.registered ? EPOLL_CTL_MOD : EPOLL_CTL_ADD, fd, &ev);
  if (rc != 0 && errno == ENOENT && s.registered)
    rc = ::epoll_ctl(epfd_, EPOLL_CTL_ADD, fd, &ev);
  else if (rc != 0 && errno == EEXIST && !s.registered)
    rc = ::epoll_ctl(epfd_, EPOLL_CTL_MOD, fd, &ev);
  if (rc == 0) {
    s.registered = true;
    return;
  }
  // Not pollable (a regular file: EPERM) or bad: what waits on it can never run.
  std::int64_t err = -errno;
  s.registered = false;
  fail_side(s.read, err);
  fail_side(s.write, err);
}

void EpollLoop::fail_side(OpList& side, std::int64_t result) {
  while (Operation* op = side.pop_front()) complete(*op, result);
}

Drive EpollLoop::drive_read(int fd, FdState& s, bool trust_short_read) {
  int budget = kReadBudget;
  int accepts = kAcceptBudget;
  while (Operation* op = s.read.head) {
    if (op->code == OpCode::accept) {
      int conn = ::accept4(fd, nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
      if (conn < 0) {
        int e = errno;
        // The connection died in the backlog (or a signal came): not the listener's error;
        // ending a multishot accept for it would only make the server resubmit.
        if (e == EINTR || e == ECONNABORTED) continue;
        if (e == EAGAIN || e == EWOULDBLOCK) return Drive::waiting;
        s.read.pop_front();
        complete(*op, -e);
        continue;
      }
      // A fresh number: whatever we knew about an earlier fd with it is stale.
      if (static_cast<std::size_t>(conn) < fds_.size()) fds_[conn].registered = false;
      if (!op->multishot) {
        s.read.pop_front();
        complete(*op, conn);
        continue;
      }
      complete(*op, conn, true);
      if (--accepts == 0) return Drive::yielded;
      continue;
    }
    // recv
    ssize_t n = ::recv(fd, recv_buf_.get(), recv_size_, 0);
    if (n > 0) {
      std::span<const std::byte> data(recv_buf_.get(), static_cast<std::size_t>(n));
      if (!op->multishot) {
        s.read.pop_front();
        complete(*op, n, false, data);
      } else {
        complete(*op, n, true, data);
      }
      if (--budget == 0) return s.read.empty() ? Drive::drained : Drive::yielded;
      if (trust_short_read && static_cast<std::size_t>(n) < recv_size_)
        return s.read.empty() ? Drive::drained : Drive::waiting;
      continue;
    }
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) return Drive::waiting;
    // EOF (0) or an error ends this recv; a recv queued behind it sees the same on its turn.
    s.read.pop_front();
    complete(*op, n == 0 ? 0 : -errno);
  }
  return Drive::drained;
}

Drive EpollLoop::drive_write(int fd, FdState& s, bool writable_event) {
  while (Operation* op = s.write.head) {
    std::int64_t r;
    switch (op->code) {
      case OpCode::send:
        r = step_send(fd, *op);
        break;
      case OpCode::sendfile:
        r = step_sendfile(fd, *op);
        break;
      case OpCode::connect:
        r = step_connect(fd, *op, writable_event);
        break;
      default:
        r = -EINVAL;
        break;
    }
    if (r == kAgain) return Drive::waiting;
    s.write.pop_front();
    complete(*op, r);
  }
  return Drive::drained;
}

std::int64_t EpollLoop::step_send(int fd, Operation& op) {
  const auto& slices = op.slices;
  for (;;) {
    iovec iov[kMaxIov];
    int count = 0;
    for (std::size_t j = op.slice_index; j < slices.size() && count < kMaxIov; ++j) {
      std::size_t skip = j == op.slice_index ? op.sent : 0;
      if (slices[j].size > skip)
        iov[count++] = {
            const_cast<std::byte*>(static_cast<const std::byte*>(slices[j].data)) + skip,
            slices[j].size - skip};
    }
    if (count == 0) {
      std::uint64_t total = 0;
      for (const auto& sl : slices) total += sl.size;
      return static_cast<std::int64_t>(total);
    }
    msghdr msg{};
    msg.msg_iov = iov;
    msg.msg_iovlen = static_cast<std::size_t>(count);
    // MSG_NOSIGNAL: a vanished peer gives EPIPE, not a process-killing SIGPIPE.
    ssize_t n = ::sendmsg(fd, &msg, MSG_NOSIGNAL);
    if (n < 0) {
      if (errno == EINTR) continue;
      if (errno == EAGAIN || errno == EWOULDBLOCK) return kAgain;
      return -errno;
    }
    // Advance (slice_index, sent) past the n bytes that went out.
    auto left = static_cast<std::uint64_t>(n);
    while (left > 0 && op.slice_index < slices.size()) {
      std::uint64_t rest = slices[op.slice_index].size - op.sent;
      if (left < rest) {
        op.sent += left;
        left = 0;
      } else {
        left -= rest;
        ++op.slice_index;
        op.sent = 0;
      }
    }
  }
}

std::int64_t EpollLoop::step_sendfile(int fd, Operation& op) {
  while (op.sent < op.length) {
    if (op.offset + op.sent > static_cast<std::uint64_t>(INT64_MAX)) return -EINVAL;
    off_t off = static_cast<off_t>(op.offset + op.sent);
    std::size_t count = std::min(op.length - op.sent, kMaxSendfileChunk);
    ssize_t n = ::sendfile(fd, static_cast<int>(op.file), &off, count);
    if (n > 0) {
      op.sent += static_cast<std::uint64_t>(n);
      continue;
    }
    if (n == 0) break;  // end of file: the result is what was sent
    if (errno == EINTR) continue;
    if (errno == EAGAIN || errno == EWOULDBLOCK) return kAgain;
    return -errno;
  }
  return static_cast<std::int64_t>(op.sent);
}

std::int64_t EpollLoop::step_connect(int fd, Operation& op, bool writable_event) {
  if (!(op.state & kConnectStarted)) {
    if (!op.endpoint) return -EINVAL;
    const auto* sa = reinterpret_cast<const sockaddr*>(op.endpoint->storage);
    if (::connect(fd, sa, op.endpoint->size) == 0) return 0;
    // EINTR on a non-blocking connect: the attempt goes on asynchronously, like EINPROGRESS.
    if (errno != EINPROGRESS && errno != EINTR) return -errno;
    op.state |= kConnectStarted;
    return kAgain;
  }
  // Before the socket becomes writable (or reports an error) SO_ERROR is 0 even though the
  // handshake is still under way, so only a writability event may conclude it.
  if (!writable_event) return kAgain;
  int err = 0;
  socklen_t len = sizeof err;
  if (::getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) != 0) return -errno;
  return err == 0 ? 0 : -err;
}

void EpollLoop::do_cancel(Operation& op) {
  Operation* victim = op.target;
  std::int64_t result = -ENOENT;
  if (victim && victim != &op) {
    switch (where(*victim)) {
      case kQueued:
        // Submitted after this cancel in the same batch: it completes when reached.
        victim->state |= kCancelRequested;
        result = 0;
        break;
      case kReadSide:
      case kWriteSide: {
        int fd = static_cast<int>(victim->fd);
        FdState& s = fds_[fd];
        bool read_side = where(*victim) == kReadSide;
        OpList& side = read_side ? s.read : s.write;
        bool was_head = side.head == victim;
        if (side.remove(*victim)) {
          complete(*victim, -ECANCELED);
          result = 0;
          // The next in line never ran and no edge may come for it: try it now.
          if (was_head && !side.empty()) {
            Drive d = read_side ? drive_read(fd, s, false) : drive_write(fd, s, false);
            if (d == Drive::yielded) to_backlog(fd, s);
          }
        }
        break;
      }
      case kTimer:
        heap_erase(victim->backend_slot);
        complete(*victim, -ECANCELED);
        result = 0;
        break;
      default:
        break;  // idle: finished (or never submitted)
    }
  }
  complete(op, result);
}

void EpollLoop::do_close(Operation& op) {
  if (op.fd < 0 || op.fd > INT_MAX) {
    complete(op, -EBADF);
    return;
  }
  int fd = static_cast<int>(op.fd);
  if (static_cast<std::size_t>(fd) < fds_.size()) {
    FdState& s = fds_[fd];
    fail_side(s.read, -ECANCELED);
    fail_side(s.write, -ECANCELED);
    // close(2) drops the epoll registration with the last reference to the file; skipping
    // EPOLL_CTL_DEL saves a syscall per connection.
    s.registered = false;
  }
  // Linux releases the fd even when close reports EINTR: retrying could close a reused number.
  int rc = ::close(fd);
  complete(op, rc == 0 || errno == EINTR ? 0 : -errno);
}

void EpollLoop::heap_up(std::size_t i) {
  Operation* op = heap_[i];
  while (i > 0) {
    std::size_t parent = (i - 1) / 2;
    if (heap_[parent]->sent <= op->sent) break;
    heap_set(i, heap_[parent]);
    i = parent;
  }
  heap_set(i, op);
}

void EpollLoop::heap_down(std::size_t i) {
  Operation* op = heap_[i];
  const std::size_t n = heap_.size();
  for (;;) {
    std::size_t child = 2 * i + 1;
    if (child >= n) break;
    if (child + 1 < n && heap_[child + 1]->sent < heap_[child]->sent) ++child;
    if (op->sent <= heap_[child]->sent) break;
    heap_set(i, heap_[child]);
    i = child;
  }
  heap_set(i, op);
}

void EpollLoop::heap_erase(std::size_t i) {
  Operation* last = heap_.back();
  heap_.pop_back();
  if (i == heap_.size()) return;
  heap_set(i, last);
  heap_down(i);
  heap_up(i);
}

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
  // Level-triggered: the wake-up stays visible until run_once reads the counter.
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
