// platform/posix/readiness_loop.h -- the completion model built on readiness, shared by
// every readiness backend: epoll (Linux), kqueue (BSD, macOS) and libaio's IOCB_CMD_POLL.
//
// The core does everything but watching handles: each handle's read side (accept, recv)
// and write side (send, sendfile, connect), the steppers that perform each operation's
// syscall when its handle is ready and finish partial sends, timers, cancel, close and
// posted functions. A backend subclasses ReadinessLoop and implements five calls:
// `watch`, `await`, `unwatch`, `wait` and `wake` (one-shot backends also `unawait`). When
// to use which backend: see platform/*/open_loop.cpp (the probe ladder).
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <vector>

#include "core/loop.h"
#include "core/post_queue.h"

namespace pp::platform {

/// What a backend's `wait` reports for one handle (a bit set).
enum ReadyFlags : unsigned {
  kReadable = 1,  // data, a connection to accept, or EOF may be read
  kWritable = 2,  // room to send, or a connect finished
  /// The event carried a hang-up or an error (EPOLLRDHUP/HUP/ERR, EV_EOF/EV_ERROR,
  /// POLLRDHUP/HUP/ERR): it will not be reported again, so the read side must read until
  /// EAGAIN instead of stopping at a short read.
  kHangup = 4,
};

/// The part of a completion engine that turns readiness into completions. Owned and driven
/// by one thread, like every Loop.
class ReadinessLoop : public Loop {
 public:
  void submit(Operation& op) final;
  int run_once(std::chrono::nanoseconds max_wait) final;
  void post(std::function<void()> fn) final;

 protected:
  explicit ReadinessLoop(const LoopOptions& options);
  ~ReadinessLoop() override;

  // --- What a readiness backend implements --------------------------------------------

  /// Start reporting `fd`'s readiness in both directions as edges (one event each time a
  /// direction becomes ready), and report it at once if it is ready now: an edge that came
  /// while nothing waited must not be lost. Called when an operation has to wait on a
  /// handle that had none. `known`: the backend watched this number before and nobody
  /// closed it through the loop since (epoll then MODs instead of ADDing). Returns 0, or a
  /// negated errno when the handle cannot be watched (the waiting operations fail with it).
  virtual int watch(int fd, bool known) = 0;
  /// One-shot backends (libaio): `fd` waits for the readiness in `flags` (kReadable or
  /// kWritable) again. Called every time a side stops at EAGAIN. Edge backends, whose
  /// registration persists, keep the default (nothing).
  virtual void await(int /*fd*/, unsigned /*flags*/) {}
  /// Nothing waits for the readiness in `flags` (kReadable or kWritable) on `fd` any more:
  /// the last operation waiting on that side was cancelled. One-shot backends (libaio) drop
  /// the request they armed for it, which holds a reference to the file: a caller that
  /// closes the fd itself after the cancel (Connection does) would otherwise leave the
  /// connection open until that request fired. Edge backends keep the default (nothing).
  virtual void unawait(int /*fd*/, unsigned /*flags*/) {}
  /// The loop is about to close `fd`: drop what the backend holds for it. epoll and kqueue
  /// drop registrations with the last close by themselves.
  virtual void unwatch(int /*fd*/) {}
  /// Wait up to `timeout_ns` (negative: no limit, 0: just look) and call `on_ready` for
  /// every handle event. Returns true when `wake` (a post) woke it. A signal ends the wait
  /// early without harm.
  virtual bool wait(std::int64_t timeout_ns) = 0;
  /// Thread-safe: make the current (or the next) `wait` return true.
  virtual void wake() = 0;

  /// For `wait`: readiness `flags` (ReadyFlags) arrived for `fd`.
  void on_ready(int fd, unsigned flags);

 private:
  /// What the loop knows about one fd.
  struct FdState;
  struct OpList;
  enum class Drive { drained, waiting, yielded };

  FdState& fd_state(int fd);
  void complete(Operation& op, std::int64_t result, bool more = false,
                std::span<const std::byte> data = {});
  void start(Operation& op);
  void start_on_side(Operation& op, bool read_side);
  Drive drive_read(int fd, FdState& s, bool trust_short_read);
  Drive drive_write(int fd, FdState& s, bool writable_event);
  /// Drives one side; a side left waiting is handed to `await`, one that yielded to the
  /// backlog.
  void drive_side(int fd, FdState& s, bool read_side, bool event);
  std::int64_t step_send(int fd, Operation& op);
  std::int64_t step_sendfile(int fd, Operation& op);
  std::int64_t step_connect(int fd, Operation& op, bool writable_event);
  void fail_side(OpList& side, std::int64_t result);
  void do_cancel(Operation& op);
  void do_close(Operation& op);
  void to_backlog(int fd, FdState& s);
  void expire_timers(std::int64_t now);
  void heap_set(std::size_t i, Operation* op);
  void heap_up(std::size_t i);
  void heap_down(std::size_t i);
  void heap_push(Operation& op);
  void heap_erase(std::size_t i);

  std::uint32_t recv_size_;
  // One receive buffer is the whole pool a readiness backend needs: a recv's data is lent
  // only for its callback, callbacks never nest, and the syscall runs on this thread.
  std::unique_ptr<std::byte[]> recv_buf_;
  std::vector<FdState> fds_;  // indexed by fd
  std::unique_ptr<OpList> sq_;  // submitted, not yet started
  std::vector<int> backlog_;    // fds whose read side stopped at the budget
  std::vector<int> backlog_run_;
  std::vector<Operation*> heap_;  // timers, a min-heap on the deadline
  PostQueue posts_;
  int ran_ = 0;
  bool running_ = false;
  bool sigpipe_blocked_ = false;
};

/// Monotonic clock in nanoseconds (the timers' clock).
std::int64_t monotonic_ns();

}  // namespace pp::platform
