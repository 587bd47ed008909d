// core/workers.h -- thread per core: N workers, each with its own thread, its own
// completion loop and (set up by the caller) its own listening socket and
// connections. Nothing is shared between workers on the request path.
#pragma once

#include <atomic>
#include <chrono>
#include <functional>
#include <mutex>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "core/loop.h"
#include "core/placement.h"

namespace pp {

/// One worker: a thread driving one Loop. Everything here is used from the
/// worker's own thread unless it says otherwise.
class Worker {
 public:
  /// This worker's position in the pool (0-based).
  unsigned index() const { return index_; }
  /// The worker's completion loop.
  Loop& loop() { return *loop_; }
  /// Where the worker runs (PU, core, node); -1 fields when unpinned.
  const WorkerSlot& slot() const { return slot_; }
  /// True once the pool has been asked to stop.
  bool stopping() const { return stopping_; }
  /// Runs `fn` on this worker's thread when the pool stops: stop accepting and let
  /// in-flight sends finish there. Call from `setup`.
  void on_stop(std::function<void()> fn) { stop_hooks_.push_back(std::move(fn)); }
  /// While `fn` returns true after a stop, the worker keeps its loop running (up
  /// to the pool's drain timeout) so in-flight work can finish. Call from `setup`.
  void set_busy_check(std::function<bool()> fn) { busy_ = std::move(fn); }

 private:
  friend class WorkerPool;
  unsigned index_ = 0;
  WorkerSlot slot_;
  std::unique_ptr<Loop> loop_;
  bool stopping_ = false;
  std::vector<std::function<void()>> stop_hooks_;
  std::function<bool()> busy_;
};

/// How to start a pool.
struct WorkerPoolConfig {
  /// Workers to start; 0 means one per entry of `slots`, or one per hardware
  /// thread when `slots` is empty too.
  unsigned count = 0;
  BackendKind backend = BackendKind::automatic;
  LoopOptions loop;
  /// Placement per worker (from numa/); shorter than `count` means unpinned rest.
  std::vector<WorkerSlot> slots;
  /// Runs first on each worker thread, before its loop opens, so the loop's
  /// buffers are allocated where the thread runs: pin the thread and bind its
  /// memory here (numa::bind_current_thread). Returning false stops start-up.
  std::function<bool(unsigned index, const WorkerSlot& slot, std::string& error)> on_thread_start;
  /// Runs on the worker's thread after every `Loop::run_once` batch, before it
  /// waits in the kernel again: the interpreter detaches its thread state here.
  std::function<void(Worker&)> after_batch;
  /// Runs last on each worker thread (after draining), also for a worker whose
  /// set-up failed: release per-thread resources here.
  std::function<void(Worker&)> on_thread_exit;
  /// How long stopping workers wait for in-flight work before they close anyway.
  std::chrono::milliseconds drain_timeout{5000};
};

/// Starts, stops and joins a set of workers.
class WorkerPool {
 public:
  using Setup = std::function<bool(Worker& worker, std::string& error)>;
  WorkerPool() = default;
  WorkerPool(const WorkerPool&) = delete;
  WorkerPool& operator=(const WorkerPool&) = delete;
  ~WorkerPool();

  /// Starts the workers; `setup` runs on each worker's thread once its loop is
  /// open (listen and arm accepts there). Returns once every worker has finished
  /// `setup`; false with `error` set (and every worker stopped) if any failed.
  bool start(WorkerPoolConfig config, Setup setup, std::string& error);
  /// Thread-safe and idempotent: asks every worker to stop (their on_stop hooks
  /// run on their threads), then they drain and exit.
  void stop();
  /// Waits for every worker thread to exit.
  void join();
  /// How many workers run.
  std::size_t size() const { return workers_.size(); }
  /// Worker `i`, e.g. to `post` work to its loop from another thread.
  Worker& worker(std::size_t i) { return *workers_[i]; }
  /// The backend choice line (log it once): the probe's for `automatic`, which every
  /// worker then opens; else the first worker's.
  const std::string& backend_reason() const { return backend_reason_; }

 private:
  void run_worker(Worker& w, const Setup& setup);

  WorkerPoolConfig config_;
  std::vector<std::unique_ptr<Worker>> workers_;
  std::vector<std::thread> threads_;
  std::string backend_reason_;
  std::atomic<bool> stop_requested_{false};
  // Start-up rendezvous: each worker reports success or its error once.
  std::atomic<unsigned> started_{0};
  std::atomic<bool> failed_{false};
  std::string first_error_;
  std::mutex error_mutex_;
};

}  // namespace pp
