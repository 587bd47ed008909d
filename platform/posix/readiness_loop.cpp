// platform/posix/readiness_loop.cpp -- the completion model emulated on readiness.
//
// Every operation is performed by its own syscall when its handle is ready. Each fd has a
// read side (accept, recv) and a write side (connect, then one send or sendfile at a time),
// each a FIFO of the operations waiting on it; only the head of a side runs. A new operation
// on an empty side is tried at once (most sends and many recvs finish without a round trip
// through the backend); one that meets EAGAIN waits for readiness. Callbacks run only from
// run_once, and while they run the loop's structures are never changed by them: submit()
// only appends to the submission queue, which run_once processes at its start. That is what
// makes it safe for a callback to submit, cancel, close, or free its operation after its
// last completion.
#include "platform/posix/readiness_loop.h"

#include <fcntl.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <cassert>
#include <cerrno>
#include <climits>

#include "platform/posix/send_file.h"
#include "platform/posix/socket_flags.h"
#include "platform/posix/sigpipe.h"

#ifndef MSG_NOSIGNAL
// macOS has no MSG_NOSIGNAL; its sockets get SO_NOSIGPIPE where they are made instead.
#define MSG_NOSIGNAL 0
#endif

namespace pp::platform {
namespace {

// Where an operation is while the loop owns it (low byte of the state). kIdle is 0, which is
// what Operation's prep_* helpers leave, so a never-submitted or finished operation reads as
// idle (cancel answers -ENOENT for it).
enum Where : std::uint32_t { kIdle = 0, kQueued = 1, kReadSide = 2, kWriteSide = 3, kTimer = 4 };
constexpr std::uint32_t kWhereMask = 0xff;
// Cancelled while still in the submission queue: completes with -ECANCELED when reached.
constexpr std::uint32_t kCancelRequested = 1u << 8;
// connect(2) has been issued; what is left is waiting for writability and reading SO_ERROR.
constexpr std::uint32_t kConnectStarted = 1u << 9;

// Reads (recv or accept) per fd per turn. Edge-triggered readiness asks us to read until
// EAGAIN, but a peer that sends as fast as we read would then keep run_once on one socket
// forever and starve every other connection (and the timers). After this many reads the fd
// moves to a backlog that the next turn serves first -- without waiting for a new edge,
// which would never come since the socket was not drained. 16 x 16 KiB is 256 KiB per turn.
constexpr int kReadBudget = 16;
// Accepts per listener per turn, for the same reason: a connection storm must not starve
// the connections already accepted.
constexpr int kAcceptBudget = 64;
// iovecs per sendmsg; more slices than this go out over several calls.
constexpr int kMaxIov = 64;
// What a step returns when the syscall said EAGAIN: wait for readiness.
constexpr std::int64_t kAgain = INT64_MIN;

/// What the core keeps in each Operation while it owns it.
struct OpState {
  Operation* next;         // the next operation on the list this one is on
  std::uint64_t progress;  // send: bytes of slices[slice_index] sent; sendfile: bytes sent;
                           // timeout: the deadline (monotonic ns)
  std::uint64_t heap_index;
  std::uint32_t slice_index;  // send: the first slice not yet fully sent
  std::uint32_t state;        // Where, plus the flags above
};
OpState& S(Operation& op) { return backend_state<OpState>(op); }
const OpState& S(const Operation& op) { return backend_state<OpState>(op); }
std::uint32_t where(const Operation& op) { return S(op).state & kWhereMask; }
bool is_output(const Operation& op) {
  return op.code == OpCode::send || op.code == OpCode::sendfile;
}

/// A new connection from `listener`, non-blocking and close-on-exec, or -1 with errno set.
int accept_connection(int listener) {
#if defined(__APPLE__)
  // macOS has no accept4: set the flags afterwards.
  int fd = ::accept(listener, nullptr, nullptr);
  if (fd >= 0) set_engine_socket_flags(fd);
  return fd;
#else
  return ::accept4(listener, nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
#endif
}

}  // namespace

std::int64_t monotonic_ns() {
  timespec ts;
  ::clock_gettime(CLOCK_MONOTONIC, &ts);
  return std::int64_t{ts.tv_sec} * 1'000'000'000 + ts.tv_nsec;
}

/// An intrusive FIFO of operations, linked through OpState::next (no allocation).
struct ReadinessLoop::OpList {
  Operation* head = nullptr;
  Operation* tail = nullptr;

