// core/metrics.h -- what a server counts, per worker, for Prometheus (/metrics on an opt-in
// port, core/metrics_server.h) and for the runtime's parallel.stats().
//
// Each worker owns its WorkerMetrics and is its only writer: an increment is a relaxed load
// and store of a counter no other thread writes, so the hot path has no locked instruction
// and no shared cache line. A scrape reads every worker's counters (relaxed loads) and sums
// them; a total may be a few requests behind, never torn.
#pragma once

#include <array>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <span>
#include <string>
#include <string_view>

namespace pp {

/// Upper bounds of the request latency histogram, in seconds (Prometheus `le`); one more
/// bucket, +Inf, holds the rest.
inline constexpr std::array<double, 19> kLatencyBounds{
    0.00001, 0.000025, 0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01,
    0.025,   0.05,     0.1,     0.25,   0.5,     1,      2.5,   5,      10};

/// One worker's counters. Written only by its worker (use `bump`), read by any thread.
struct WorkerMetrics {
  using Counter = std::atomic<std::uint64_t>;
  Counter connections{0};     // accepted (or connected) so far
  Counter active{0};          // open now
  Counter requests{0};        // requests (HTTP) or data_received calls (raw protocols)
  Counter bytes_sent{0};      // what the protocol layer queued (the runtime's own count)
  Counter bytes_received{0};  // what the protocol layer was given
  Counter wire_sent{0};       // bytes the engine sent on this worker's sockets
  Counter wire_received{0};   // bytes the engine received on them
  /// Responses by status: index status - 100 for 100..599; the last slot counts the rest.
  std::array<Counter, 501> responses{};
  /// Request latency: from the read that completed a request to its response being queued
  /// (the server's own time: parsing, the handler, formatting). Per bucket, not cumulative.
  std::array<Counter, kLatencyBounds.size() + 1> latency{};
  Counter latency_ns{0};  // the sum, for the histogram's _sum
  /// Work posted to the worker's loop from other threads that has not run yet (written by
  /// several threads: fetch_add, off the request path).
  Counter queue_depth{0};
  /// The worker thread's CPU clock (see attach_thread); -1 when not running.
  std::atomic<std::int64_t> cpu_clock{-1};
  Counter cpu_final_ns{0};  // the CPU time at detach_thread

  /// Adds `n` from the owning thread without a locked instruction.
  static void bump(Counter& c, std::uint64_t n = 1) {
    c.store(c.load(std::memory_order_relaxed) + n, std::memory_order_relaxed);
  }
  /// Counts one response with `status`.
  void count_response(int status) {
    bump(responses[status >= 100 && status <= 599 ? status - 100 : responses.size() - 1]);
  }
  /// Counts one request's latency.
  void count_latency(std::chrono::nanoseconds took);

  /// On the worker's thread, when it starts: its CPU time becomes readable from others.
  void attach_thread();
  /// On the worker's thread, as it ends: keeps its final CPU time.
  void detach_thread();
  /// The worker thread's CPU time so far, in seconds (any thread).
  double cpu_seconds() const;
};

/// The calling thread's metrics, or null (threads that are not a server's workers).
WorkerMetrics* thread_metrics();
/// Sets the calling thread's metrics (a worker, at start; null at its end).
void set_thread_metrics(WorkerMetrics* metrics);

/// The Prometheus text exposition (format 0.0.4) of `workers`: per-worker counters and
/// gauges (label worker="i") and one latency histogram summed over the workers.
/// `server` labels every series (e.g. "httpd", "runtime").
std::string render_prometheus(std::span<const WorkerMetrics* const> workers,
                              std::string_view server);

/// Parses a --metrics-port value: "PORT" (on 127.0.0.1: metrics stay on the machine unless
/// asked otherwise) or "HOST:PORT" ("0.0.0.0:9180", "[::]:9180"). Port 0 picks a free one.
/// False with `error` describing the expected form.
bool parse_metrics_address(std::string_view text, std::string& host, std::uint16_t& port,
                           std::string& error);

}  // namespace pp
