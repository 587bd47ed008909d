// platform/win32/iocp_loop.cpp -- the completion model on an I/O completion port.
//
// How the operations map:
//  - accept: AcceptEx on the listener into a socket made beforehand, then
//    SO_UPDATE_ACCEPT_CONTEXT so the new socket answers getpeername/shutdown. Listeners live
//    on the process's accept port (accept_port.h), which forwards each completion here.
//    Multishot is emulated by posting the next AcceptEx when one completes.
//  - recv: WSARecv into an engine-owned buffer lent to that request; multishot by
//    re-posting after each completion's callback.
//  - send: one WSASend of every slice (the provider captures the WSABUF array), re-posted
//    for the rest in the rare partial completion.
//  - sendfile: TransmitFile from the OVERLAPPED's offset, in chunks under its 2 GiB limit,
//    clamped to the file's size (TransmitFile's 0 means "the whole file").
//  - connect: ConnectEx after binding the socket to the wildcard address, then
//    SO_UPDATE_CONNECT_CONTEXT.
//  - timeout: a min-heap; the earliest deadline bounds GetQueuedCompletionStatusEx's wait
//    (milliseconds, rounded up; timeBeginPeriod(1) makes that wait wake on time).
//  - cancel: CancelIoEx on the target's own OVERLAPPED.
//  - close: CancelIoEx on every request of the handle, closesocket once they have all
//    completed, then the close's own completion: nothing is posted to a reused handle value.
//  - post: PostQueuedCompletionStatus with a key of its own.
//  Sockets the loop meets are associated with its port on first use and, where Winsock
//  allows, switched to FILE_SKIP_COMPLETION_PORT_ON_SUCCESS: a call that completes at once
//  (data already buffered, a send that fit) is handled without a packet round trip.
//
// Why the OVERLAPPED is not in Operation::backend_bytes: the kernel writes a request's
// status into its OVERLAPPED when the request ends, even after a cancel, and a caller may
// free an Operation whose loop is being destroyed (core/loop.h allows dropping in-flight
// operations with the loop). So every overlapped call uses a loop-owned IoRequest that lives
// until its packet has been dequeued; the Operation only points at it. The destructor
// cancels what is pending and drains the port before freeing the requests.
#include "platform/win32/iocp_loop.h"

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <climits>
#include <cstdlib>
#include <cstring>
#include <unordered_map>
#include <vector>

#include <fmt/format.h>

#include "core/log.h"
#include "core/post_queue.h"
#include "platform/win32/accept_port.h"
#include "platform/win32/error_codes.h"
#include "platform/win32/winsock.h"

// After <windows.h> (winsock.h), which they build on.
#include <mmsystem.h>
#include <winternl.h>

namespace pp::platform {
namespace {

using win32::ForwardedOverlapped;
using win32::result_from_windows_error;

constexpr ULONG_PTR kIoKey = 1;
constexpr ULONG_PTR kWakeKey = 3;
// Room AcceptEx needs for each address: the sockaddr plus 16 bytes, its documented rule.
constexpr DWORD kAcceptAddressSize = sizeof(sockaddr_in6) + 16;
// WSABUFs per WSASend; more slices go out over several calls.
constexpr std::size_t kMaxWsaBufs = 64;
// TransmitFile sends at most 2^31 - 2 bytes per call.
constexpr std::uint64_t kMaxTransmit = 1u << 30;
// Packets dequeued per GetQueuedCompletionStatusEx.
constexpr ULONG kBatch = 256;

/// One overlapped call in the kernel. Loop-owned (see the header comment); recycled.
struct IoRequest {
  ForwardedOverlapped fwd{};         // first: an OVERLAPPED* is the request's address
  Operation* op = nullptr;           // null once the operation was dropped (loop destruction)
  SOCKET handle = INVALID_SOCKET;    // the handle the call was issued on (CancelIoEx)
  SOCKET accepted = INVALID_SOCKET;  // accept: the socket AcceptEx fills
  std::byte* buffer = nullptr;       // recv: lent from the pool for this request's life
  DWORD flags = 0;                   // WSARecv's in/out flags
  bool in_kernel = false;
  char addresses[2 * kAcceptAddressSize]{};
};

/// The per-Operation state, laid over Operation::backend_bytes.
struct IocpState {
  IoRequest* req;
  std::uint64_t done;     // send/sendfile: bytes sent so far
  std::int64_t deadline;  // timeout: steady-clock nanoseconds
  std::uint32_t flags;
  std::uint32_t heap_index;
};

// IocpState::flags. All zero (what prep_* leaves) is an idle operation.
constexpr std::uint32_t kActive = 1;     // submitted, last completion not yet delivered
constexpr std::uint32_t kCancelled = 2;  // a cancel or close asked it to end
constexpr std::uint32_t kCounted = 4;    // counted in its socket's `ops`
constexpr std::uint32_t kTimer = 8;      // in the timer heap
constexpr std::uint32_t kOutput = 16;    // holds its socket's output slot

IocpState& st(Operation& op) {
  return backend_state<IocpState>(op);
}

std::int64_t now_ns() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

class IocpLoop final : public Loop {
 public:
  IocpLoop(const LoopOptions& options, HANDLE port)
      : port_(port), recv_size_(options.recv_buffer_size) {
    if (recv_size_ == 0) recv_size_ = 16 * 1024;
    if (recv_size_ > INT32_MAX) recv_size_ = INT32_MAX;
    // The completion-port wait's timeout, which is what times the timers, wakes at the
    // system timer's resolution: 15.6 ms unless a process asks for finer. 1 ms while a loop
    // exists, so a 300 us timer fires after about 1 ms rather than 16 (Windows restores the
    // default when the last request ends). Costs some power on an idle laptop; a server
    // loop is not idle.
    ::timeBeginPeriod(1);
  }
  ~IocpLoop() override;

