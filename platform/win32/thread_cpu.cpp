// platform/win32/thread_cpu.cpp -- a worker thread's CPU time, readable from another thread
// (the metrics scrape): a real handle to the thread (GetCurrentThread's is a pseudo-handle
// that means "the caller"), duplicated at its start and read with GetThreadTimes.
#include "core/metrics.h"
#include "platform/win32/winsock.h"

namespace pp {

namespace {
// FILETIME counts 100 ns units.
bool thread_cpu_ns(HANDLE thread, std::uint64_t& ns) {
  FILETIME created, exited, kernel, user;
  if (!::GetThreadTimes(thread, &created, &exited, &kernel, &user)) return false;
  auto ticks = [](const FILETIME& f) {
    return (static_cast<std::uint64_t>(f.dwHighDateTime) << 32) | f.dwLowDateTime;
  };
  ns = (ticks(kernel) + ticks(user)) * 100;
  return true;
}
}  // namespace

void WorkerMetrics::attach_thread() {
  HANDLE real = nullptr;
  if (::DuplicateHandle(::GetCurrentProcess(), ::GetCurrentThread(), ::GetCurrentProcess(), &real,
                        THREAD_QUERY_LIMITED_INFORMATION, FALSE, 0))
    cpu_clock.store(reinterpret_cast<std::int64_t>(real), std::memory_order_release);
}

void WorkerMetrics::detach_thread() {
  std::uint64_t ns = 0;
  if (thread_cpu_ns(::GetCurrentThread(), ns)) cpu_final_ns.store(ns, std::memory_order_relaxed);
  std::int64_t h = cpu_clock.exchange(-1, std::memory_order_acq_rel);
  if (h != -1) ::CloseHandle(reinterpret_cast<HANDLE>(h));
}

double WorkerMetrics::cpu_seconds() const {
  std::int64_t h = cpu_clock.load(std::memory_order_acquire);
  if (h != -1) {
    std::uint64_t ns = 0;
    if (thread_cpu_ns(reinterpret_cast<HANDLE>(h), ns)) return static_cast<double>(ns) / 1e9;
  }
  return static_cast<double>(cpu_final_ns.load(std::memory_order_relaxed)) / 1e9;
}

}  // namespace pp
