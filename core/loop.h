// core/loop.h -- the portable completion-model engine API.
//
// Every backend (io_uring, libaio, epoll, IOCP, kqueue) implements `Loop`. The model is
// completion-based everywhere: the caller fills in an `Operation`, submits it, and
// later gets exactly one completion for it (or a stream of them for multishot
// accept/recv, the last one carrying `more == false`). A readiness backend (epoll,
// kqueue, libaio: platform/posix/readiness_loop.h) emulates this by performing the
// syscall when the handle is ready. This header
// includes no OS header: it is what `core/`, `interpreter/` and `examples/` see.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <new>
#include <span>
#include <string>
#include <string_view>
#include <type_traits>
#include <vector>

namespace pp {

/// An OS handle: a file descriptor on POSIX, a SOCKET/HANDLE value on Windows.
using Handle = std::intptr_t;
inline constexpr Handle invalid_handle = -1;

/// One contiguous piece of a gathered send. Its bytes must stay valid until the
/// send's completion arrives.
struct IoSlice {
  const void* data = nullptr;
  std::size_t size = 0;
};

/// A socket address in the OS's own format (sockaddr_storage-sized). Made by
/// `resolve_endpoint()` in core/net.h so that core/ needs no OS header.
struct Endpoint {
  alignas(8) std::byte storage[128]{};
  std::uint32_t size = 0;
};

/// What an operation does. See the `prep_*` helpers on `Operation` for each one's
/// parameters and result.
enum class OpCode : std::uint8_t { accept, recv, send, sendfile, connect, timeout, cancel, close };

struct Operation;

/// Bytes of backend-private state inside every Operation. Sized for the largest
/// backend: IOCP's OVERLAPPED (32 bytes on x64) plus a multi-step operation's
/// progress; io_uring uses 40 (a timeout's kernel timespec lives here).
inline constexpr std::size_t kOperationStateSize = 64;

/// What one completion carries to the operation's callback.
struct Completion {
  /// >= 0: the operation's value (the new handle for accept, bytes for
  /// recv/send/sendfile, 0 for connect/timeout/cancel/close; recv's 0 is EOF).
  /// < 0: a negated <cerrno> value (ECONNRESET, EPIPE, ECANCELED, ENOBUFS...);
  /// backends on other OSes translate their errors to these.
  std::int64_t result = 0;
  /// recv only: the bytes received, in an engine-owned buffer that stays valid
  /// until the callback returns. Copy what you keep.
  std::span<const std::byte> data;
  /// Multishot accept/recv: true while more completions of this operation follow.
  /// The completion with `more == false` is the last; after it the operation may
  /// be reused or freed.
  bool more = false;
};

/// Called on the loop's thread, from `Loop::run_once`, once per completion.
using CompletionFn = void (*)(Operation& op, const Completion& completion);

/// A caller-owned operation. Prepare it with one of the `prep_*` helpers, submit it
/// with `Loop::submit`, and keep it alive at a fixed address until its last
/// completion. `backend_bytes` belongs to the loop while the operation is in
/// flight; the parameters must not change until its last completion.
struct Operation {
  OpCode code = OpCode::timeout;
  // Parameters (which ones apply depends on `code`). `multishot` sits beside `code`: every
  // connection holds a few operations, and padding between them cost 16 bytes each.
  bool multishot = false;  // accept, recv
  Handle fd = invalid_handle;
  CompletionFn callback = nullptr;
  /// The caller's context, untouched by the engine.
  void* user = nullptr;

  std::span<const IoSlice> slices;      // send
  Handle file = invalid_handle;         // sendfile: the source file
  std::uint64_t offset = 0;             // sendfile: first byte of the file to send
  std::uint64_t length = 0;             // sendfile: bytes to send
  const Endpoint* endpoint = nullptr;   // connect
  std::chrono::nanoseconds duration{};  // timeout
  Operation* target = nullptr;          // cancel

  /// Backend-private state while the operation is in flight: each backend lays its own
  /// struct over these bytes with `backend_state<T>()`. Zeroed by every `prep_*`.
  alignas(16) std::byte backend_bytes[kOperationStateSize]{};

