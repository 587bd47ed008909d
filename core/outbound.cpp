// core/outbound.cpp
#include "core/outbound.h"

#include <algorithm>
#include <cerrno>

#include "core/net.h"

namespace pp {

std::string& Outbound::tail_buffer() {
  // The in-flight segment's bytes must not move, so a new segment starts behind it; a
  // partly sent one is not grown either (its sent part would stay in memory meanwhile).
  bool need_new = queue_.empty() || queue_.back().file != invalid_handle ||
                  (queue_.size() == 1 && (in_flight_ || front_sent_ > 0));
  if (need_new) {
    queue_.emplace_back();
    queue_.back().bytes.swap(spare_);  // reuse a previous buffer's capacity
    queue_.back().bytes.clear();
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
  if (result >= 0) front_sent_ += step_;
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
  } else if (s.bytes.capacity() > spare_.capacity() && s.bytes.capacity() <= (1u << 20)) {
    // Keep the larger buffer for the next response; very large ones go back to the heap.
    spare_.swap(s.bytes);
  }
}

void Outbound::clear() {
  for (auto& s : queue_) release(s);
  queue_.clear();
  in_flight_ = false;
  front_sent_ = 0;
}

}  // namespace pp
