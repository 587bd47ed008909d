// platform/linux/aio_loop.cpp -- the libaio backend: Linux AIO's IOCB_CMD_POLL (4.19+) as the
// readiness source, for hosts whose io_uring is blocked but whose AIO syscalls are not
// (Docker's default seccomp profile, for one, refuses io_uring_* but allows io_setup,
// io_submit and io_getevents, which databases have long used).
//
// Everything but watching handles lives in the readiness core (platform/posix/). A poll iocb
// is one-shot: it checks readiness when submitted and completes once, with the revents mask
// as its result. So `await` arms a poll for the side that stopped at EAGAIN (POLLIN|POLLRDHUP
// for the read side, POLLOUT for the write side), at most one per fd and side; `wait` hands
// every poll armed since the last turn to the kernel in one io_submit and reaps completions
// from the context's ring, reading it from user space and entering the kernel
// (io_getevents) only to sleep. post() writes an eventfd that has its own poll, re-armed
// after every wake-up.
//
// A pending poll holds a reference to its file, so the loop cancels it (io_cancel) before it
// closes the fd (`unwatch`) and when the last operation waiting on a side is cancelled
// (`unawait`: callers that close the fd themselves do it right after). A cancelled poll still
// delivers an event (res 0) later: each poll lives in a pooled Slot that stays allocated until
// its event has been reaped, and whose state says whether that event still means anything.
// Nothing is keyed by the event's fd number, which may belong to another file by then.
#include <libaio.h>
#include <poll.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <memory>
#include <utility>
#include <vector>

#include <fmt/format.h>

#include "platform/linux/backends.h"
#include "platform/posix/readiness_loop.h"

namespace pp::platform {
namespace {

// The completion ring that io_setup maps into the process: the io_context_t is its address.
// The kernel publishes events by advancing `tail` and reads `head` back to learn which slots
// we have consumed, so a process may reap events without a syscall (fio's userspace_reap
// and Seastar do). Layout from fs/aio.c; `magic` and `incompat_features` guard it.
struct AioRingHeader {
  unsigned id;
  unsigned nr;  // events in the ring
  unsigned head;
  unsigned tail;
  unsigned magic;
  unsigned compat_features;
  unsigned incompat_features;
  unsigned header_length;  // sizeof the header; the io_events follow it
};
constexpr unsigned kAioRingMagic = 0xa10a10a1;

// Context sizes (io_setup's nr). A loop asks for queue_depth / 2 (1024 by default) and the
// kernel makes room for twice that (it doubles nr for its per-CPU accounting and rounds up
// to whole pages), so a loop holds about queue_depth pending polls -- one per waiting side --
// before it has to grow. Only the nr asked for counts against the host-wide fs.aio-max-nr
// (65536 by default): 64 loops at the default fit, where asking for more up front would
// leave a many-core host's later workers without a context. Growing (doubling) is cheap and
// happens only in loops that need it.
constexpr unsigned kMinContext = 32;
constexpr unsigned kMaxContext = 1u << 20;

bool env_flag(const char* name) {
  const char* v = std::getenv(name);
  return v != nullptr && *v != '\0' && std::strcmp(v, "0") != 0;
}

std::string read_sysctl(const char* path) {
  std::ifstream in(path);
  std::string value;
  in >> value;
  return value.empty() ? "?" : value;
}

/// Why io_setup failed, with what an operator can do about it.
std::string io_setup_error(int rc, unsigned nr) {
  switch (-rc) {
    case ENOSYS:
      return "io_setup: Function not implemented (kernel built without CONFIG_AIO)";
    case EPERM:
      return "io_setup: Operation not permitted (blocked by a seccomp profile?)";
    case EAGAIN:
      return fmt::format(
          "io_setup({}): fs.aio-max-nr is used up ({} of {} requests in use by this host's AIO "
          "contexts); raise it with sysctl -w fs.aio-max-nr=N",
          nr, read_sysctl("/proc/sys/fs/aio-nr"), read_sysctl("/proc/sys/fs/aio-max-nr"));
    default:
      return fmt::format("io_setup({}): {}", nr, std::strerror(-rc));
  }
}

class AioLoop final : public ReadinessLoop {
 public:
  AioLoop(int wakefd, const LoopOptions& options)
      : ReadinessLoop(options),
        wakefd_(wakefd),
        events_(std::clamp<std::uint32_t>(options.queue_depth, 1, 65536)) {
    wake_.fd = wakefd;
    wake_.side = kWakeSide;
  }

