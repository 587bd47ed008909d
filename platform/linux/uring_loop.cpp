// platform/linux/uring_loop.cpp -- the io_uring backend (liburing): one ring per worker.
//
// Shape of the hot path: `submit` only fills SQEs (no syscall unless the SQ is full);
// `run_once` makes one io_uring_enter that submits everything queued and waits, then walks
// the CQ ring and calls each Operation's callback through a plain function pointer.
// user_data is the Operation* itself (Operations are at least 8-aligned, so small integers
// are free for the engine's own requests). Nothing on the completion path allocates.
//
// Kernel features and their fallbacks (see UringInfo in uring_loop.h; the ring's set-up
// ladder and opcode probe are in uring_setup.cpp):
//   SINGLE_ISSUER|DEFER_TASKRUN (6.1) -> COOP_TASKRUN (5.19) -> plain ring;
//   buffer ring (5.19) -> recv into a pool buffer; multishot accept (5.19) / recv (6.0) ->
//   single-shot requests the engine re-arms, so callers see the same stream of
//   completions either way.
#include "platform/linux/uring_loop.h"

#include <liburing.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/sendfile.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <climits>
#include <cstddef>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <utility>
#include <vector>

#include <fmt/format.h>

#include "core/post_queue.h"
#include "platform/linux/backends.h"
#include "platform/linux/uring_setup.h"
#include "platform/posix/sigpipe.h"

namespace pp::platform {
namespace {

// A send's slices go to the kernel as its iovec array, without a copy.
static_assert(sizeof(IoSlice) == sizeof(iovec));
static_assert(offsetof(IoSlice, data) == offsetof(iovec, iov_base));
static_assert(offsetof(IoSlice, size) == offsetof(iovec, iov_len));
static_assert(alignof(Operation) >= 8);

/// What this backend keeps in an Operation while it is in flight.
struct UringOpState {
  std::uint32_t state;          // the k* bits below
  std::uint32_t slice_index;    // send: first slice not fully sent; recv (pool): buffer id
  std::uint64_t sent;           // send/sendfile: bytes sent; cancel: the kernel's answer
  std::uintptr_t backend_slot;  // list link, SendState*, or a cancel's victim result
  // A timeout's duration as the kernel reads it, inside the operation so that the kernel
  // may read it late (SQPOLL) without a side allocation.
  __kernel_timespec timeout;
};
UringOpState& U(Operation& op) {
  return backend_state<UringOpState>(op);
}
const UringOpState& U(const Operation& op) {
  return backend_state<UringOpState>(op);
}

/// user_data of the engine's eventfd read (post() wake-ups); never an Operation address.
constexpr std::uint64_t kWakeTag = 1;
/// user_data of the cancel-by-fd that precedes a close; its CQE is ignored.
constexpr std::uint64_t kCloseCancelTag = 2;
/// The buffer group id of the provided-buffer ring.
constexpr unsigned short kBufGroup = 0;
/// One SEND carries at most this much: sqe->len is 32 bits and the kernel caps a call near
/// 2 GiB anyway.
constexpr std::size_t kMaxSendStep = std::size_t{1} << 30;
/// A recv that keeps hitting an empty buffer ring without receiving anything in between is
/// given the ENOBUFS after this many re-arms: by then buffers are not coming back.
constexpr unsigned kMaxEnobufsRearms = 64;

// Operation::state bits while the engine owns the operation.
enum : std::uint32_t {
  kInFlight = 1u << 0,    // submitted, final completion not yet determined
  kCancelReq = 1u << 1,   // a cancel targets it: stop at the next step boundary
  kParked = 1u << 2,      // held by the engine, not the kernel (recv without buffers,
                          // sendfile waiting for its syscall)
  kLinked = 1u << 3,      // has an entry in links_ (victim or cancel side)
  kWaiting = 1u << 4,     // cancel op: kernel answered; result waits for the victim's end
  kVictimDone = 1u << 5,  // cancel op: the victim ended before the kernel answered
  kEnobufsShift = 8,
  kEnobufsMask = 0xffu << kEnobufsShift,
  // The handle's close generation when the op was submitted (see FdSlot::gen).
  kGenShift = 16,
};

std::uint32_t round_up_pow2(std::uint32_t v) {
  std::uint32_t p = 1;
  while (p < v) p <<= 1;
  return p;
}

class UringLoop final : public Loop {
 public:
  UringLoop() = default;
  UringLoop(const UringLoop&) = delete;
  UringLoop& operator=(const UringLoop&) = delete;
  ~UringLoop() override;

  bool init(const LoopOptions& options, std::string& why);
  void describe(UringInfo& out) const;

  std::string_view backend_name() const override { return "io_uring"; }
  void submit(Operation& op) override;
  int run_once(std::chrono::nanoseconds max_wait) override;
  void post(std::function<void()> fn) override;

 private:
  /// Extra state of a send with several slices (a single slice needs none): the msghdr
  /// must stay put until the kernel has read it. Pooled, never freed on the hot path.
  struct SendState {
    msghdr msg;
    std::uint64_t prefix;  // bytes in the slices before slice_index
    std::uint64_t total;
    SendState* next_free;
  };
  struct RawCqe {
    std::uint64_t user_data;
    std::int32_t res;
    std::uint32_t flags;
  };
  struct Deferred {
    Operation* op;
    std::int64_t result;
  };
  struct Link {
    Operation* victim;
    Operation* cancel;
  };
  struct OpList {  // intrusive FIFO through Operation::backend_slot
    Operation* head = nullptr;
    Operation* tail = nullptr;
  };
  /// Per handle. Output order is the caller's (core/outbound.h keeps one send in flight
  /// per socket); `sending` only lets a second concurrent output fail with -EBUSY instead
  /// of interleaving its bytes with the first's after a partial send.
  struct FdSlot {
    Operation* sending = nullptr;  // the send/sendfile now writing to this socket
    /// Bumped by each close op on the handle: a multi-step op submitted under an older
    /// generation stops at its next step instead of touching a reused descriptor.
    std::uint16_t gen = 0;
  };