  /// Accept connections on listening socket `listener`. Use `multishot` for a
  /// server's accept loop: one submission, one completion per new connection.
  /// Result: the new connection's handle (non-blocking, close-on-exec, owned by
  /// the caller). A multishot accept may end (`more == false`) on an error or by
  /// the kernel's choice: resubmit whenever it does.
  void prep_accept(Handle listener, bool multi, CompletionFn cb, void* ctx) {
    reset(OpCode::accept, listener, cb, ctx);
    multishot = multi;
  }
  /// Receive into engine-owned buffers (io_uring provided-buffer rings; a pool on
  /// other backends). Use `multishot` for a connection's read side: completions
  /// keep coming until EOF (result 0), an error, or a cancel.
  void prep_recv(Handle sock, bool multi, CompletionFn cb, void* ctx) {
    reset(OpCode::recv, sock, cb, ctx);
    multishot = multi;
  }
  /// Send all of `bufs`, gathered, finishing partial sends inside the engine. One
  /// completion: the total bytes sent, or the error that stopped it (a send that
  /// failed part-way reports only the error). One output (send or sendfile) at a time
  /// per socket: the caller orders them (core/outbound.h does), because two in flight
  /// could interleave their bytes after a partial send. A send or sendfile submitted
  /// while another is in flight on the same socket completes with -EBUSY.
  void prep_send(Handle sock, std::span<const IoSlice> bufs, CompletionFn cb, void* ctx) {
    reset(OpCode::send, sock, cb, ctx);
    slices = bufs;
  }
  /// Send `len` bytes of `src` from `off` straight from the page cache (sendfile,
  /// TransmitFile): the bytes never pass through user memory. Result: bytes sent.
  void prep_sendfile(Handle sock, Handle src, std::uint64_t off, std::uint64_t len,
                     CompletionFn cb, void* ctx) {
    reset(OpCode::sendfile, sock, cb, ctx);
    file = src;
    offset = off;
    length = len;
  }
  /// Connect non-blocking socket `sock` (from `open_stream_socket`) to `to`.
  void prep_connect(Handle sock, const Endpoint* to, CompletionFn cb, void* ctx) {
    reset(OpCode::connect, sock, cb, ctx);
    endpoint = to;
  }
  /// Complete after `after` has passed (result 0), or with -ECANCELED if cancelled.
  void prep_timeout(std::chrono::nanoseconds after, CompletionFn cb, void* ctx) {
    reset(OpCode::timeout, invalid_handle, cb, ctx);
    duration = after;
  }
  /// Cancel the in-flight operation `victim`: it completes with -ECANCELED (its
  /// last completion). This operation's own result is 0, or -ENOENT when `victim`
  /// had already finished.
  void prep_cancel(Operation* victim, CompletionFn cb, void* ctx) {
    reset(OpCode::cancel, invalid_handle, cb, ctx);
    target = victim;
  }
  /// Close `h`. The engine first ends the handle's in-flight operations (each
  /// completes with -ECANCELED), so nothing touches a reused descriptor.
  void prep_close(Handle h, CompletionFn cb, void* ctx) { reset(OpCode::close, h, cb, ctx); }

