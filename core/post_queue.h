// core/post_queue.h -- the cross-thread hand-off every backend shares: other
// threads push functions; the loop's thread drains them after a wake-up. The
// backend supplies the wake-up itself (eventfd, msg_ring, PostQueuedCompletionStatus,
// EVFILT_USER), so this class only owns the queue.
#pragma once

#include <functional>
#include <mutex>
#include <utility>
#include <vector>

namespace pp {

/// A multi-producer, single-consumer queue of functions. Use it inside a backend's
/// `Loop::post`; the backend wakes its thread when `push` returns true.
class PostQueue {
 public:
  /// Adds `fn`. Returns true when the queue was empty before, i.e. when the caller
  /// must wake the loop (later pushes ride on the same wake-up).
  bool push(std::function<void()> fn) {
    std::lock_guard lock(mutex_);
    pending_.push_back(std::move(fn));
    return pending_.size() == 1;
  }

  /// Runs every queued function on the calling (loop) thread. Functions posted
  /// while draining run on the next drain: a function that re-posts itself cannot
  /// starve the loop's completions. Returns how many ran.
  int drain() {
    {
      std::lock_guard lock(mutex_);
      if (pending_.empty()) return 0;
      running_.swap(pending_);
    }
    int ran = 0;
    for (auto& fn : running_) {
      if (fn) fn();
      ++ran;
    }
    running_.clear();
    return ran;
  }

  /// True when nothing is queued (a hint: another thread may push right after).
  bool empty() {
    std::lock_guard lock(mutex_);
    return pending_.empty();
  }

 private:
  std::mutex mutex_;
  std::vector<std::function<void()>> pending_;
  std::vector<std::function<void()>> running_;  // drained batch; kept for its capacity
};

}  // namespace pp