  // Submission side.
  io_uring_sqe* get_sqe();
  /// Submits what is queued; io_uring_submit's result (entries taken, or -errno).
  int flush();
  void ensure_owner();
  void arm_accept(Operation& op);
  void arm_recv(Operation& op);
  void start_send(Operation& op);
  void send_step(Operation& op);
  void start_cancel(Operation& op);
  void start_close(Operation& op);
  void start_output(Operation& op);
  void arm_wake();
  FdSlot* slot_of(Handle h) {
    if (h < 0) return nullptr;
    auto i = static_cast<std::size_t>(h);
    if (i >= fds_.size()) fds_.resize(std::max<std::size_t>(i + 1, fds_.size() * 2));
    return &fds_[i];
  }
  /// True when `op` must stop at this step: cancelled, or its handle was closed since.
  bool stopped(const Operation& op) const {
    if (U(op).state & kCancelReq) return true;
    auto i = static_cast<std::size_t>(op.fd);
    return op.fd >= 0 && i < fds_.size() && fds_[i].gen != (U(op).state >> kGenShift);
  }

  // Completion side.
  void reap();
  void dispatch(std::uint64_t user_data, std::int32_t res, std::uint32_t flags);
  void on_accept(Operation& op, std::int32_t res, std::uint32_t flags);
  void on_recv(Operation& op, std::int32_t res, std::uint32_t flags);
  void on_send(Operation& op, std::int32_t res);
  void on_cancel(Operation& op, std::int32_t res);
  void run_sendfile(Operation& op);
  void run_ready_sendfiles();
  void run_deferred();
  void stash_cqes();
  void finish(Operation& op, const Completion& c);
  void finish(Operation& op, std::int64_t result) {
    Completion c;
    c.result = result;
    finish(op, c);
  }
  void defer_final(Operation& op, std::int64_t result);
  void resolve_victim(Operation& victim, std::int64_t result);
  void unlink_cancel(Operation& cancel);

  // Buffers.
  std::byte* buffer(std::uint32_t id) const {
    return buffer_ring_ ? buf_base_ + std::size_t{id} * buf_size_ : pool_addr_[id];
  }
  std::uint32_t take_pool_buffer();
  void recycle(std::uint32_t id);
  void commit_recycled() {
    if (pending_recycle_ == 0) return;
    io_uring_buf_ring_advance(br_, static_cast<int>(pending_recycle_));
    pending_recycle_ = 0;
  }

  SendState* acquire_send_state();
  void release_send_state(SendState* s) {
    s->next_free = free_send_;
    free_send_ = s;
  }

  static void push(OpList& list, Operation& op);
  static bool remove(OpList& list, Operation& op);

  io_uring ring_{};
  bool ring_ok_ = false;
  bool owned_ = false;
  bool sqpoll_ = false;
  unsigned cq_entries_ = 0;

  // Receive buffers: one mapping of count*size bytes; in ring mode the kernel picks them.
  bool buffer_ring_ = false;
  bool multishot_accept_ = false;
  bool multishot_recv_ = false;
  std::byte* buf_base_ = nullptr;
  std::size_t buf_map_bytes_ = 0;
  std::uint32_t buf_size_ = 0;
  std::uint32_t buf_count_ = 0;
  io_uring_buf_ring* br_ = nullptr;
  std::size_t br_bytes_ = 0;
  int br_mask_ = 0;
  std::uint32_t pending_recycle_ = 0;
  // Pool mode: buffer id -> address, free ids, and the chunks added when it ran dry.
  std::vector<std::byte*> pool_addr_;
  std::vector<std::uint32_t> pool_free_;
  std::vector<std::unique_ptr<std::byte[]>> pool_chunks_;

  OpList parked_recvs_;     // waiting for buffers after ENOBUFS
  OpList ready_sendfiles_;  // sendfile(2) to run at the top of run_once
  std::vector<Deferred> deferred_, deferred_running_;
  std::vector<RawCqe> backlog_, backlog_running_;
  std::vector<Link> links_;  // cancel <-> victim pairs while both are in flight
  std::vector<FdSlot> fds_;  // indexed by handle
  bool cancel_fd_ = false;   // IORING_ASYNC_CANCEL_FD (5.19)

  std::vector<std::unique_ptr<SendState[]>> send_chunks_;
  SendState* free_send_ = nullptr;

  int wake_fd_ = -1;
  std::uint64_t wake_value_ = 0;
  PostQueue posted_;