  ~AioLoop() override {
    // io_destroy cancels the polls still pending and waits for them: after it the kernel
    // no longer touches any Slot, so the pool may go.
    if (ctx_) io_destroy(ctx_);
    ::close(wakefd_);
  }

  /// Creates the context and arms the wake-up poll, which doubles as the probe for
  /// IOCB_CMD_POLL: a kernel without it (before 4.19) refuses the iocb with EINVAL.
  bool start(const LoopOptions& options, std::string& why) {
    unsigned nr = std::clamp<unsigned>(options.queue_depth / 2, kMinContext, kMaxContext);
    int rc;
    // EAGAIN: fs.aio-max-nr is nearly used up (many workers, or other AIO users); a smaller
    // context still works, and grows later if this loop needs it and the host has room.
    while ((rc = io_setup(static_cast<int>(nr), &ctx_)) == -EAGAIN && nr > kMinContext) {
      nr /= 2;
      ctx_ = nullptr;
    }
    if (rc != 0) {
      ctx_ = nullptr;
      why = io_setup_error(rc, nr);
      return false;
    }
    nr_ = nr;
    map_ring();
    io_prep_poll(&wake_.cb, wakefd_, POLLIN);
    wake_.cb.data = &wake_;
    iocb* one = &wake_.cb;
    rc = io_submit(ctx_, 1, &one);
    if (rc != 1) {
      why = fmt::format("io_submit(IOCB_CMD_POLL): {}", std::strerror(-rc));
      if (rc == -EINVAL) why += " (this kernel has no AIO poll; it needs Linux 4.19+)";
      return false;
    }
    wake_.state = kArmed;
    return true;
  }

  std::string_view backend_name() const override { return "libaio"; }

 protected:
  int watch(int fd, bool /*known*/) override {
    // A side that starts waiting on an idle fd may find a poll still pending from an earlier
    // wait that ended without it (a hang-up seen by the other side's poll drained this
    // side), possibly on a file that the caller has since closed behind our back and whose
    // number now names another file. Keeping that poll would leave the new file unwatched,
    // and telling the cases apart would cost an fstat, so cancel it and let `await` arm a
    // fresh one: it re-checks readiness, so no edge is lost. Rare (a wait that completes
    // consumes its poll, and a cancelled one drops it in `unawait`), so cheap.
    if (static_cast<std::size_t>(fd) < polls_.size()) {
      for (Slot*& slot : polls_[fd].side)
        if (slot) cancel(std::exchange(slot, nullptr));
    }
    return 0;
  }

  void await(int fd, unsigned flags) override {
    const int side = (flags & kReadable) ? kReadSide : kWriteSide;
    if (static_cast<std::size_t>(fd) >= polls_.size())
      polls_.resize(std::max(polls_.size() * 2, static_cast<std::size_t>(fd) + 1));
    Slot*& armed = polls_[fd].side[side];
    if (armed) return;  // its poll is still pending: one per side is enough
    Slot* slot = allocate();
    // POLLRDHUP: a peer's half-close, reported as a hang-up (the read side then reads to
    // EAGAIN). The kernel adds POLLERR and POLLHUP to every poll by itself.
    io_prep_poll(&slot->cb, fd, side == kReadSide ? POLLIN | POLLRDHUP : POLLOUT);
    slot->cb.data = slot;
    slot->fd = fd;
    slot->side = static_cast<std::uint8_t>(side);
    slot->state = kQueued;
    armed = slot;
    // Submitted by the next `wait`, together with every other poll armed this turn: one
    // io_submit per turn instead of one per poll. Nothing sleeps before that submission,
    // and a poll checks readiness when submitted, so no edge is missed in between.
    pending_.push_back(&slot->cb);
  }

