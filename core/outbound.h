// core/outbound.h -- a connection's send side: the bytes and file ranges it still
// has to send, in order, and the single send/sendfile operation moving them.
//
// Responses are appended as they are produced (several per read when clients
// pipeline) and leave in as few operations as possible: consecutive bytes
// coalesce into one send, a file range becomes one sendfile. One operation is in
// flight at a time, which keeps the byte order without any sequencing logic.
#pragma once

#include <cstdint>
#include <deque>
#include <string>
#include <string_view>

#include "core/loop.h"

namespace pp {

/// The queue of what a connection sends next. Owned by the connection; used only
/// on its worker's thread.
class Outbound {
 public:
  Outbound() = default;
  Outbound(const Outbound&) = delete;
  Outbound& operator=(const Outbound&) = delete;
  ~Outbound() { clear(); }

  /// Queues a copy of `bytes`.
  void append(std::string_view bytes);
  /// The buffer that `append` would write to, for producers (a response writer)
  /// that format straight into it. Anything appended to it is queued.
  std::string& tail_buffer();
  /// Queues `length` bytes of `file` from `offset`, sent with sendfile from the page
  /// cache. With `owned`, the file is closed once sent (or dropped).
  void append_file(Handle file, std::uint64_t offset, std::uint64_t length, bool owned);

  /// True when nothing waits and nothing is in flight.
  bool idle() const { return !in_flight_ && queue_.empty(); }
  /// True while a send or sendfile of this queue is in flight.
  bool in_flight() const { return in_flight_; }
  /// The send or sendfile in flight (to cancel it), or null.
  Operation* in_flight_op() { return in_flight_ ? &op_ : nullptr; }
  /// Bytes queued but not yet handed to the engine (for back-pressure decisions).
  std::uint64_t queued_bytes() const;

  /// Submits the next operation for `sock` on `loop` unless one is in flight or
  /// nothing is queued. `cb`/`ctx` receive its completion; the callback must call
  /// `complete` and then usually `flush` again.
  void flush(Loop& loop, Handle sock, CompletionFn cb, void* ctx);
  /// Takes the in-flight operation's completion. Returns its result: < 0 is the
  /// error that ended it (the connection should close), otherwise bytes sent.
  /// A send that moved fewer bytes than queued (a file that shrank) returns -ENODATA.
  std::int64_t complete(const Completion& completion);
  /// Drops everything queued (closing owned files). Not while in flight.
  void clear();

 private:
  struct Segment {
    std::string bytes;                 // a bytes segment when file == invalid_handle
    Handle file = invalid_handle;      // a file-range segment otherwise
    std::uint64_t offset = 0;
    std::uint64_t length = 0;
    bool owned = false;
  };
  void release(Segment& s);

  std::deque<Segment> queue_;  // front() is in flight when in_flight_
  Operation op_;
  IoSlice slice_;
  bool in_flight_ = false;
  std::string spare_;  // a sent bytes buffer kept for its capacity
};

}  // namespace pp
