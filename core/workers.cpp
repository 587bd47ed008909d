// core/workers.cpp -- worker threads: place, open the loop, set up, run, drain.
#include "core/workers.h"

#include <fmt/format.h>

namespace pp {

WorkerPool::~WorkerPool() {
  stop();
  join();
}

bool WorkerPool::start(WorkerPoolConfig config, Setup setup, std::string& error) {
  config_ = std::move(config);
  if (config_.backend == BackendKind::automatic) {
    // Probed once, here, and every worker opens what it chose: each probing on its own
    // could settle on another backend (a worker refused io_uring by a memory-lock limit
    // falls back to epoll), silently, with only worker 0's reason logged. Now a worker
    // that cannot open the chosen backend fails the start-up, saying why.
    auto probe = open_loop(BackendKind::automatic, config_.loop);
    if (!probe.loop) {
      error = probe.error;
      return false;
    }
    backend_reason_ = probe.reason;
    if (!parse_backend_kind(probe.loop->backend_name(), config_.backend)) {
      error = fmt::format("backend probe chose {}, which is no backend kind",
                          probe.loop->backend_name());
      return false;
    }
  }
  unsigned count = config_.count;
  if (count == 0) count = static_cast<unsigned>(config_.slots.size());
  if (count == 0) count = std::max(1u, std::thread::hardware_concurrency());
  for (unsigned i = 0; i < count; ++i) {
    auto w = std::make_unique<Worker>();
    w->index_ = i;
    if (i < config_.slots.size()) w->slot_ = config_.slots[i];
    workers_.push_back(std::move(w));
  }
  // Workers start one at a time: each waits for the previous one's set-up, so
  // start-up errors are reported in order and per-thread initialisation that must
  // not run concurrently (e.g. an interpreter's thread states) stays simple.
  for (auto& w : workers_) {
    unsigned before = started_.load();
    threads_.emplace_back([this, &w = *w, &setup] { run_worker(w, setup); });
    started_.wait(before);
    if (failed_) break;
  }
  if (failed_) {
    stop();
    join();
    error = first_error_;
    return false;
  }
  return true;
}

void WorkerPool::run_worker(Worker& w, const Setup& setup) {
  auto report = [this](std::string err) {
    if (!err.empty()) {
      std::lock_guard lock(error_mutex_);
      if (first_error_.empty()) first_error_ = std::move(err);
      failed_ = true;
    }
    started_.fetch_add(1);
    started_.notify_all();
  };
  std::string err;
  if (config_.on_thread_start && !config_.on_thread_start(w.index_, w.slot_, err)) {
    report(fmt::format("worker {}: {}", w.index_, err.empty() ? "placement failed" : err));
    return;
  }
  auto opened = open_loop(config_.backend, config_.loop);
  if (!opened.loop) {
    report(opened.error);
    return;
  }
  w.loop_ = std::move(opened.loop);
  if (w.index_ == 0 && backend_reason_.empty()) backend_reason_ = opened.reason;
  if (setup && !setup(w, err)) {
    if (config_.on_thread_exit) config_.on_thread_exit(w);
    report(fmt::format("worker {}: {}", w.index_, err));
    return;
  }
  if (config_.after_batch) config_.after_batch(w);
  report({});

  using clock = std::chrono::steady_clock;
  auto batch = [&](std::chrono::nanoseconds wait) {
    w.loop_->run_once(wait);
    if (config_.after_batch) config_.after_batch(w);
  };
  while (!w.stopping_) batch(std::chrono::nanoseconds(-1));
  // Draining: keep completing in-flight sends until idle or out of time. Waits are
  // short so the deadline is noticed even when nothing completes.
  auto deadline = clock::now() + config_.drain_timeout;
  while (w.busy_ && w.busy_() && clock::now() < deadline) batch(std::chrono::milliseconds(20));
  // Let cancellations and closes issued by the hooks complete.
  for (int i = 0; i < 3; ++i) batch(std::chrono::nanoseconds(0));
  if (config_.on_thread_exit) config_.on_thread_exit(w);
}

void WorkerPool::stop() {
  if (stop_requested_.exchange(true)) return;
  for (auto& w : workers_) {
    if (!w->loop_) continue;
    Worker* worker = w.get();
    worker->loop_->post([worker] {
      if (worker->stopping_) return;
      worker->stopping_ = true;
      for (auto& hook : worker->stop_hooks_) hook();
    });
  }
}

void WorkerPool::join() {
  for (auto& t : threads_)
    if (t.joinable()) t.join();
  threads_.clear();
}

}  // namespace pp
