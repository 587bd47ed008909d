// core/outbound.cpp
#include "core/outbound.h"

#include <algorithm>
#include <cerrno>
#include <vector>

#include "core/net.h"

namespace pp {

namespace {

/// Sent byte buffers, kept per thread for their capacity: the next response on this
/// worker reuses one instead of asking the heap, and an idle connection holds none (a
/// buffer kept per connection was a fifth of an idle connection's memory). Outbounds live
/// on their worker's thread, so no lock.
class BufferPool {
 public:
  /// A buffer with some capacity when one is kept, else an empty string.
  static std::string take() {
    if (state() == State::gone) return {};
    std::vector<std::string>& kept = pool().kept_;
    if (kept.empty()) return {};
    std::string s = std::move(kept.back());
    kept.pop_back();
    s.clear();
    return s;
  }
  /// Keeps `s` for a later take(), unless enough are kept, or it is too large to sit idle
  /// or too small to be worth keeping (a short string is inline, not on the heap).
  static void give(std::string& s) {
    if (s.capacity() < 64 || s.capacity() > kMaxKeptCapacity || state() == State::gone) return;
    std::vector<std::string>& kept = pool().kept_;
    if (kept.size() < kMaxKept) kept.push_back(std::move(s));
  }

 private:
  // What a worker has in flight at once is a few responses per busy connection: 64
  // buffers of up to 64 KiB bound what a worker keeps to 4 MiB.
  static constexpr std::size_t kMaxKept = 64;
  static constexpr std::size_t kMaxKeptCapacity = 64u << 10;
  enum class State : std::uint8_t { unused, live, gone };
  // Trivially destructible, so still readable while the thread's other thread_locals
  // are destroyed: an Outbound destroyed after the pool drops its buffer.
  static State& state() {
    thread_local State s = State::unused;
    return s;
  }
  static BufferPool& pool() {
    thread_local BufferPool p;
    return p;
  }
  BufferPool() { state() = State::live; }
  ~BufferPool() { state() = State::gone; }
  std::vector<std::string> kept_;
};

}  // namespace

std::string& Outbound::tail_buffer() {
  // The in-flight segment's bytes must not move, so a new segment starts behind it; a
  // partly sent one is not grown either (its sent part would stay in memory meanwhile).
  bool need_new = queue_.empty() || queue_.back().file != invalid_handle ||
                  (queue_.size() == 1 && (in_flight_ || front_sent_ > 0));
  if (need_new) {
    queue_.emplace_back();
    queue_.back().bytes = BufferPool::take();  // a previous buffer's capacity
  }
  return queue_.back().bytes;
}

void Outbound::append(std::string_view bytes) {
  if (bytes.empty()) return;
  tail_buffer().append(bytes);
}

void Outbound::append_file(Handle file, std::uint64_t offset, std::uint64_t length, bool owned) {
  if (length == 0) {
    if (owned) close_file(file);
    return;
  }
  Segment s;
  s.file = file;
  s.offset = offset;
  s.length = length;
  s.owned = owned;
  queue_.push_back(std::move(s));
}

std::uint64_t Outbound::queued_bytes() const {
  std::uint64_t total = 0;
  for (auto& s : queue_) total += s.file == invalid_handle ? s.bytes.size() : s.length;
  return total - front_sent_;
}

void Outbound::flush(Loop& loop, Handle sock, CompletionFn cb, void* ctx) {
  if (in_flight_) return;
  // Bytes written through tail_buffer() may leave empty segments behind.
  while (!queue_.empty() && queue_.front().file == invalid_handle && queue_.front().bytes.empty())
    queue_.pop_front();
  if (queue_.empty()) return;
  Segment& s = queue_.front();
  std::uint64_t size = s.file == invalid_handle ? s.bytes.size() : s.length;
  step_ = std::min(size - front_sent_, kMaxSendStep);
  if (s.file == invalid_handle) {
    slice_ = IoSlice{s.bytes.data() + front_sent_, static_cast<std::size_t>(step_)};
    op_.prep_send(sock, std::span<const IoSlice>(&slice_, 1), cb, ctx);
  } else {
    op_.prep_sendfile(sock, s.file, s.offset + front_sent_, step_, cb, ctx);
  }
  in_flight_ = true;
  loop.submit(op_);
}

std::int64_t Outbound::complete(const Completion& completion) {
  in_flight_ = false;
  Segment& s = queue_.front();
  std::uint64_t size = s.file == invalid_handle ? s.bytes.size() : s.length;
  std::int64_t result = completion.result;
  // A file that shrank under us sends fewer bytes than promised in Content-Length;
  // the connection can only be closed then, so report it as an error.
  if (result >= 0 && static_cast<std::uint64_t>(result) < step_) result = -ENODATA;
  if (result >= 0) {
    front_sent_ += step_;
    sent_total_ += step_;
  }
  if (result < 0 || front_sent_ >= size) {
    release(s);
    queue_.pop_front();
    front_sent_ = 0;
  }
  return result;
}

void Outbound::release(Segment& s) {
  if (s.file != invalid_handle) {
    if (s.owned) close_file(s.file);
    s.file = invalid_handle;
  } else {
    BufferPool::give(s.bytes);  // for the next response on this thread
  }
}

void Outbound::clear() {
  for (auto& s : queue_) release(s);
  queue_.clear();
  in_flight_ = false;
  front_sent_ = 0;
}

}  // namespace pp