  void unawait(int fd, unsigned flags) override {
    // The last operation waiting on this side was cancelled. Its poll would keep the file
    // (and the connection) open after a close(2) that the caller makes itself, until the
    // peer happened to send or close; one io_cancel per cancelled wait avoids that.
    if (static_cast<std::size_t>(fd) >= polls_.size()) return;
    Slot*& slot = polls_[fd].side[(flags & kReadable) ? kReadSide : kWriteSide];
    if (slot) cancel(std::exchange(slot, nullptr));
  }

  void unwatch(int fd) override {
    // The poll's reference to the file would keep it open after the core's close(2): the
    // peer would not see the connection end until the poll fired.
    if (static_cast<std::size_t>(fd) >= polls_.size()) return;
    for (Slot*& slot : polls_[fd].side)
      if (slot) cancel(std::exchange(slot, nullptr));
  }

  bool wait(std::int64_t timeout_ns) override {
    woken_ = false;
    bool busy = submit_pending();
    if (!failed_.empty()) {
      // Polls the kernel refused (EBADF: the fd was closed behind our back): report the side
      // ready, so the core's own syscall meets the error and fails what waits on it.
      busy = true;
      failed_run_.swap(failed_);
      for (const Failed& f : failed_run_)
        on_ready(f.fd, (f.side == kReadSide ? kReadable : kWritable) | kHangup);
      failed_run_.clear();
    }
    if (busy || woken_) timeout_ns = 0;
    // Polls left queued (context full, and it could not grow) need a later io_submit, and
    // the wake-up poll may be among them: do not sleep long.
    if (!pending_.empty() && (timeout_ns < 0 || timeout_ns > 1'000'000)) timeout_ns = 1'000'000;
    dispatch(reap(timeout_ns));
    return woken_;
  }

  void wake() override {
    std::uint64_t one = 1;
    // EAGAIN means the counter is saturated: the loop is already due to wake.
    while (::write(wakefd_, &one, sizeof one) < 0 && errno == EINTR) {
    }
  }

 private:
  static constexpr int kReadSide = 0;
  static constexpr int kWriteSide = 1;
  static constexpr std::uint8_t kWakeSide = 2;
  static constexpr std::size_t kChunk = 256;  // Slots per pool allocation

  enum State : std::uint8_t {
    kFree,
    kQueued,     // in pending_, not yet submitted
    kDropped,    // in pending_, cancelled before submission: skipped and freed there
    kArmed,      // in the kernel, its event is wanted
    kCancelled,  // in the kernel (or its event is in the ring): ignored and freed when reaped
  };

  /// One poll request. iocb.data points back here; the event's fd number is never trusted.
  struct Slot {
    iocb cb;
    int fd = -1;
    std::uint8_t side = 0;
    State state = kFree;
    Slot* next_free = nullptr;
  };
  struct FdPolls {
    Slot* side[2] = {nullptr, nullptr};  // the poll armed for each side, if any
  };
  struct Failed {
    int fd;
    int side;
  };

  static Slot* slot_of(iocb* cb) { return static_cast<Slot*>(cb->data); }

  Slot* allocate() {
    if (!free_) {
      // Slots never move (the kernel holds their address), so the pool grows by chunks.
      chunks_.push_back(std::make_unique<Slot[]>(kChunk));
      Slot* chunk = chunks_.back().get();
      for (std::size_t i = kChunk; i-- > 0;) {
        chunk[i].next_free = free_;
        free_ = &chunk[i];
      }
    }
    Slot* slot = free_;
    free_ = slot->next_free;
    return slot;
  }

  void release(Slot* slot) {
    slot->state = kFree;
    slot->fd = -1;
    slot->next_free = free_;
    free_ = slot;
  }

  /// Stops `slot` (already unlinked from polls_) from mattering.
  void cancel(Slot* slot) {
    if (slot->state == kQueued) {
      slot->state = kDropped;
      return;
    }
    if (slot->state != kArmed) return;
    // -EINPROGRESS: cancelled, its event (res 0) comes through the ring. -EINVAL: it had
    // completed already and its event is in the ring. Either way the event is still to
    // come, so the slot waits for it. (Kernels before 4.19 could hand the event back here,
    // but those have no IOCB_CMD_POLL.)
    io_event ignored;
    io_cancel(ctx_, &slot->cb, &ignored);
    slot->state = kCancelled;
  }