  int ran_ = 0;  // callbacks and posted functions run by the current run_once
  std::uint64_t enobufs_rearms_ = 0;
  UringInfo info_;
};

// ---------------------------------------------------------------------------------------
// Set-up

bool UringLoop::init(const LoopOptions& options, std::string& why) {
  const UringKernel kernel = uring_kernel();
  const char* const old = kernel.name;
  const int kver = kernel.version;
  io_uring_params p{};
  if (!open_uring(ring_, options, kernel, p, ring_ok_, why)) return false;
  sqpoll_ = (ring_.flags & IORING_SETUP_SQPOLL) != 0;
  cq_entries_ = p.cq_entries;

  // Receive buffers. The ring needs a power of two entries, at most 32768 (16-bit ids).
  buf_size_ = std::max<std::uint32_t>(options.recv_buffer_size, 256);
  buf_count_ = round_up_pow2(std::clamp<std::uint32_t>(options.recv_buffer_count, 1, 32768));
  buf_map_bytes_ = std::size_t{buf_size_} * buf_count_;
  void* mem =
      ::mmap(nullptr, buf_map_bytes_, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (mem == MAP_FAILED) {
    why = fmt::format("mmap of {} receive buffers: {}", buf_count_, std::strerror(errno));
    buf_map_bytes_ = 0;
    return false;
  }
  buf_base_ = static_cast<std::byte*>(mem);
  if (kver >= 519) {
    br_bytes_ = std::size_t{buf_count_} * sizeof(io_uring_buf);
    void* rmem =
        ::mmap(nullptr, br_bytes_, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (rmem != MAP_FAILED) {
      br_ = static_cast<io_uring_buf_ring*>(rmem);
      io_uring_buf_reg reg{};
      reg.ring_addr = reinterpret_cast<std::uintptr_t>(rmem);
      reg.ring_entries = buf_count_;
      reg.bgid = kBufGroup;
      if (io_uring_register_buf_ring(&ring_, &reg, 0) == 0) {
        buffer_ring_ = true;
        io_uring_buf_ring_init(br_);
        br_mask_ = io_uring_buf_ring_mask(buf_count_);
        for (std::uint32_t id = 0; id < buf_count_; ++id)
          io_uring_buf_ring_add(br_, buffer(id), buf_size_, static_cast<unsigned short>(id),
                                br_mask_, static_cast<int>(id));
        io_uring_buf_ring_advance(br_, static_cast<int>(buf_count_));
      } else {
        ::munmap(rmem, br_bytes_);
        br_ = nullptr;
        br_bytes_ = 0;
      }
    } else {
      br_bytes_ = 0;
    }
  }
  if (!buffer_ring_) {
    pool_addr_.reserve(buf_count_);
    pool_free_.reserve(buf_count_);
    for (std::uint32_t id = 0; id < buf_count_; ++id) {
      pool_addr_.push_back(buf_base_ + std::size_t{id} * buf_size_);
      pool_free_.push_back(buf_count_ - 1 - id);
    }
  }
  multishot_accept_ = kver >= 519;
  cancel_fd_ = kver >= 519;
  multishot_recv_ = buffer_ring_ && kver >= 600;

  // post() wakes the ring through an eventfd read. The eventfd stays blocking: io_uring
  // would complete a read on an O_NONBLOCK file with -EAGAIN instead of waiting.
  wake_fd_ = ::eventfd(0, EFD_CLOEXEC);
  if (wake_fd_ < 0) {
    why = fmt::format("eventfd: {}", std::strerror(errno));
    return false;
  }
  arm_wake();

  info_.single_issuer = (ring_.flags & IORING_SETUP_SINGLE_ISSUER) != 0;
  info_.defer_taskrun = (ring_.flags & IORING_SETUP_DEFER_TASKRUN) != 0;
  info_.coop_taskrun = (ring_.flags & IORING_SETUP_COOP_TASKRUN) != 0;
  info_.sqpoll = sqpoll_;
  info_.buffer_ring = buffer_ring_;
  info_.multishot_accept = multishot_accept_;
  info_.multishot_recv = multishot_recv_;
  info_.recv_buffer_size = buf_size_;
  info_.summary = fmt::format(
      "io_uring: {} entries, {}, recv {} ({} x {} B), accept {}{}", ring_.sq.ring_entries,
      info_.defer_taskrun   ? "single_issuer+defer_taskrun"
      : info_.coop_taskrun  ? "coop_taskrun (no defer_taskrun: kernel < 6.1)"
      : info_.single_issuer ? "single_issuer"
                            : fmt::format("plain task_work ({} < 5.19)", old),
      buffer_ring_ ? (multishot_recv_ ? "multishot, buffer ring" : "re-armed, buffer ring")
                   : fmt::format("re-armed, buffer pool (no buffer ring: {} < 5.19)", old),
      buf_count_, buf_size_, multishot_accept_ ? "multishot" : "re-armed",
      sqpoll_ ? ", sqpoll" : "");
  return true;
}

UringLoop::~UringLoop() {
  // Exit the ring before unmapping: the kernel may still own buffers until then.
  if (ring_ok_) io_uring_queue_exit(&ring_);
  if (wake_fd_ >= 0) ::close(wake_fd_);
  if (br_ != nullptr) ::munmap(br_, br_bytes_);
  if (buf_base_ != nullptr) ::munmap(buf_base_, buf_map_bytes_);
}

void UringLoop::describe(UringInfo& out) const {
  out = info_;
  out.recv_buffers = buffer_ring_ ? buf_count_ : static_cast<std::uint32_t>(pool_addr_.size());
  out.enobufs_rearms = enobufs_rearms_;
}

// ---------------------------------------------------------------------------------------
// Submission

void UringLoop::ensure_owner() {
  if (owned_) return;
  owned_ = true;
  // The first thread to drive the loop becomes its single issuer.
  // (liburing 2.3 declares io_uring_enable_rings but does not export it: call the kernel.)
  if (ring_.flags & IORING_SETUP_R_DISABLED)
    ::syscall(__NR_io_uring_register, ring_.ring_fd, IORING_REGISTER_ENABLE_RINGS, nullptr, 0);
  // sendfile(2) has no MSG_NOSIGNAL: see platform/posix/sigpipe.h.
  block_sigpipe_on_this_thread();
}

int UringLoop::flush() {
  ensure_owner();
  int rc = io_uring_submit(&ring_);
  if (rc == -EBUSY || rc == -EAGAIN) {
    // The kernel wants the CQ drained first; callbacks cannot run here, so park the CQEs.
    stash_cqes();
    rc = io_uring_submit(&ring_);
  }
  return rc;
}

io_uring_sqe* UringLoop::get_sqe() {
  // The SQ is full: hand it to the kernel now (the only syscall submit() ever makes). It
  // may refuse for a moment (EAGAIN: no memory for requests; EBUSY: a full CQ, which flush
  // parks), so it is asked again, with a pause once the quick tries are spent. A refusal
  // that lasts (about 5 s) or an error that will not pass would have this thread spin
  // forever, unseen: say why and end the process instead. No caller can do without the
  // entry, and the operations already in the ring cannot be completed without the kernel.
  constexpr int kQuickTries = 16, kMaxTries = 5000;
  for (int attempt = 0;; ++attempt) {
    if (io_uring_sqe* sqe = io_uring_get_sqe(&ring_)) return sqe;
    int rc = flush();
    if (io_uring_sqe* sqe = io_uring_get_sqe(&ring_)) return sqe;
    if (sqpoll_ && rc >= 0) io_uring_sqring_wait(&ring_);  // the kernel thread takes them
    bool transient = rc >= 0 || rc == -EAGAIN || rc == -EBUSY || rc == -EINTR;
    if (!transient || attempt >= kMaxTries) {
      std::fprintf(stderr,
                   "pyparallel: io_uring: the kernel refuses every submission (%s after %d "
                   "tries); the loop cannot go on\n",
                   rc < 0 ? std::strerror(-rc) : "the submission queue stays full", attempt + 1);
      std::fflush(stderr);
      std::abort();
    }
    if (attempt >= kQuickTries) ::usleep(1000);
  }
}

void UringLoop::submit(Operation& op) {
  U(op).state = kInFlight;
  U(op).sent = 0;
  U(op).slice_index = 0;
  U(op).backend_slot = 0;
  const int fd = static_cast<int>(op.fd);
  FdSlot* slot = nullptr;
  if (op.code == OpCode::accept || op.code == OpCode::recv || op.code == OpCode::send ||
      op.code == OpCode::sendfile) {
    slot = slot_of(op.fd);
    if (slot != nullptr) U(op).state |= std::uint32_t{slot->gen} << kGenShift;
  }
  switch (op.code) {
    case OpCode::accept:
      arm_accept(op);
      return;
    case OpCode::recv:
      arm_recv(op);
      return;
    case OpCode::send:
    case OpCode::sendfile:
      if (slot != nullptr && slot->sending != nullptr) {
        defer_final(op, -EBUSY);
        return;
      }
      if (slot != nullptr) slot->sending = &op;
      start_output(op);
      return;
    case OpCode::connect: {
      if (op.endpoint == nullptr) {
        defer_final(op, -EINVAL);
        return;
      }
      io_uring_sqe* sqe = get_sqe();
      io_uring_prep_connect(sqe, fd, reinterpret_cast<const sockaddr*>(op.endpoint->storage),
                            op.endpoint->size);
      io_uring_sqe_set_data(sqe, &op);
      return;
    }
    case OpCode::timeout: {
      auto ns = std::max<std::int64_t>(op.duration.count(), 0);
      U(op).timeout.tv_sec = ns / 1'000'000'000;
      U(op).timeout.tv_nsec = ns % 1'000'000'000;
      io_uring_sqe* sqe = get_sqe();
      io_uring_prep_timeout(sqe, &U(op).timeout, 0, 0);
      io_uring_sqe_set_data(sqe, &op);
      return;
    }
    case OpCode::cancel:
      start_cancel(op);
      return;
    case OpCode::close:
      start_close(op);
      return;
  }
  defer_final(op, -EINVAL);
}

void UringLoop::start_output(Operation& op) {
  if (op.code == OpCode::send) {
    start_send(op);
  } else if (op.length == 0) {
    defer_final(op, 0);
  } else {
    U(op).state |= kParked;
    push(ready_sendfiles_, op);
  }
}

void UringLoop::start_close(Operation& op) {
  const int fd = static_cast<int>(op.fd);
  if (FdSlot* slot = slot_of(op.fd)) {
    ++slot->gen;  // ops on the handle stop at their next step
    // What the engine holds for this handle ends here; the kernel's share is cancelled
    // by the cancel-by-fd below.
    slot->sending = nullptr;  // a reused number may send before the old send's CQE
    for (OpList* list : {&parked_recvs_, &ready_sendfiles_}) {
      for (Operation* cur = list->head; cur != nullptr;) {
        Operation* next = reinterpret_cast<Operation*>(U(*cur).backend_slot);
        if (cur->fd == op.fd) {
          remove(*list, *cur);
          U(*cur).state &= ~kParked;
          defer_final(*cur, -ECANCELED);
        }
        cur = next;
      }
    }
  }
  if (cancel_fd_) {
    // Linked: the close runs once the handle's requests are cancelled (hard link, so it
    // runs even when there was nothing to cancel). Both SQEs go in the same batch.
    if (io_uring_sq_space_left(&ring_) < 2) flush();
    io_uring_sqe* sqe = get_sqe();
    io_uring_prep_cancel_fd(sqe, fd, IORING_ASYNC_CANCEL_ALL);
    sqe->flags |= IOSQE_IO_HARDLINK;
    io_uring_sqe_set_data64(sqe, kCloseCancelTag);
  } else {
    // Before 5.19 there is no cancel by fd: a shutdown ends a socket's pending requests
    // (with EOF or EPIPE rather than ECANCELED). Not a socket: ENOTSOCK, harmless.
    ::shutdown(fd, SHUT_RDWR);
  }
  io_uring_sqe* sqe = get_sqe();
  io_uring_prep_close(sqe, fd);
  io_uring_sqe_set_data(sqe, &op);
}

void UringLoop::arm_accept(Operation& op) {
  io_uring_sqe* sqe = get_sqe();
  // Accepted sockets come out non-blocking: sendfile(2) and the caller rely on it.
  constexpr int kFlags = SOCK_NONBLOCK | SOCK_CLOEXEC;
  if (op.multishot && multishot_accept_)
    io_uring_prep_multishot_accept(sqe, static_cast<int>(op.fd), nullptr, nullptr, kFlags);
  else
    io_uring_prep_accept(sqe, static_cast<int>(op.fd), nullptr, nullptr, kFlags);
  io_uring_sqe_set_data(sqe, &op);
}

void UringLoop::arm_recv(Operation& op) {
  io_uring_sqe* sqe = get_sqe();
  const int fd = static_cast<int>(op.fd);
  if (buffer_ring_) {
    // len 0: the kernel fills a whole ring buffer (multishot insists on 0).
    io_uring_prep_recv(sqe, fd, nullptr, 0, 0);
    sqe->flags |= IOSQE_BUFFER_SELECT;
    sqe->buf_group = kBufGroup;
    if (op.multishot && multishot_recv_) sqe->ioprio |= IORING_RECV_MULTISHOT;
  } else {
    std::uint32_t id = take_pool_buffer();
    U(op).slice_index = id;
    io_uring_prep_recv(sqe, fd, buffer(id), buf_size_, 0);
  }
  io_uring_sqe_set_data(sqe, &op);
}

std::uint32_t UringLoop::take_pool_buffer() {
  if (pool_free_.empty()) {
    // Every buffer sits in an armed recv (idle connections hold one each without a
    // buffer ring): grow by another batch rather than stall a connection.
    auto chunk = std::make_unique<std::byte[]>(std::size_t{buf_size_} * buf_count_);
    auto first = static_cast<std::uint32_t>(pool_addr_.size());
    for (std::uint32_t i = 0; i < buf_count_; ++i) {
      pool_addr_.push_back(chunk.get() + std::size_t{i} * buf_size_);
      pool_free_.push_back(first + buf_count_ - 1 - i);
    }
    pool_chunks_.push_back(std::move(chunk));
  }
  std::uint32_t id = pool_free_.back();
  pool_free_.pop_back();
  return id;
}

void UringLoop::recycle(std::uint32_t id) {
  if (!buffer_ring_) {
    pool_free_.push_back(id);
    return;
  }
  io_uring_buf_ring_add(br_, buffer(id), buf_size_, static_cast<unsigned short>(id), br_mask_,
                        static_cast<int>(pending_recycle_));
  // Publish in small batches: one release store per 32 buffers, yet the kernel never
  // waits long for buffers that are already back.
  if (++pending_recycle_ >= 32) commit_recycled();
}

UringLoop::SendState* UringLoop::acquire_send_state() {
  if (free_send_ == nullptr) {
    constexpr std::size_t kChunk = 64;
    auto chunk = std::make_unique<SendState[]>(kChunk);
    for (std::size_t i = 0; i < kChunk; ++i) release_send_state(&chunk[i]);
    send_chunks_.push_back(std::move(chunk));
  }
  SendState* s = free_send_;
  free_send_ = s->next_free;
  return s;
}

void UringLoop::start_send(Operation& op) {
  const std::size_t n = op.slices.size();
  std::uint64_t total = 0;
  for (const IoSlice& s : op.slices) total += s.size;
  if (total == 0) {
    defer_final(op, 0);
    return;
  }
  if (n > 1) {
    SendState* st = acquire_send_state();
    st->prefix = 0;
    st->total = total;
    U(op).backend_slot = reinterpret_cast<std::uintptr_t>(st);
  }
  send_step(op);
}

void UringLoop::send_step(Operation& op) {
  const auto slices = op.slices;
  const int fd = static_cast<int>(op.fd);
  // MSG_NOSIGNAL: a vanished peer is -EPIPE, never SIGPIPE. MSG_WAITALL: newer kernels
  // finish a short stream send inside io_uring instead of completing early.
  constexpr int kFlags = MSG_NOSIGNAL | MSG_WAITALL;
  io_uring_sqe* sqe = get_sqe();
  if (slices.size() == 1) {
    auto* base = static_cast<const std::byte*>(slices[0].data) + U(op).sent;
    io_uring_prep_send(sqe, fd, base,
                       std::min<std::size_t>(slices[0].size - U(op).sent, kMaxSendStep), kFlags);
    io_uring_sqe_set_data(sqe, &op);
    return;
  }
  auto* st = reinterpret_cast<SendState*>(U(op).backend_slot);
  std::size_t idx = U(op).slice_index;
  std::uint64_t off = U(op).sent - st->prefix;
  while (idx < slices.size() && off >= slices[idx].size) {  // skip sent and empty slices
    off -= slices[idx].size;
    st->prefix += slices[idx].size;
    ++idx;
  }
  U(op).slice_index = static_cast<std::uint32_t>(idx);
  if (off != 0 || idx + 1 == slices.size()) {
    // The tail of a partly sent slice goes alone, so the rest can point at the caller's
    // own slice array as the iovec without copying it.
    auto* base = static_cast<const std::byte*>(slices[idx].data) + off;
    io_uring_prep_send(sqe, fd, base, std::min<std::size_t>(slices[idx].size - off, kMaxSendStep),
                       kFlags);
  } else {
    st->msg = msghdr{};
    st->msg.msg_iov = reinterpret_cast<iovec*>(const_cast<IoSlice*>(slices.data() + idx));
    st->msg.msg_iovlen = std::min<std::size_t>(slices.size() - idx, IOV_MAX);
    io_uring_prep_sendmsg(sqe, fd, &st->msg, kFlags);
  }
  io_uring_sqe_set_data(sqe, &op);
}

void UringLoop::start_cancel(Operation& op) {
  Operation* victim = op.target;
  if (victim == nullptr || !(U(*victim).state & kInFlight)) {
    defer_final(op, -ENOENT);
    return;
  }
  if (U(*victim).state & kParked) {
    // The engine holds it, not the kernel: end it here.
    if (victim->code == OpCode::recv) {
      remove(parked_recvs_, *victim);
    } else {
      remove(ready_sendfiles_, *victim);
    }
    U(*victim).state &= ~kParked;
    defer_final(*victim, -ECANCELED);
    defer_final(op, 0);
    return;
  }
  // Multi-step operations (partial sends, sendfile, re-armed recv/accept) may be between
  // kernel requests right now: the flag stops them at their next step.
  U(*victim).state |= kCancelReq;
  if (!(U(*victim).state & kLinked)) {
    links_.push_back({victim, &op});
    U(*victim).state |= kLinked;
    U(op).state |= kLinked;
  }
  io_uring_sqe* sqe = get_sqe();
  io_uring_prep_cancel(sqe, victim, 0);
  io_uring_sqe_set_data(sqe, &op);
}

void UringLoop::arm_wake() {
  io_uring_sqe* sqe = get_sqe();
  io_uring_prep_read(sqe, wake_fd_, &wake_value_, sizeof wake_value_, 0);
  io_uring_sqe_set_data64(sqe, kWakeTag);
}

void UringLoop::post(std::function<void()> fn) {
  if (!posted_.push(std::move(fn))) return;  // an earlier post's wake-up is still pending
  const std::uint64_t one = 1;
  while (::write(wake_fd_, &one, sizeof one) < 0 && errno == EINTR) {
  }
}

// ---------------------------------------------------------------------------------------
// Completion

int UringLoop::run_once(std::chrono::nanoseconds max_wait) {
  ensure_owner();
  ran_ = 0;
  if (ready_sendfiles_.head != nullptr) run_ready_sendfiles();
  const bool busy = ran_ > 0 || !deferred_.empty() || !backlog_.empty();
  if (busy || max_wait.count() == 0) {
    // Submit and run pending task work (DEFER_TASKRUN), without waiting.
    io_uring_submit_and_get_events(&ring_);
  } else if (io_uring_cq_ready(&ring_) > 0 && io_uring_sq_ready(&ring_) == 0) {
    // Completions are already there and nothing is queued: no syscall at all.
  } else if (max_wait.count() < 0) {
    io_uring_submit_and_wait(&ring_, 1);
  } else {
    __kernel_timespec ts{};
    ts.tv_sec = max_wait.count() / 1'000'000'000;
    ts.tv_nsec = max_wait.count() % 1'000'000'000;
    io_uring_cqe* cqe = nullptr;
    io_uring_submit_and_wait_timeout(&ring_, &cqe, 1, &ts, nullptr);  // -ETIME is fine
  }
  reap();
  run_deferred();
  return ran_;
}

void UringLoop::reap() {
  if (!backlog_.empty()) {
    backlog_running_.swap(backlog_);
    for (const RawCqe& c : backlog_running_) dispatch(c.user_data, c.res, c.flags);
    backlog_running_.clear();
  }
  // Bounded, so that a flood of multishot completions cannot starve the deferred work.
  unsigned budget = cq_entries_ * 2;
  io_uring_cq* cq = &ring_.cq;
  while (budget-- > 0) {
    unsigned head = *cq->khead;
    if (head == io_uring_smp_load_acquire(cq->ktail)) break;
    const io_uring_cqe* cqe = &cq->cqes[head & cq->ring_mask];
    const std::uint64_t user_data = cqe->user_data;
    const std::int32_t res = cqe->res;
    const std::uint32_t flags = cqe->flags;
    // Release the slot before the callback: a callback that fills the SQ may make the
    // kernel post more CQEs (or us stash them), and the slot is copied already.
    io_uring_cq_advance(&ring_, 1);
    dispatch(user_data, res, flags);
  }
  commit_recycled();
  if (parked_recvs_.head != nullptr) {
    // Buffers came back during this batch: re-arm the recvs that found the ring empty.
    OpList list = std::exchange(parked_recvs_, OpList{});
    for (Operation* op = list.head; op != nullptr;) {
      Operation* next = reinterpret_cast<Operation*>(U(*op).backend_slot);
      U(*op).backend_slot = 0;
      U(*op).state &= ~kParked;
      arm_recv(*op);
      op = next;
    }
  }
}

void UringLoop::stash_cqes() {
  io_uring_cq* cq = &ring_.cq;
  for (;;) {
    unsigned head = *cq->khead;
    if (head == io_uring_smp_load_acquire(cq->ktail)) break;
    const io_uring_cqe* cqe = &cq->cqes[head & cq->ring_mask];
    backlog_.push_back({cqe->user_data, cqe->res, cqe->flags});
    io_uring_cq_advance(&ring_, 1);
  }
}

void UringLoop::dispatch(std::uint64_t user_data, std::int32_t res, std::uint32_t flags) {
  if (user_data < 8) {  // the engine's own requests (kCloseCancelTag's result is moot)
    if (user_data == kWakeTag) {
      // Re-arm first: a post() racing with the drain below must find a read armed.
      if (res != -EBADF) arm_wake();
      ran_ += posted_.drain();
    }
    return;
  }
  if (user_data == LIBURING_UDATA_TIMEOUT) return;  // liburing's own wait timeout (< 5.11)
  Operation& op = *reinterpret_cast<Operation*>(user_data);
  switch (op.code) {
    case OpCode::accept:
      on_accept(op, res, flags);
      return;
    case OpCode::recv:
      on_recv(op, res, flags);
      return;
    case OpCode::send:
      on_send(op, res);
      return;
    case OpCode::sendfile:
      // The POLLOUT the last sendfile(2) was waiting for.
      if (res < 0)
        finish(op, res);
      else if (stopped(op))
        finish(op, -ECANCELED);
      else
        run_sendfile(op);
      return;
    case OpCode::timeout:
      finish(op, res == -ETIME ? 0 : res);
      return;
    case OpCode::cancel:
      on_cancel(op, res);
      return;
    case OpCode::connect:
    case OpCode::close:
      finish(op, res);
      return;
  }
}

void UringLoop::on_accept(Operation& op, std::int32_t res, std::uint32_t flags) {
  const bool kernel_more = (flags & IORING_CQE_F_MORE) != 0;
  if (res < 0 && !kernel_more) {
    // The kernel ended the stream (EMFILE, ECANCELED...): the caller decides to re-arm.
    finish(op, res);
    return;
  }
  Completion c;
  c.result = res;
  c.more = op.multishot || kernel_more;
  if (!c.more) {
    finish(op, c);
    return;
  }
  ++ran_;
  op.callback(op, c);
  if (kernel_more) return;
  // A success that ended the kernel's stream (or an emulated multishot): keep accepting.
  if (stopped(op))
    defer_final(op, -ECANCELED);
  else
    arm_accept(op);
}

void UringLoop::on_recv(Operation& op, std::int32_t res, std::uint32_t flags) {
  const bool kernel_more = (flags & IORING_CQE_F_MORE) != 0;
  if (res > 0) {
    std::uint32_t id;
    if (buffer_ring_) {
      if (!(flags & IORING_CQE_F_BUFFER)) {  // cannot happen with BUFFER_SELECT
        if (!kernel_more) finish(op, -EIO);
        return;
      }
      id = flags >> IORING_CQE_BUFFER_SHIFT;
    } else {
      id = U(op).slice_index;
    }
    U(op).state &= ~kEnobufsMask;
    Completion c;
    c.result = res;
    c.data = std::span<const std::byte>(buffer(id), static_cast<std::size_t>(res));
    c.more = op.multishot || kernel_more;
    if (c.more) {
      ++ran_;
      op.callback(op, c);
    } else {
      finish(op, c);
    }
    recycle(id);  // touches only the buffer: `op` may be gone if that was its last call
    if (!c.more || kernel_more) return;
    // The kernel's request ended (single-shot emulation, or the kernel capped the
    // multishot): re-arm, unless a cancel or close arrived meanwhile.
    if (stopped(op))
      defer_final(op, -ECANCELED);
    else
      arm_recv(op);
    return;
  }
  if (!buffer_ring_) pool_free_.push_back(U(op).slice_index);
  if (kernel_more) return;  // a non-final error CQE: not expected, nothing to hand over
  if (res == -ENOBUFS && buffer_ring_) {
    unsigned tries = (U(op).state & kEnobufsMask) >> kEnobufsShift;
    if (stopped(op)) {
      finish(op, -ECANCELED);
      return;
    }
    if (tries < kMaxEnobufsRearms) {
      // The ring ran dry because every buffer was in this batch: park the recv and re-arm
      // it when the batch has recycled them (the data waits in the socket meanwhile).
      U(op).state = (U(op).state & ~kEnobufsMask) | ((tries + 1) << kEnobufsShift) | kParked;
      push(parked_recvs_, op);
      ++enobufs_rearms_;
      return;
    }
  }
  finish(op, res);
}

void UringLoop::on_send(Operation& op, std::int32_t res) {
  auto* st = reinterpret_cast<SendState*>(U(op).backend_slot);
  const std::uint64_t total = st != nullptr ? st->total : op.slices[0].size;
  std::int64_t result;
  if (res < 0) {
    if ((res == -EINTR || res == -EAGAIN) && !stopped(op)) {
      send_step(op);
      return;
    }
    result = res;
  } else {
    U(op).sent += static_cast<std::uint64_t>(res);
    if (U(op).sent >= total) {
      result = static_cast<std::int64_t>(U(op).sent);
    } else if (stopped(op)) {
      result = -ECANCELED;
    } else if (res == 0) {
      result = -EIO;  // no progress on a stream socket: retrying would spin
    } else {
      send_step(op);  // a partial send: the rest goes from where it stopped
      return;
    }
  }
  if (st != nullptr) release_send_state(st);
  U(op).backend_slot = 0;
  finish(op, result);
}

void UringLoop::run_ready_sendfiles() {
  OpList list = std::exchange(ready_sendfiles_, OpList{});
  for (Operation* op = list.head; op != nullptr;) {
    Operation* next = reinterpret_cast<Operation*>(U(*op).backend_slot);
    U(*op).backend_slot = 0;
    U(*op).state &= ~kParked;
    if (stopped(*op))
      finish(*op, -ECANCELED);
    else
      run_sendfile(*op);  // may finish (and free) *op: `next` was read before
    op = next;
  }
}

// Why sendfile(2) on the loop thread rather than io_uring splice through a pipe: io_uring
// has no sendfile opcode, and IORING_OP_SPLICE from a regular file is punted to an io-wq
// thread (the file side cannot be polled), two linked splices per chunk, plus a pipe per
// concurrent transfer (a shared pipe would mix connections' bytes when one socket blocks,
// and a short socket-side splice leaves bytes in the pipe to drain). sendfile(2) moves
// page-cache pages to the socket in one syscall on this thread, as nginx does; on EAGAIN
// the socket's POLLOUT is awaited through the ring. Measured here (loopback, hot file,
// process CPU per transfer, 20,000 transfers, on the 2-core development box):
// 4 KiB: sendfile 3.8-4.4 us vs splice pair 8.2-8.6 us; 64 KiB: 30-31 us vs 102 us.
// The cost it keeps is nginx's: a cold file blocks this thread in the page-cache read.
void UringLoop::run_sendfile(Operation& op) {
  const int sock = static_cast<int>(op.fd);
  const int file = static_cast<int>(op.file);
  while (U(op).sent < op.length) {
    const std::size_t want =
        static_cast<std::size_t>(std::min<std::uint64_t>(op.length - U(op).sent, kMaxSendStep));
    off_t off = static_cast<off_t>(op.offset + U(op).sent);
    ssize_t n = ::sendfile(sock, file, &off, want);
    if (n > 0) {
      U(op).sent += static_cast<std::uint64_t>(n);
      // A short write means the socket buffer is full: wait for room instead of paying
      // for the EAGAIN call.
      if (static_cast<std::size_t>(n) < want && U(op).sent < op.length) break;
      continue;
    }
    if (n == 0) {  // the file ended before `length`
      finish(op, static_cast<std::int64_t>(U(op).sent));
      return;
    }
    const int e = errno;
    if (e == EINTR) continue;
    if (e == EAGAIN) break;
    if (e == EPIPE) consume_pending_sigpipe();  // the peer is gone
    finish(op, -e);
    return;
  }
  if (U(op).sent >= op.length) {
    finish(op, static_cast<std::int64_t>(U(op).sent));
    return;
  }
  io_uring_sqe* sqe = get_sqe();
  io_uring_prep_poll_add(sqe, sock, POLLOUT);
  io_uring_sqe_set_data(sqe, &op);
}

void UringLoop::on_cancel(Operation& op, std::int32_t res) {
  if (U(op).state & kVictimDone) {
    // The victim already ended: 0 if that was this cancel's doing.
    const auto victim_result = static_cast<std::int64_t>(U(op).backend_slot);
    std::int64_t r = res;
    if (res == -EALREADY || (res == -ENOENT && victim_result == -ECANCELED)) r = 0;
    U(op).backend_slot = 0;
    finish(op, r);
    return;
  }
  if (U(op).state & kLinked) {
    if (res == -ENOENT || res == -EALREADY) {
      // The victim is between kernel requests (or running); it ends at its next step and
      // settles this cancel's result then (resolve_victim).
      U(op).sent = static_cast<std::uint64_t>(static_cast<std::int64_t>(res));
      U(op).state |= kWaiting;
      return;
    }
    unlink_cancel(op);  // res 0: the kernel completes the victim with -ECANCELED
  }
  finish(op, res == -EALREADY ? 0 : res);
}

void UringLoop::unlink_cancel(Operation& cancel) {
  for (std::size_t i = 0; i < links_.size(); ++i) {
    if (links_[i].cancel == &cancel) {
      U(*links_[i].victim).state &= ~kLinked;
      links_[i] = links_.back();
      links_.pop_back();
      break;
    }
  }
  U(cancel).state &= ~kLinked;
}

void UringLoop::resolve_victim(Operation& victim, std::int64_t result) {
  for (std::size_t i = 0; i < links_.size(); ++i) {
    if (links_[i].victim != &victim) continue;
    Operation& cancel = *links_[i].cancel;
    links_[i] = links_.back();
    links_.pop_back();
    U(cancel).state &= ~kLinked;
    if (U(cancel).state & kWaiting) {
      const auto kernel_result = static_cast<std::int64_t>(U(cancel).sent);
      U(cancel).state &= ~kWaiting;
      defer_final(cancel, kernel_result == -EALREADY || result == -ECANCELED ? 0 : -ENOENT);
    } else {
      U(cancel).state |= kVictimDone;
      U(cancel).backend_slot = static_cast<std::uintptr_t>(result);
    }
    return;
  }
}

void UringLoop::finish(Operation& op, const Completion& c) {
  const std::uint32_t state = U(op).state;
  U(op).state = 0;  // from here the caller owns `op` again (it may resubmit or free it)
  if (state & kLinked) resolve_victim(op, c.result);
  if ((op.code == OpCode::send || op.code == OpCode::sendfile) && op.fd >= 0 &&
      static_cast<std::size_t>(op.fd) < fds_.size()) {
    FdSlot& slot = fds_[static_cast<std::size_t>(op.fd)];
    if (slot.sending == &op) slot.sending = nullptr;
  }
  ++ran_;
  op.callback(op, c);
}

void UringLoop::defer_final(Operation& op, std::int64_t result) {
  // Decided now (so a later cancel sees it finished), delivered from run_once.
  U(op).state &= ~kInFlight;
  deferred_.push_back({&op, result});
}

void UringLoop::run_deferred() {
  if (deferred_.empty()) return;
  deferred_running_.swap(deferred_);
  for (const Deferred& d : deferred_running_) finish(*d.op, d.result);
  deferred_running_.clear();
}

void UringLoop::push(OpList& list, Operation& op) {
  U(op).backend_slot = 0;
  if (list.tail != nullptr)
    U(*list.tail).backend_slot = reinterpret_cast<std::uintptr_t>(&op);
  else
    list.head = &op;
  list.tail = &op;
}

bool UringLoop::remove(OpList& list, Operation& op) {
  Operation* prev = nullptr;
  for (Operation* cur = list.head; cur != nullptr;
       prev = cur, cur = reinterpret_cast<Operation*>(U(*cur).backend_slot)) {
    if (cur != &op) continue;
    Operation* next = reinterpret_cast<Operation*>(U(*cur).backend_slot);
    if (prev != nullptr)
      U(*prev).backend_slot = reinterpret_cast<std::uintptr_t>(next);
    else
      list.head = next;
    if (list.tail == cur) list.tail = prev;
    U(*cur).backend_slot = 0;
    return true;
  }
  return false;
}

}  // namespace

std::unique_ptr<Loop> open_uring_loop(const LoopOptions& options, std::string& why) {
  if (env_flag(kDisableUringEnv)) {
    why = fmt::format("disabled by {}", kDisableUringEnv);
    return nullptr;
  }
  auto loop = std::make_unique<UringLoop>();
  if (!loop->init(options, why)) return nullptr;
  return loop;
}

bool describe_uring_loop(const Loop& loop, UringInfo& out) {
  auto* uring = dynamic_cast<const UringLoop*>(&loop);
  if (uring == nullptr) return false;
  uring->describe(out);
  return true;
}

}  // namespace pp::platform