  std::string_view backend_name() const override { return "iocp"; }
  void submit(Operation& op) override;
  int run_once(std::chrono::nanoseconds max_wait) override;
  void post(std::function<void()> fn) override {
    if (posts_.push(std::move(fn))) ::PostQueuedCompletionStatus(port_, 0, kWakeKey, nullptr);
  }

 private:
  /// What the loop knows about one socket with operations in flight.
  struct Sock {
    int ops = 0;                   // operations counted (kCounted) on it
    Operation* output = nullptr;   // the send/sendfile in flight
    bool skip_on_success = false;  // FILE_SKIP_COMPLETION_PORT_ON_SUCCESS is set
    bool closing = false;
    std::vector<Operation*> closes;  // close operations waiting for `ops` to reach 0
  };
  /// A completion to process on this thread: either a request's (from the port, or one
  /// that completed at once) or a final result decided by the loop itself.
  struct Ready {
    Operation* op;
    IoRequest* req;  // null: deliver `result` as the last completion
    std::int64_t result;
    DWORD bytes;
    DWORD error;
  };

  void start(Operation& op);
  Sock* sock_for(Operation& op, std::int64_t& error);
  void issue(Operation& op);
  void issue_accept(Operation& op, Sock& s);
  void issue_recv(Operation& op, Sock& s);
  void issue_send(Operation& op, Sock& s);
  void issue_sendfile(Operation& op, Sock& s);
  void issue_connect(Operation& op, Sock& s);
  /// After an overlapped call returned: pending, done at once, or failed.
  void after_call(Operation& op, IoRequest* req, bool ok, DWORD bytes, Sock& s);
  void on_packet(IoRequest* req, DWORD bytes, DWORD error);
  void on_io(Operation& op, IoRequest* req, DWORD bytes, DWORD error);
  void start_cancel(Operation& op);
  void start_close(Operation& op);
  void finish_close(Handle h, Sock& s);
  /// The operation's last completion: releases what it holds, then calls back.
  void finish(Operation& op, std::int64_t result, std::span<const std::byte> data = {});
  void deliver(Operation& op, const Completion& c) {
    ++ran_;
    op.callback(op, c);
  }
  void defer(Operation& op, std::int64_t result) { ready_.push_back({&op, nullptr, result, 0, 0}); }

  IoRequest* get_request(Operation& op);
  void put_request(IoRequest* req);
  std::byte* get_buffer();
  DWORD packet_error(IoRequest* req);

  void heap_push(Operation& op);
  void heap_erase(std::size_t i);
  void heap_up(std::size_t i);
  void heap_down(std::size_t i);
  void heap_set(std::size_t i, Operation* op) {
    heap_[i] = op;
    st(*op).heap_index = static_cast<std::uint32_t>(i);
  }
  void expire_timers();