  /// Hands the queued polls to the kernel. Returns true when it had to reap and dispatch
  /// events to make room (callbacks ran: the caller must not sleep).
  bool submit_pending() {
    bool dispatched = false;
    std::size_t head = 0;
    while (head < pending_.size()) {
      // Drop what was cancelled before it was submitted (dispatching below may cancel more).
      std::size_t out = head;
      for (std::size_t i = head; i < pending_.size(); ++i) {
        Slot* slot = slot_of(pending_[i]);
        if (slot->state == kDropped)
          release(slot);
        else
          pending_[out++] = pending_[i];
      }
      pending_.resize(out);
      if (head == out) break;
      int rc = io_submit(ctx_, static_cast<long>(out - head), pending_.data() + head);
      if (rc > 0) {
        for (int i = 0; i < rc; ++i) slot_of(pending_[head + i])->state = kArmed;
        head += static_cast<std::size_t>(rc);
        continue;
      }
      if (rc == -EINTR) continue;
      if (rc == -EAGAIN) {
        // The context is full. Reaping frees room; when nothing is there to reap, every
        // request is a poll still waiting, and only a bigger context helps.
        if (int n = reap(0); n > 0) {
          dispatch(n);
          dispatched = true;
          continue;
        }
        if (grow()) continue;
        break;  // what is left goes in the next turn's io_submit
      }
      // The first iocb was refused (io_submit stops at the first refusal and reports it only
      // when nothing before it went in).
      Slot* slot = slot_of(pending_[head]);
      if (slot->side == kWakeSide) {
        slot->state = kQueued;  // retried next turn; the eventfd does not go away
        break;
      }
      polls_[slot->fd].side[slot->side] = nullptr;
      failed_.push_back({slot->fd, slot->side});
      release(slot);
      ++head;
    }
    pending_.erase(pending_.begin(), pending_.begin() + static_cast<std::ptrdiff_t>(head));
    return dispatched;
  }

  /// Replaces a full context by one twice its size. Called only when nothing is left to reap.
  bool grow() {
    if (nr_ >= kMaxContext) return false;
    io_context_t bigger = nullptr;
    if (io_setup(static_cast<int>(nr_ * 2), &bigger) != 0) return false;
    // io_destroy cancels every request of the old context and waits for them; their events
    // are gone with it. What was armed is submitted again (it re-checks readiness, so no
    // edge is lost); what was cancelled is simply free now.
    io_destroy(ctx_);
    ctx_ = bigger;
    nr_ *= 2;
    map_ring();
    auto requeue = [this](Slot& slot) {
      if (slot.state == kArmed) {
        slot.state = kQueued;
        pending_.push_back(&slot.cb);
      } else if (slot.state == kCancelled) {
        release(&slot);
      }
    };
    requeue(wake_);
    for (auto& chunk : chunks_)
      for (std::size_t i = 0; i < kChunk; ++i) requeue(chunk[i]);
    return true;
  }

  void map_ring() {
    ring_ = reinterpret_cast<AioRingHeader*>(ctx_);
    if (ring_->magic != kAioRingMagic || ring_->incompat_features != 0 ||
        ring_->header_length != sizeof(AioRingHeader))
      ring_ = nullptr;  // a layout we do not know: reap through io_getevents only
  }