 private:
  void reset(OpCode c, Handle h, CompletionFn cb, void* ctx) {
    *this = Operation{};
    code = c;
    fd = h;
    callback = cb;
    user = ctx;
  }
};

/// A backend's typed view of `op`'s private state. `State` is one plain struct per
/// backend (trivially copyable, so the all-zero bytes `prep_*` leave are a valid,
/// empty state), checked here against the room an Operation has.
template <class State>
State& backend_state(Operation& op) {
  static_assert(sizeof(State) <= kOperationStateSize, "backend state does not fit");
  static_assert(alignof(State) <= 16, "backend state over-aligned");
  static_assert(std::is_trivially_copyable_v<State> && std::is_trivially_destructible_v<State>);
  return *std::launder(reinterpret_cast<State*>(op.backend_bytes));
}
template <class State>
const State& backend_state(const Operation& op) {
  return backend_state<State>(const_cast<Operation&>(op));
}

/// The backends this build knows. `automatic` probes them in order of preference (on
/// Linux: io_uring, then libaio, then epoll). `libaio` is Linux AIO's IOCB_CMD_POLL under
/// the readiness core, for hosts that block io_uring but allow the AIO syscalls.
enum class BackendKind : std::uint8_t { automatic, io_uring, libaio, epoll, iocp, kqueue };

/// "auto", "io_uring", "libaio", "epoll", "iocp", "kqueue".
std::string_view to_string(BackendKind kind);
/// Parses a backend name as `to_string` writes it; false for an unknown name.
bool parse_backend_kind(std::string_view text, BackendKind& out);

/// Tuning for one loop (one per worker).
struct LoopOptions {
  /// Size of each engine-owned receive buffer.
  std::uint32_t recv_buffer_size = 16 * 1024;
  /// Receive buffers per loop (a power of two for io_uring's buffer ring).
  std::uint32_t recv_buffer_count = 512;
  /// Submission queue entries (io_uring), event batch size (epoll, libaio); a libaio
  /// loop also holds about this many pending polls before its AIO context grows.
  std::uint32_t queue_depth = 2048;
  /// io_uring SQPOLL: a kernel thread polls the ring. Off by default: it burns a
  /// core per ring, which only pays when the cores are otherwise idle.
  bool sqpoll = false;
};

/// One completion engine instance, owned and driven by one thread (a worker): the
/// first thread that submits or runs it. Only `post` may be called from other
/// threads. Destroying a loop drops operations still in flight without callbacks;
/// `run_once` must not be called from inside a callback.
///
/// SIGPIPE: no operation raises it, on any backend, whatever the process's
/// disposition. Sends pass MSG_NOSIGNAL (SO_NOSIGPIPE on macOS); sendfile(2) has no
/// such flag, so POSIX backends block SIGPIPE on the thread that drives the loop and
/// consume the one a sendfile to a vanished peer leaves pending (-EPIPE is the result).
/// Other threads' SIGPIPE handling is the application's.
class Loop {
 public:
  virtual ~Loop() = default;
  /// The backend's name ("io_uring", "epoll"), for logs and tests.
  virtual std::string_view backend_name() const = 0;
  /// Queue `op`. Its callback runs later, from `run_once` on this loop's thread --
  /// never from inside `submit`. Loop thread only.
  virtual void submit(Operation& op) = 0;
  /// Hand pending submissions to the kernel, wait up to `max_wait` for completions
  /// (a negative value waits without limit), and run their callbacks and any
  /// posted functions. Returns how many completions and posted functions ran.
  virtual int run_once(std::chrono::nanoseconds max_wait) = 0;
  /// Thread-safe: run `fn` on the loop's thread soon, waking it if it is waiting in
  /// the kernel. Use it for cross-thread work hand-off and for shutdown.
  virtual void post(std::function<void()> fn) = 0;
};

/// The outcome of `open_loop`.
struct OpenLoopResult {
  std::unique_ptr<Loop> loop;  // null on failure
  /// On failure: what went wrong and what to do about it.
  std::string error;
  /// For `automatic`: which backend was chosen and why (one log line).
  std::string reason;
};

/// Opens a loop on `kind`. `automatic` probes the best backend first (io_uring:
/// ring setup plus an opcode probe; then libaio: io_setup plus a poll submission) and
/// falls back, saying why in `reason`; EPERM/ENOSYS from io_uring_setup or io_setup
/// (seccomp, kernel.io_uring_disabled) count as unavailable. A named backend that is
/// unavailable fails with a clear `error` naming the reason and the alternatives.
OpenLoopResult open_loop(BackendKind kind, const LoopOptions& options = {});

/// The backends that can open a loop on this host, best first. Engine tests run
/// against each of them.
std::vector<BackendKind> available_backends();

/// The backends this build has for this OS, best first (io_uring, libaio, epoll on Linux;
/// iocp on Windows; kqueue on BSD and macOS), whether or not this host lets them open.
/// Use it to check a backend name when it is given (flags, PYPARALLEL_BACKEND, run()) and
/// to list the choices; `open_loop` then says why one of them cannot start here.
std::span<const BackendKind> built_backends();

}  // namespace pp