  HANDLE port_;
  std::uint32_t recv_size_;
  std::unordered_map<Handle, Sock> socks_;
  std::vector<Operation*> sq_;
  std::vector<Operation*> sq_run_;
  std::vector<Ready> ready_;
  std::vector<Ready> ready_run_;
  std::vector<Operation*> heap_;
  std::vector<std::unique_ptr<IoRequest>> requests_;  // every request ever made
  std::vector<IoRequest*> free_requests_;
  std::vector<std::unique_ptr<std::byte[]>> buffers_;
  std::vector<std::byte*> free_buffers_;
  std::size_t in_kernel_ = 0;
  PostQueue posts_;
  int ran_ = 0;
};

// --- requests and buffers ---------------------------------------------------------------

IoRequest* IocpLoop::get_request(Operation& op) {
  IoRequest* r;
  if (free_requests_.empty()) {
    requests_.push_back(std::make_unique<IoRequest>());
    r = requests_.back().get();
  } else {
    r = free_requests_.back();
    free_requests_.pop_back();
  }
  std::memset(&r->fwd.ov, 0, sizeof r->fwd.ov);
  r->fwd.destination = port_;
  r->op = &op;
  r->handle = win32::to_socket(op.fd);
  r->accepted = INVALID_SOCKET;
  r->flags = 0;
  r->in_kernel = false;
  st(op).req = r;
  return r;
}

void IocpLoop::put_request(IoRequest* req) {
  if (req->buffer) {
    free_buffers_.push_back(req->buffer);
    req->buffer = nullptr;
  }
  if (req->accepted != INVALID_SOCKET) {
    ::closesocket(req->accepted);
    req->accepted = INVALID_SOCKET;
  }
  if (req->op && st(*req->op).req == req) st(*req->op).req = nullptr;
  req->op = nullptr;
  free_requests_.push_back(req);
}

std::byte* IocpLoop::get_buffer() {
  // One buffer per posted WSARecv (the kernel fills it whenever data comes), so the pool
  // grows with the number of connections reading at once; buffers are reused, never freed
  // before the loop.
  if (free_buffers_.empty()) {
    buffers_.push_back(std::make_unique<std::byte[]>(recv_size_));
    return buffers_.back().get();
  }
  std::byte* b = free_buffers_.back();
  free_buffers_.pop_back();
  return b;
}

DWORD IocpLoop::packet_error(IoRequest* req) {
  if (req->fwd.ov.Internal == 0) return 0;
  // WSAGetOverlappedResult gives the Winsock code (WSAECONNRESET...) for the NTSTATUS the
  // kernel left; when the socket is gone (closed outside the loop) fall back to the
  // generic translation.
  DWORD bytes = 0, flags = 0;
  if (!::WSAGetOverlappedResult(req->handle, &req->fwd.ov, &bytes, FALSE, &flags)) {
    int e = ::WSAGetLastError();
    if (e != WSAENOTSOCK && e != 0) return static_cast<DWORD>(e);
  }
  return ::RtlNtStatusToDosError(static_cast<NTSTATUS>(req->fwd.ov.Internal));
}

// --- submission -------------------------------------------------------------------------

void IocpLoop::submit(Operation& op) {
  // Started from run_once, so no callback ever runs inside submit (core/loop.h).
  IocpState& s = st(op);
  s = IocpState{};
  s.flags = kActive;
  sq_.push_back(&op);
}

void IocpLoop::start(Operation& op) {
  IocpState& s = st(op);
  if (s.flags & kCancelled) {
    finish(op, -ECANCELED);
    return;
  }
  switch (op.code) {
    case OpCode::timeout:
      s.deadline = now_ns() + std::max<std::int64_t>(0, op.duration.count());
      heap_push(op);
      return;
    case OpCode::cancel:
      start_cancel(op);
      return;
    case OpCode::close:
      start_close(op);
      return;
    default:
      break;
  }
  std::int64_t error = 0;
  Sock* sock = sock_for(op, error);
  if (sock == nullptr) {
    finish(op, error);
    return;
  }
  if (sock->closing) {
    finish(op, -ECANCELED);
    return;
  }
  if (op.code == OpCode::send || op.code == OpCode::sendfile) {
    // One output at a time per socket: two WSASends could interleave after a partial one.
    if (sock->output != nullptr) {
      finish(op, -EBUSY);
      return;
    }
    sock->output = &op;
    s.flags |= kOutput;
  }
  ++sock->ops;
  s.flags |= kCounted;
  issue(op);
}

IocpLoop::Sock* IocpLoop::sock_for(Operation& op, std::int64_t& error) {
  auto it = socks_.find(op.fd);
  if (it != socks_.end()) return &it->second;
  SOCKET sock = win32::to_socket(op.fd);
  if (sock == INVALID_SOCKET) {
    error = -EBADF;
    return nullptr;
  }
  Sock s;
  if (op.code == OpCode::accept) {
    DWORD e = 0;
    if (!win32::associate_listener(sock, e)) {
      error = result_from_windows_error(e == ERROR_INVALID_HANDLE ? WSAENOTSOCK : e);
      return nullptr;
    }
  } else {
    // A socket without a record: either new to the loop, or one whose operations all
    // finished (records go with the last one, so a handle value the caller closed and
    // Windows reused is never mistaken for the old socket). Already associated is fine.
    if (::CreateIoCompletionPort(reinterpret_cast<HANDLE>(sock), port_, kIoKey, 0) == nullptr) {
      DWORD e = ::GetLastError();
      if (e != ERROR_INVALID_PARAMETER) {
        error = result_from_windows_error(e == ERROR_INVALID_HANDLE ? WSAENOTSOCK : e);
        return nullptr;
      }
    }
    // Skip the packet when a call completes at once. Safe only on IFS handles (a layered
    // provider may complete without the kernel's knowledge); TCP on the base provider is.
    // PYPARALLEL_IOCP_NO_SKIP=1 turns it off, to tell whether a provider mishandles it.
    static const bool no_skip = std::getenv("PYPARALLEL_IOCP_NO_SKIP") != nullptr;
    if (!no_skip)
      s.skip_on_success =
          ::SetFileCompletionNotificationModes(
              reinterpret_cast<HANDLE>(sock),
              FILE_SKIP_COMPLETION_PORT_ON_SUCCESS | FILE_SKIP_SET_EVENT_ON_HANDLE) != 0;
  }
  return &socks_.emplace(op.fd, s).first->second;
}

void IocpLoop::issue(Operation& op) {
  Sock& s = socks_.at(op.fd);
  switch (op.code) {
    case OpCode::accept:
      issue_accept(op, s);
      break;
    case OpCode::recv:
      issue_recv(op, s);
      break;
    case OpCode::send:
      issue_send(op, s);
      break;
    case OpCode::sendfile:
      issue_sendfile(op, s);
      break;
    case OpCode::connect:
      issue_connect(op, s);
      break;
    default:
      finish(op, -EINVAL);
      break;
  }
}

void IocpLoop::after_call(Operation& op, IoRequest* req, bool ok, DWORD bytes, Sock& s) {
  if (!ok) {
    DWORD e = static_cast<DWORD>(::WSAGetLastError());
    if (e == WSA_IO_PENDING || e == ERROR_IO_PENDING) {
      req->in_kernel = true;
      ++in_kernel_;
      return;
    }
    ready_.push_back({&op, req, 0, 0, e});
    return;
  }
  if (s.skip_on_success && op.code != OpCode::accept) {
    ready_.push_back({&op, req, 0, bytes, 0});  // no packet will come
    return;
  }
  req->in_kernel = true;  // the packet is queued
  ++in_kernel_;
}

void IocpLoop::issue_accept(Operation& op, Sock& s) {
  const auto& ext = win32::extensions();
  sockaddr_storage local{};
  int len = sizeof local;
  if (::getsockname(win32::to_socket(op.fd), reinterpret_cast<sockaddr*>(&local), &len) != 0) {
    finish(op, result_from_windows_error(static_cast<DWORD>(::WSAGetLastError())));
    return;
  }
  SOCKET accepted = win32::overlapped_socket(local.ss_family);
  if (accepted == INVALID_SOCKET) {
    finish(op, result_from_windows_error(static_cast<DWORD>(::WSAGetLastError())));
    return;
  }
  IoRequest* req = get_request(op);
  req->accepted = accepted;
  DWORD bytes = 0;
  BOOL ok = ext.accept_ex(req->handle, accepted, req->addresses, 0, kAcceptAddressSize,
                          kAcceptAddressSize, &bytes, &req->fwd.ov);
  after_call(op, req, ok != FALSE, bytes, s);
}

void IocpLoop::issue_recv(Operation& op, Sock& s) {
  IoRequest* req = get_request(op);
  req->buffer = get_buffer();
  WSABUF buf{recv_size_, reinterpret_cast<char*>(req->buffer)};
  DWORD bytes = 0;
  req->flags = 0;
  int rc = ::WSARecv(req->handle, &buf, 1, &bytes, &req->flags, &req->fwd.ov, nullptr);
  after_call(op, req, rc == 0, bytes, s);
}

void IocpLoop::issue_send(Operation& op, Sock& s) {
  WSABUF bufs[kMaxWsaBufs];
  DWORD count = 0;
  std::uint64_t skip = st(op).done;
  for (const IoSlice& slice : op.slices) {
    if (count == kMaxWsaBufs) break;
    if (skip >= slice.size) {
      skip -= slice.size;
      continue;
    }
    std::uint64_t left = slice.size - skip;
    bufs[count].buf = const_cast<char*>(static_cast<const char*>(slice.data) + skip);
    bufs[count].len = static_cast<ULONG>(std::min<std::uint64_t>(left, ULONG_MAX >> 1));
    skip = 0;
    ++count;
  }
  if (count == 0) {
    finish(op, static_cast<std::int64_t>(st(op).done));
    return;
  }
  IoRequest* req = get_request(op);
  DWORD bytes = 0;
  int rc = ::WSASend(req->handle, bufs, count, &bytes, 0, &req->fwd.ov, nullptr);
  after_call(op, req, rc == 0, bytes, s);
}

void IocpLoop::issue_sendfile(Operation& op, Sock& s) {
  IocpState& state = st(op);
  if (state.done == 0) {
    // Clamp to the file: TransmitFile would read 0 as "everything" and cannot say how much
    // a range past the end sent.
    LARGE_INTEGER size{};
    if (!::GetFileSizeEx(reinterpret_cast<HANDLE>(op.file), &size)) {
      finish(op, result_from_windows_error(::GetLastError()));
      return;
    }
    auto fsize = static_cast<std::uint64_t>(size.QuadPart);
    std::uint64_t avail = op.offset >= fsize ? 0 : fsize - op.offset;
    // `length` is a parameter and must not change; the clamped total lives in `deadline`,
    // which sendfile does not otherwise use.
    state.deadline = static_cast<std::int64_t>(std::min(op.length, avail));
  }
  auto total = static_cast<std::uint64_t>(state.deadline);
  if (state.done >= total) {
    finish(op, static_cast<std::int64_t>(state.done));
    return;
  }
  std::uint64_t chunk = std::min(total - state.done, kMaxTransmit);
  std::uint64_t at = op.offset + state.done;
  IoRequest* req = get_request(op);
  req->fwd.ov.Offset = static_cast<DWORD>(at);
  req->fwd.ov.OffsetHigh = static_cast<DWORD>(at >> 32);
  BOOL ok =
      win32::extensions().transmit_file(req->handle, reinterpret_cast<HANDLE>(op.file),
                                        static_cast<DWORD>(chunk), 0, &req->fwd.ov, nullptr, 0);
  after_call(op, req, ok != FALSE, static_cast<DWORD>(chunk), s);
}

void IocpLoop::issue_connect(Operation& op, Sock& s) {
  if (op.endpoint == nullptr) {
    finish(op, -EINVAL);
    return;
  }
  auto* to = reinterpret_cast<const sockaddr*>(op.endpoint->storage);
  SOCKET sock = win32::to_socket(op.fd);
  // ConnectEx needs a bound socket; bind to the wildcard of the same family (WSAEINVAL
  // means it was bound already, which is fine).
  sockaddr_storage any{};
  any.ss_family = to->sa_family;
  int any_len = to->sa_family == AF_INET6 ? sizeof(sockaddr_in6) : sizeof(sockaddr_in);
  if (::bind(sock, reinterpret_cast<sockaddr*>(&any), any_len) != 0 &&
      ::WSAGetLastError() != WSAEINVAL) {
    finish(op, result_from_windows_error(static_cast<DWORD>(::WSAGetLastError())));
    return;
  }
  IoRequest* req = get_request(op);
  BOOL ok = win32::extensions().connect_ex(sock, to, static_cast<int>(op.endpoint->size), nullptr,
                                           0, nullptr, &req->fwd.ov);
  after_call(op, req, ok != FALSE, 0, s);
}

// --- completions ----------------------------------------------------------------------

void IocpLoop::on_packet(IoRequest* req, DWORD bytes, DWORD error) {
  if (req->in_kernel) {
    req->in_kernel = false;
    --in_kernel_;
  }
  if (req->op == nullptr) {
    put_request(req);
    return;
  }
  on_io(*req->op, req, bytes, error);
}

void IocpLoop::on_io(Operation& op, IoRequest* req, DWORD bytes, DWORD error) {
  IocpState& state = st(op);
  std::int64_t result = 0;
  if (error != 0) {
    // A cancelled request reports ERROR_OPERATION_ABORTED; a close's cancel is a cancel too.
    result = (state.flags & kCancelled) ? -ECANCELED : result_from_windows_error(error);
  }
  auto* sock_it = socks_.find(op.fd) == socks_.end() ? nullptr : &socks_.at(op.fd);
  bool stop = (state.flags & kCancelled) || (sock_it && sock_it->closing);
  switch (op.code) {
    case OpCode::accept: {
      if (result < 0) {
        put_request(req);
        finish(op, result);
        return;
      }
      SOCKET accepted = req->accepted;
      req->accepted = INVALID_SOCKET;
      SOCKET listener = win32::to_socket(op.fd);
      ::setsockopt(accepted, SOL_SOCKET, SO_UPDATE_ACCEPT_CONTEXT,
                   reinterpret_cast<const char*>(&listener), sizeof listener);
      put_request(req);
      bool more = op.multishot && !stop;
      if (!op.multishot) {
        finish(op, win32::to_handle(accepted));
        return;
      }
      Completion c;
      c.result = win32::to_handle(accepted);
      c.more = true;
      deliver(op, c);
      // The callback may have cancelled (flag set) or closed the listener meanwhile.
      if ((st(op).flags & kCancelled) || socks_.at(op.fd).closing || !more) {
        finish(op, -ECANCELED);
        return;
      }
      issue_accept(op, socks_.at(op.fd));
      return;
    }
    case OpCode::recv: {
      if (result < 0 || bytes == 0) {
        put_request(req);
        finish(op, result);  // 0: EOF
        return;
      }
      std::span<const std::byte> data(req->buffer, bytes);
      if (!op.multishot) {
        // The buffer goes back to the pool only after the callback has read it.
        std::byte* buf = req->buffer;
        req->buffer = nullptr;
        put_request(req);
        finish(op, bytes, data);
        free_buffers_.push_back(buf);
        return;
      }
      Completion c;
      c.result = bytes;
      c.data = data;
      c.more = true;
      deliver(op, c);
      put_request(req);
      if ((st(op).flags & kCancelled) || socks_.at(op.fd).closing) {
        finish(op, -ECANCELED);
        return;
      }
      issue_recv(op, socks_.at(op.fd));
      return;
    }
    case OpCode::send:
    case OpCode::sendfile: {
      put_request(req);
      if (result < 0) {
        finish(op, result);
        return;
      }
      state.done += bytes;
      std::uint64_t total = 0;
      if (op.code == OpCode::send) {
        for (const IoSlice& slice : op.slices) total += slice.size;
      } else {
        total = static_cast<std::uint64_t>(state.deadline);
      }
      if (state.done >= total || bytes == 0 || stop) {
        finish(op, stop && state.done < total ? -ECANCELED : static_cast<std::int64_t>(state.done));
        return;
      }
      if (op.code == OpCode::send)
        issue_send(op, socks_.at(op.fd));
      else
        issue_sendfile(op, socks_.at(op.fd));
      return;
    }
    case OpCode::connect: {
      put_request(req);
      if (result == 0)
        ::setsockopt(win32::to_socket(op.fd), SOL_SOCKET, SO_UPDATE_CONNECT_CONTEXT, nullptr, 0);
      finish(op, result);
      return;
    }
    default:
      put_request(req);
      finish(op, -EINVAL);
      return;
  }
}

void IocpLoop::finish(Operation& op, std::int64_t result, std::span<const std::byte> data) {
  IocpState& state = st(op);
  if (state.flags & (kCounted | kOutput)) {
    auto it = socks_.find(op.fd);
    if (it != socks_.end()) {
      Sock& s = it->second;
      if ((state.flags & kOutput) && s.output == &op) s.output = nullptr;
      if ((state.flags & kCounted) && --s.ops == 0) {
        if (s.closing)
          finish_close(op.fd, s);
        else
          socks_.erase(it);
      }
    }
  }
  state = IocpState{};  // idle: a cancel now answers -ENOENT, and the op may be reused
  Completion c;
  c.result = result;
  c.data = data;
  c.more = false;
  deliver(op, c);
}

// --- cancel and close -----------------------------------------------------------------

void IocpLoop::start_cancel(Operation& op) {
  Operation* target = op.target;
  if (target == nullptr || !(st(*target).flags & kActive) || (st(*target).flags & kCancelled)) {
    finish(op, -ENOENT);
    return;
  }
  IocpState& t = st(*target);
  t.flags |= kCancelled;
  if (t.flags & kTimer) {
    heap_erase(t.heap_index);
    t.flags &= ~kTimer;
    defer(*target, -ECANCELED);
  } else if (t.req != nullptr && t.req->in_kernel) {
    // ERROR_NOT_FOUND: the request already completed and its packet is queued; the flag
    // makes its handling end the operation.
    ::CancelIoEx(reinterpret_cast<HANDLE>(t.req->handle), &t.req->fwd.ov);
  }
  // Otherwise it is queued (sq_) or its completion is (ready_): the flag ends it there.
  finish(op, 0);
}

void IocpLoop::start_close(Operation& op) {
  auto it = socks_.find(op.fd);
  if (it == socks_.end() || it->second.ops == 0) {
    // Nothing in flight on it: close at once.
    if (it != socks_.end()) socks_.erase(it);
    SOCKET sock = win32::to_socket(op.fd);
    std::int64_t result = 0;
    if (::closesocket(sock) != 0) {
      int e = ::WSAGetLastError();
      // Not a socket: a file or another handle, which CloseHandle closes.
      if (e == WSAENOTSOCK)
        result = ::CloseHandle(reinterpret_cast<HANDLE>(op.fd)) ? 0 : -EBADF;
      else
        result = result_from_windows_error(static_cast<DWORD>(e));
    }
    finish(op, result);
    return;
  }
  Sock& s = it->second;
  s.closing = true;
  s.closes.push_back(&op);
  // End every request on the handle; operations not in the kernel see `closing`, and those
  // submitted after this close are cancelled before they start.
  ::CancelIoEx(reinterpret_cast<HANDLE>(win32::to_socket(op.fd)), nullptr);
  for (Operation* other : sq_) {
    if (other->fd == op.fd && other->code != OpCode::close) st(*other).flags |= kCancelled;
  }
}

void IocpLoop::finish_close(Handle h, Sock& s) {
  std::vector<Operation*> closes = std::move(s.closes);
  socks_.erase(h);
  std::int64_t result = 0;
  if (::closesocket(win32::to_socket(h)) != 0)
    result = result_from_windows_error(static_cast<DWORD>(::WSAGetLastError()));
  for (Operation* c : closes) {
    defer(*c, result);
    result = -EBADF;  // only the first close closed it
  }
}

// --- timers ---------------------------------------------------------------------------

void IocpLoop::heap_push(Operation& op) {
  st(op).flags |= kTimer;
  heap_.push_back(&op);
  heap_set(heap_.size() - 1, &op);
  heap_up(heap_.size() - 1);
}

void IocpLoop::heap_erase(std::size_t i) {
  Operation* last = heap_.back();
  heap_.pop_back();
  if (i == heap_.size()) return;
  heap_set(i, last);
  heap_up(i);
  heap_down(st(*heap_[i]).heap_index);
}

void IocpLoop::heap_up(std::size_t i) {
  while (i > 0) {
    std::size_t parent = (i - 1) / 2;
    if (st(*heap_[parent]).deadline <= st(*heap_[i]).deadline) break;
    Operation* p = heap_[parent];
    heap_set(parent, heap_[i]);
    heap_set(i, p);
    i = parent;
  }
}

void IocpLoop::heap_down(std::size_t i) {
  for (;;) {
    std::size_t l = 2 * i + 1, r = l + 1, m = i;
    if (l < heap_.size() && st(*heap_[l]).deadline < st(*heap_[m]).deadline) m = l;
    if (r < heap_.size() && st(*heap_[r]).deadline < st(*heap_[m]).deadline) m = r;
    if (m == i) return;
    Operation* p = heap_[m];
    heap_set(m, heap_[i]);
    heap_set(i, p);
    i = m;
  }
}

void IocpLoop::expire_timers() {
  if (heap_.empty()) return;
  std::int64_t now = now_ns();
  // Collected first: a callback may push new timers (which must wait for the next turn).
  std::vector<Operation*> due;
  while (!heap_.empty() && st(*heap_[0]).deadline <= now) {
    Operation* op = heap_[0];
    heap_erase(0);
    st(*op).flags &= ~kTimer;
    due.push_back(op);
  }
  for (Operation* op : due) finish(*op, 0);
}

// --- the loop -----------------------------------------------------------------------------

int IocpLoop::run_once(std::chrono::nanoseconds max_wait) {
  ran_ = 0;
  sq_run_.clear();
  sq_run_.swap(sq_);
  for (Operation* op : sq_run_) start(*op);

  ready_run_.clear();
  ready_run_.swap(ready_);
  for (const Ready& r : ready_run_) {
    if (r.req == nullptr)
      finish(*r.op, r.result);
    else
      on_io(*r.op, r.req, r.bytes, r.error);
  }
  ran_ += posts_.drain();

  DWORD timeout = INFINITE;
  bool busy = ran_ > 0 || !sq_.empty() || !ready_.empty();
  if (busy) {
    timeout = 0;
  } else {
    std::int64_t wait = max_wait.count();
    if (!heap_.empty()) {
      std::int64_t until = std::max<std::int64_t>(0, st(*heap_[0]).deadline - now_ns());
      wait = wait < 0 ? until : std::min(wait, until);
    }
    // Rounded up to whole milliseconds: a timer must never fire early.
    if (wait >= 0)
      timeout =
          static_cast<DWORD>(std::min<std::int64_t>((wait + 999'999) / 1'000'000, INFINITE - 1));
  }
  OVERLAPPED_ENTRY entries[kBatch];
  ULONG n = 0;
  if (!::GetQueuedCompletionStatusEx(port_, entries, kBatch, &n, timeout, FALSE)) n = 0;
  for (ULONG i = 0; i < n; ++i) {
    const OVERLAPPED_ENTRY& e = entries[i];
    if (e.lpCompletionKey == kWakeKey && e.lpOverlapped == nullptr) continue;  // posts below
    auto* req = reinterpret_cast<IoRequest*>(e.lpOverlapped);
    on_packet(req, e.dwNumberOfBytesTransferred, packet_error(req));
  }
  ran_ += posts_.drain();
  expire_timers();
  return ran_;
}

IocpLoop::~IocpLoop() {
  // Operations in flight are dropped without callbacks (core/loop.h), but the kernel still
  // owns their requests: cancel them and drain the port, so no completion writes into
  // freed memory and no forwarded accept targets a closed port.
  for (auto& r : requests_) {
    if (r->in_kernel) ::CancelIoEx(reinterpret_cast<HANDLE>(r->handle), &r->fwd.ov);
    r->op = nullptr;
  }
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(5);
  while (in_kernel_ > 0 && std::chrono::steady_clock::now() < deadline) {
    OVERLAPPED_ENTRY entries[kBatch];
    ULONG n = 0;
    if (!::GetQueuedCompletionStatusEx(port_, entries, kBatch, &n, 100, FALSE)) continue;
    for (ULONG i = 0; i < n; ++i) {
      if (entries[i].lpOverlapped == nullptr) continue;
      auto* req = reinterpret_cast<IoRequest*>(entries[i].lpOverlapped);
      if (req->in_kernel) {
        req->in_kernel = false;
        --in_kernel_;
      }
    }
  }
  ::timeEndPeriod(1);
  if (in_kernel_ > 0) {
    // Never seen; if it happens, leaking beats a use-after-free by the kernel.
    log_warning("iocp: {} requests still pending at loop destruction; leaking them", in_kernel_);
    for (auto& r : requests_) (void)r.release();
    for (auto& b : buffers_) (void)b.release();
    return;
  }
  for (auto& r : requests_)
    if (r->accepted != INVALID_SOCKET) ::closesocket(r->accepted);
  ::CloseHandle(port_);
}

}  // namespace

std::unique_ptr<Loop> open_iocp_loop(const LoopOptions& options, std::string& why) {
  if (!win32::ensure_winsock()) {
    why = fmt::format("WSAStartup: {}",
                      win32::windows_error_text(static_cast<DWORD>(::WSAGetLastError())));
    return nullptr;
  }
  const auto& ext = win32::extensions();
  if (!ext.accept_ex || !ext.connect_ex || !ext.transmit_file) {
    why = "the TCP provider lacks AcceptEx, ConnectEx or TransmitFile";
    return nullptr;
  }
  HANDLE port = ::CreateIoCompletionPort(INVALID_HANDLE_VALUE, nullptr, 0, 1);
  if (port == nullptr) {
    why = fmt::format("CreateIoCompletionPort: {}", win32::windows_error_text(::GetLastError()));
    return nullptr;
  }
  return std::make_unique<IocpLoop>(options, port);
}

}  // namespace pp::platform