  /// Moves up to events_.size() events into events_; waits up to `timeout_ns` for the first.
  int reap(std::int64_t timeout_ns) {
    const long cap = static_cast<long>(events_.size());
    if (ring_) {
      // The user-space fast path: what is in the ring is taken without a syscall. Only this
      // thread consumes (here or in io_getevents below), so `head` is ours to write.
      auto* ring_events = reinterpret_cast<io_event*>(ring_ + 1);
      const unsigned nr = ring_->nr;
      unsigned head = std::atomic_ref<unsigned>(ring_->head).load(std::memory_order_relaxed);
      // Acquire: the kernel writes an event before it publishes the tail past it.
      const unsigned tail = std::atomic_ref<unsigned>(ring_->tail).load(std::memory_order_acquire);
      long n = 0;
      while (head != tail && n < cap) {
        events_[n++] = ring_events[head];
        head = head + 1 == nr ? 0 : head + 1;
      }
      if (n > 0) {
        // Release: the kernel reuses these ring slots once it sees the new head.
        std::atomic_ref<unsigned>(ring_->head).store(head, std::memory_order_release);
        return static_cast<int>(n);
      }
      if (timeout_ns == 0) return 0;
    }
    // io_getevents, not io_pgetevents: what io_pgetevents adds is a signal mask installed
    // atomically for the sleep (the pselect pattern), which only matters to a thread that
    // blocks a signal everywhere but in its wait. The engine does not (a signal just ends the
    // wait early, as the core allows), and with a NULL mask io_pgetevents is this same call.
    // The timespec keeps nanosecond precision: the core's sub-millisecond timers fire on time.
    timespec ts{};
    if (timeout_ns > 0) ts = {timeout_ns / 1'000'000'000, timeout_ns % 1'000'000'000};
    int n = io_getevents(ctx_, timeout_ns == 0 ? 0 : 1, cap, events_.data(),
                         timeout_ns < 0 ? nullptr : &ts);
    return n < 0 ? 0 : n;  // -EINTR: a signal ended the wait
  }

  void dispatch(int n) {
    for (int i = 0; i < n; ++i) {
      const io_event& ev = events_[i];
      auto* slot = static_cast<Slot*>(ev.data);
      const auto res = static_cast<long>(ev.res);
      if (slot == &wake_) {
        // Reset the eventfd, then re-arm its poll (submitted before the next sleep), then
        // let the core drain the posts: a post that lands after the drain took the queue
        // writes the eventfd again, and the re-armed poll sees it.
        woken_ = true;
        std::uint64_t count;
        while (::read(wakefd_, &count, sizeof count) < 0 && errno == EINTR) {
        }
        wake_.state = kQueued;
        pending_.push_back(&wake_.cb);
        continue;
      }
      if (slot->state != kArmed) {
        release(slot);  // cancelled: its fd number may name another file by now
        continue;
      }
      const int fd = slot->fd;
      const int side = slot->side;
      polls_[fd].side[side] = nullptr;
      release(slot);
      unsigned flags = 0;
      if (res < 0) {
        flags = (side == kReadSide ? kReadable : kWritable) | kHangup;  // let the syscall say
      } else {
        if (res & POLLIN) flags |= kReadable;
        if (res & POLLOUT) flags |= kWritable;
        if (res & (POLLRDHUP | POLLHUP | POLLERR)) flags |= kHangup;
        if (flags == 0) flags = side == kReadSide ? kReadable : kWritable;
      }
      on_ready(fd, flags);
    }
  }

  int wakefd_;
  io_context_t ctx_ = nullptr;
  unsigned nr_ = 0;                // what io_setup was asked for
  AioRingHeader* ring_ = nullptr;  // ctx_ as its ring, when the layout is the known one
  std::vector<io_event> events_;
  std::vector<FdPolls> polls_;  // indexed by fd
  std::vector<iocb*> pending_;  // armed this turn, submitted by the next wait
  std::vector<Failed> failed_;
  std::vector<Failed> failed_run_;
  std::vector<std::unique_ptr<Slot[]>> chunks_;
  Slot* free_ = nullptr;
  Slot wake_;
  bool woken_ = false;
};

}  // namespace

std::unique_ptr<Loop> open_aio_loop(const LoopOptions& options, std::string& why) {
  if (env_flag(kDisableLibaioEnv)) {
    why = fmt::format("disabled by {}", kDisableLibaioEnv);
    return nullptr;
  }
  if (options.recv_buffer_size == 0) {
    why = "recv_buffer_size must be at least 1";
    return nullptr;
  }
  int wakefd = ::eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
  if (wakefd < 0) {
    why = fmt::format("eventfd: {}", std::strerror(errno));
    return nullptr;
  }
  auto loop = std::make_unique<AioLoop>(wakefd, options);
  if (!loop->start(options, why)) return nullptr;
  return loop;
}

}  // namespace pp::platform
