// core/outbound.h -- a connection's send side: the bytes and file ranges it still
// has to send, in order, and the single send/sendfile operation moving them.
//
// Responses are appended as they are produced (several per read when clients
// pipeline) and leave in few operations: consecutive bytes coalesce into one send, a
// file range into one sendfile, each at most kMaxSendStep bytes. One operation is in
// flight at a time, which keeps the byte order without any sequencing logic.
//
// Why a step: the send timeout (core/connection.h) measures progress, the time since a
// send last completed. The backends finish a whole operation before completing it, so
// one 100 MiB send to a slow but steady reader would look stalled for as long as it
// takes; in steps of kMaxSendStep, a reader moving kMaxSendStep per send_timeout is
// never cut, and one that reads nothing is cut send_timeout after its last step.
#pragma once

#include <cstdint>
#include <list>
#include <string>
#include <string_view>

#include "core/loop.h"

namespace pp {

/// The most one send or sendfile operation moves (see the file comment): 256 KiB, so
/// the default send_timeout (60 s) cuts only a reader slower than about 4 KiB/s, and a
/// large response costs one completion per 256 KiB, nothing next to the copy.
inline constexpr std::uint64_t kMaxSendStep = 256u << 10;

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
  /// Bytes queued and not yet sent, the step in flight included (for back-pressure
  /// decisions).
  std::uint64_t queued_bytes() const;
  /// Every byte queued since the queue was made, sent or not: a response's size is the
  /// difference between two readings (the access log).
  std::uint64_t produced_bytes() const { return sent_total_ + queued_bytes(); }

  /// Submits the next operation for `sock` on `loop` unless one is in flight or
  /// nothing is queued. `cb`/`ctx` receive its completion; the callback must call
  /// `complete` and then usually `flush` again.
  void flush(Loop& loop, Handle sock, CompletionFn cb, void* ctx);
  /// Takes the in-flight operation's completion. Returns its result: < 0 is the
  /// error that ended it (the connection should close), otherwise bytes sent (one step:
  /// the segment may have more to send). A step that moved fewer bytes than asked (a
  /// file that shrank) returns -ENODATA.
  std::int64_t complete(const Completion& completion);
  /// Drops everything queued (closing owned files). Not while in flight.
  void clear();

 private:
  struct Segment {
    std::string bytes;             // a bytes segment when file == invalid_handle
    Handle file = invalid_handle;  // a file-range segment otherwise
    std::uint64_t offset = 0;
    std::uint64_t length = 0;
    bool owned = false;
  };
  void release(Segment& s);

  // front() is in flight when in_flight_. A list: empty, it allocates nothing (a deque's
  // first block was 576 bytes of every idle connection), and its elements never move
  // (an in-flight send points into the front one's bytes, inline when they are short).
  std::list<Segment> queue_;
  Operation op_;
  IoSlice slice_;
  std::uint64_t front_sent_ = 0;  // bytes of front() already sent by earlier steps
  std::uint64_t step_ = 0;        // bytes the operation in flight moves
  std::uint64_t sent_total_ = 0;  // bytes sent by completed steps (produced_bytes)
  bool in_flight_ = false;
};

}  // namespace pp
