// platform/posix/thread_cpu.cpp -- a worker thread's CPU time, readable from another thread
// (the metrics scrape): pthread_getcpuclockid names the thread's clock once, at its start.
#include <pthread.h>
#include <time.h>

#include "core/metrics.h"

namespace pp {

namespace {
std::uint64_t clock_ns(clockid_t id, bool& ok) {
  timespec ts{};
  ok = ::clock_gettime(id, &ts) == 0;
  return ok ? static_cast<std::uint64_t>(ts.tv_sec) * 1'000'000'000u +
                  static_cast<std::uint64_t>(ts.tv_nsec)
            : 0;
}
}  // namespace

void WorkerMetrics::attach_thread() {
  clockid_t id{};
  if (::pthread_getcpuclockid(::pthread_self(), &id) == 0)
    cpu_clock.store(static_cast<std::int64_t>(id), std::memory_order_release);
}

void WorkerMetrics::detach_thread() {
  bool ok = false;
  std::uint64_t ns = clock_ns(CLOCK_THREAD_CPUTIME_ID, ok);
  if (ok) cpu_final_ns.store(ns, std::memory_order_relaxed);
  // A clock of an exited thread must never be read: its id may name another thread later.
  cpu_clock.store(-1, std::memory_order_release);
}

double WorkerMetrics::cpu_seconds() const {
  std::int64_t id = cpu_clock.load(std::memory_order_acquire);
  if (id != -1) {
    bool ok = false;
    std::uint64_t ns = clock_ns(static_cast<clockid_t>(id), ok);
    if (ok) return static_cast<double>(ns) / 1e9;
  }
  return static_cast<double>(cpu_final_ns.load(std::memory_order_relaxed)) / 1e9;
}

}  // namespace pp