  bool empty() const { return head == nullptr; }
  void push_back(Operation& op) {
    S(op).next = nullptr;
    if (tail)
      S(*tail).next = &op;
    else
      head = &op;
    tail = &op;
  }
  Operation* pop_front() {
    Operation* op = head;
    if (op) {
      head = S(*op).next;
      if (!head) tail = nullptr;
    }
    return op;
  }
  /// Unlinks `op` if it is on this list (linear: lists per fd are short and cancel is rare).
  bool remove(Operation& op) {
    Operation* prev = nullptr;
    for (Operation* it = head; it; prev = it, it = S(*it).next) {
      if (it != &op) continue;
      if (prev)
        S(*prev).next = S(op).next;
      else
        head = S(op).next;
      if (tail == &op) tail = prev;
      return true;
    }
    return false;
  }
};

struct ReadinessLoop::FdState {
  OpList read;   // accept, recv
  OpList write;  // connect, send, sendfile
  /// The backend watches this number (see `watch`). Cleared by our close and when accept
  /// hands the number out afresh.
  bool known = false;
  /// Queued on the backlog (its read side stopped at the budget, not at EAGAIN).
  bool in_backlog = false;
};

ReadinessLoop::ReadinessLoop(const LoopOptions& options)
    : recv_size_(options.recv_buffer_size),
      recv_buf_(new std::byte[options.recv_buffer_size]),
      sq_(std::make_unique<OpList>()) {
  fds_.resize(1024);
}

// Operations still in flight never complete: the owner drains the loop (cancel or close
// everything, then run until their last callbacks) before destroying it.
ReadinessLoop::~ReadinessLoop() = default;

ReadinessLoop::FdState& ReadinessLoop::fd_state(int fd) {
  if (static_cast<std::size_t>(fd) >= fds_.size())
    fds_.resize(std::max(fds_.size() * 2, static_cast<std::size_t>(fd) + 1));
  return fds_[fd];
}

void ReadinessLoop::submit(Operation& op) {
  assert(where(op) == kIdle && "operation submitted while still in flight");
  S(op) = OpState{};
  S(op).state = kQueued;
  sq_->push_back(op);
}

void ReadinessLoop::post(std::function<void()> fn) {
  // Only the first post after a drain wakes the loop; the drain takes everything queued.
  if (posts_.push(std::move(fn))) wake();
}

void ReadinessLoop::complete(Operation& op, std::int64_t result, bool more,
                             std::span<const std::byte> data) {
  ++ran_;
  // The final completion hands the operation back before its callback runs: the callback
  // may resubmit or free it, and we never touch it again.
  if (!more) S(op).state = kIdle;
  if (CompletionFn cb = op.callback) cb(op, Completion{result, data, more});
}

void ReadinessLoop::to_backlog(int fd, FdState& s) {
  if (s.in_backlog) return;
  s.in_backlog = true;
  backlog_.push_back(fd);
}

int ReadinessLoop::run_once(std::chrono::nanoseconds max_wait) {
  // run_once from inside a callback would reuse the receive buffer the outer callback is
  // reading, and re-enter lists being walked: refuse it.
  if (running_) return 0;
  running_ = true;
  if (!sigpipe_blocked_) {
    // The thread that drives the loop: see platform/posix/sigpipe.h.
    block_sigpipe_on_this_thread();
    sigpipe_blocked_ = true;
  }
  ran_ = 0;

  // 1. Start what was submitted since the last turn (sends go out here, before we wait).
  //    Only this batch: operations submitted by the callbacks it runs wait for the next turn,
  //    so a callback that keeps resubmitting cannot keep us here.
  OpList batch = *sq_;
  *sq_ = OpList{};
  while (Operation* op = batch.pop_front()) start(*op);

  // 2. Read sides that stopped at their budget last turn.
  if (!backlog_.empty()) {
    backlog_run_.swap(backlog_);
    for (int fd : backlog_run_) {
      FdState& s = fds_[fd];
      s.in_backlog = false;
      if (!s.read.empty()) drive_side(fd, s, true, false);
    }
    backlog_run_.clear();
  }

  // 3. Wait: not at all if there is work already, else until the first timer or max_wait.
  std::int64_t timeout = max_wait.count() < 0 ? -1 : max_wait.count();
  if (ran_ > 0 || !sq_->empty() || !backlog_.empty()) {
    timeout = 0;
  } else if (!heap_.empty()) {
    std::int64_t until = std::max<std::int64_t>(
        static_cast<std::int64_t>(S(*heap_[0]).progress) - monotonic_ns(), 0);
    if (timeout < 0 || until < timeout) timeout = until;
  }
  // 4. The backend dispatches readiness through on_ready; then timers and posted functions.
  bool woken = wait(timeout);
  if (!heap_.empty()) expire_timers(monotonic_ns());
  int ran = ran_;
  if (woken) ran += posts_.drain();
  running_ = false;
  return ran;
}

void ReadinessLoop::on_ready(int fd, unsigned flags) {
  if (fd < 0 || static_cast<std::size_t>(fd) >= fds_.size()) return;
  FdState& s = fds_[fd];
  if ((flags & (kReadable | kHangup)) && !s.read.empty()) {
    // A short read means the socket was drained at that instant, and data arriving later
    // raises a new edge, so we may stop there without paying for the EAGAIN read -- unless
    // this event already carried the hang-up or an error, whose edge we have now consumed.
    Drive d = drive_read(fd, s, !(flags & kHangup));
    if (d == Drive::yielded) to_backlog(fd, s);
    if (d == Drive::waiting) await(fd, kReadable);
  }
  if ((flags & (kWritable | kHangup)) && !s.write.empty()) {
    if (drive_write(fd, s, true) == Drive::waiting) await(fd, kWritable);
  }
}

void ReadinessLoop::drive_side(int fd, FdState& s, bool read_side, bool event) {
  Drive d = read_side ? drive_read(fd, s, false) : drive_write(fd, s, event);
  if (d == Drive::yielded) to_backlog(fd, s);
  if (d == Drive::waiting) await(fd, read_side ? kReadable : kWritable);
}

void ReadinessLoop::expire_timers(std::int64_t now) {
  // Timers submitted by these callbacks go to the submission queue, not the heap, so this
  // loop ends.
  while (!heap_.empty() && static_cast<std::int64_t>(S(*heap_[0]).progress) <= now) {
    Operation* op = heap_[0];
    heap_erase(0);
    complete(*op, 0);
  }
}

void ReadinessLoop::start(Operation& op) {
  if (S(op).state & kCancelRequested) {
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
      S(op).state = kTimer;
      S(op).progress = static_cast<std::uint64_t>(
          monotonic_ns() + std::max<std::int64_t>(op.duration.count(), 0));
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

void ReadinessLoop::start_on_side(Operation& op, bool read_side) {
  if (op.fd < 0 || op.fd > INT_MAX) {
    complete(op, -EBADF);
    return;
  }
  int fd = static_cast<int>(op.fd);
  FdState& s = fd_state(fd);
  if (is_output(op)) {
    // The caller keeps one output in flight per socket (core/outbound.h does): two would
    // interleave their bytes after a partial send. Refuse the second rather than queue it.
    for (Operation* it = s.write.head; it; it = S(*it).next)
      if (is_output(*it)) {
        complete(op, -EBUSY);
        return;
      }
  }
  bool was_idle = s.read.empty() && s.write.empty();
  OpList& side = read_side ? s.read : s.write;
  bool first = side.empty();
  S(op).state = read_side ? kReadSide : kWriteSide;
  side.push_back(op);
  // Behind others on its side it waits its turn; first in line it is tried at once.
  if (!first) return;
  Drive d = read_side ? drive_read(fd, s, false) : drive_write(fd, s, false);
  if (d == Drive::drained) return;
  if (was_idle) {
    int rc = watch(fd, s.known);
    if (rc != 0) {
      // Not watchable (a regular file under epoll: EPERM) or bad: what waits can never run.
      s.known = false;
      fail_side(s.read, rc);
      fail_side(s.write, rc);
      return;
    }
    s.known = true;
  }
  if (d == Drive::yielded) to_backlog(fd, s);
  if (d == Drive::waiting) await(fd, read_side ? kReadable : kWritable);
}

void ReadinessLoop::fail_side(OpList& side, std::int64_t result) {
  while (Operation* op = side.pop_front()) complete(*op, result);
}

ReadinessLoop::Drive ReadinessLoop::drive_read(int fd, FdState& s, bool trust_short_read) {
  int budget = kReadBudget;
  int accepts = kAcceptBudget;
  while (Operation* op = s.read.head) {
    if (op->code == OpCode::accept) {
      int conn = accept_connection(fd);
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
      if (static_cast<std::size_t>(conn) < fds_.size()) fds_[conn].known = false;
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

ReadinessLoop::Drive ReadinessLoop::drive_write(int fd, FdState& s, bool writable_event) {
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

std::int64_t ReadinessLoop::step_send(int fd, Operation& op) {
  const auto& slices = op.slices;
  OpState& st = S(op);
  for (;;) {
    iovec iov[kMaxIov];
    int count = 0;
    for (std::size_t j = st.slice_index; j < slices.size() && count < kMaxIov; ++j) {
      std::size_t skip = j == st.slice_index ? st.progress : 0;
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
    msg.msg_iovlen = count;
    // MSG_NOSIGNAL: a vanished peer gives EPIPE, not a process-killing SIGPIPE.
    ssize_t n = ::sendmsg(fd, &msg, MSG_NOSIGNAL);
    if (n < 0) {
      if (errno == EINTR) continue;
      if (errno == EAGAIN || errno == EWOULDBLOCK) return kAgain;
      return -errno;
    }
    // Advance (slice_index, progress) past the n bytes that went out.
    auto left = static_cast<std::uint64_t>(n);
    while (left > 0 && st.slice_index < slices.size()) {
      std::uint64_t rest = slices[st.slice_index].size - st.progress;
      if (left < rest) {
        st.progress += left;
        left = 0;
      } else {
        left -= rest;
        ++st.slice_index;
        st.progress = 0;
      }
    }
  }
}

std::int64_t ReadinessLoop::step_sendfile(int fd, Operation& op) {
  OpState& st = S(op);
  while (st.progress < op.length) {
    if (op.offset + st.progress > static_cast<std::uint64_t>(INT64_MAX)) return -EINVAL;
    std::uint64_t moved = 0;
    int rc = send_file_chunk(fd, static_cast<int>(op.file), op.offset + st.progress,
                             op.length - st.progress, moved);
    st.progress += moved;
    if (rc == 0 && moved == 0) break;  // end of file: the result is what was sent
    if (rc == 0 || rc == -EINTR) continue;
    if (rc == -EAGAIN || rc == -EWOULDBLOCK) return kAgain;
    if (rc == -EPIPE) consume_pending_sigpipe();  // the peer is gone
    return rc;
  }
  return static_cast<std::int64_t>(st.progress);
}

std::int64_t ReadinessLoop::step_connect(int fd, Operation& op, bool writable_event) {
  if (!(S(op).state & kConnectStarted)) {
    if (!op.endpoint) return -EINVAL;
    const auto* sa = reinterpret_cast<const sockaddr*>(op.endpoint->storage);
    if (::connect(fd, sa, op.endpoint->size) == 0) return 0;
    // EINTR on a non-blocking connect: the attempt goes on asynchronously, like EINPROGRESS.
    if (errno != EINPROGRESS && errno != EINTR) return -errno;
    S(op).state |= kConnectStarted;
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

void ReadinessLoop::do_cancel(Operation& op) {
  Operation* victim = op.target;
  std::int64_t result = -ENOENT;
  if (victim && victim != &op) {
    switch (where(*victim)) {
      case kQueued:
        // Submitted after this cancel in the same batch: it completes when reached.
        S(*victim).state |= kCancelRequested;
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
          // Before the callback, which may close the fd itself.
          if (side.empty()) unawait(fd, read_side ? kReadable : kWritable);
          complete(*victim, -ECANCELED);
          result = 0;
          // The next in line never ran and no edge may come for it: try it now.
          if (was_head && !side.empty()) drive_side(fd, s, read_side, false);
        }
        break;
      }
      case kTimer:
        heap_erase(S(*victim).heap_index);
        complete(*victim, -ECANCELED);
        result = 0;
        break;
      default:
        break;  // idle: finished (or never submitted)
    }
  }
  complete(op, result);
}

void ReadinessLoop::do_close(Operation& op) {
  if (op.fd < 0 || op.fd > INT_MAX) {
    complete(op, -EBADF);
    return;
  }
  int fd = static_cast<int>(op.fd);
  if (static_cast<std::size_t>(fd) < fds_.size()) {
    FdState& s = fds_[fd];
    fail_side(s.read, -ECANCELED);
    fail_side(s.write, -ECANCELED);
    if (s.known) unwatch(fd);
    // close(2) drops epoll and kqueue registrations with the last reference to the file;
    // skipping EPOLL_CTL_DEL saves a syscall per connection.
    s.known = false;
  }
  // Linux and the BSDs release the fd even when close reports EINTR: retrying could close
  // a reused number.
  int rc = ::close(fd);
  complete(op, rc == 0 || errno == EINTR ? 0 : -errno);
}

void ReadinessLoop::heap_set(std::size_t i, Operation* op) {
  heap_[i] = op;
  S(*op).heap_index = i;
}

void ReadinessLoop::heap_push(Operation& op) {
  heap_.push_back(&op);
  heap_set(heap_.size() - 1, &op);
  heap_up(heap_.size() - 1);
}

void ReadinessLoop::heap_up(std::size_t i) {
  Operation* op = heap_[i];
  while (i > 0) {
    std::size_t parent = (i - 1) / 2;
    if (S(*heap_[parent]).progress <= S(*op).progress) break;
    heap_set(i, heap_[parent]);
    i = parent;
  }
  heap_set(i, op);
}

void ReadinessLoop::heap_down(std::size_t i) {
  Operation* op = heap_[i];
  const std::size_t n = heap_.size();
  for (;;) {
    std::size_t child = 2 * i + 1;
    if (child >= n) break;
    if (child + 1 < n && S(*heap_[child + 1]).progress < S(*heap_[child]).progress) ++child;
    if (S(*op).progress <= S(*heap_[child]).progress) break;
    heap_set(i, heap_[child]);
    i = child;
  }
  heap_set(i, op);
}

void ReadinessLoop::heap_erase(std::size_t i) {
  Operation* last = heap_.back();
  heap_.pop_back();
  if (i == heap_.size()) return;
  heap_set(i, last);
  heap_down(i);
  heap_up(i);
}

}  // namespace pp::platform
