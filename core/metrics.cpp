// core/metrics.cpp
#include "core/metrics.h"

#include <charconv>

#include <fmt/format.h>

namespace pp {

namespace {
thread_local WorkerMetrics* current = nullptr;

// Series lines of one per-worker metric.
void per_worker(std::string& out, std::string_view server,
                std::span<const WorkerMetrics* const> workers, std::string_view name,
                std::string_view type, std::string_view help,
                std::uint64_t (*value)(const WorkerMetrics&)) {
  out += fmt::format("# HELP {} {}\n# TYPE {} {}\n", name, help, name, type);
  for (std::size_t i = 0; i < workers.size(); ++i)
    out +=
        fmt::format("{}{{server=\"{}\",worker=\"{}\"}} {}\n", name, server, i, value(*workers[i]));
}

std::uint64_t get(const WorkerMetrics::Counter& c) {
  return c.load(std::memory_order_relaxed);
}
}  // namespace

WorkerMetrics* thread_metrics() {
  return current;
}
void set_thread_metrics(WorkerMetrics* metrics) {
  current = metrics;
}

void WorkerMetrics::count_latency(std::chrono::nanoseconds took) {
  double s = std::chrono::duration<double>(took).count();
  std::size_t i = 0;
  while (i < kLatencyBounds.size() && s > kLatencyBounds[i]) ++i;
  bump(latency[i]);
  bump(latency_ns, static_cast<std::uint64_t>(took.count() > 0 ? took.count() : 0));
}

std::string render_prometheus(std::span<const WorkerMetrics* const> workers,
                              std::string_view server) {
  std::string out;
  out.reserve(4096);
  per_worker(out, server, workers, "pyparallel_requests_total", "counter",
             "Requests received (HTTP requests; data_received calls of raw protocols).",
             [](const WorkerMetrics& m) { return get(m.requests); });
  out +=
      "# HELP pyparallel_responses_total HTTP responses sent, by status code.\n"
      "# TYPE pyparallel_responses_total counter\n";
  for (std::size_t i = 0; i < workers.size(); ++i) {
    for (std::size_t s = 0; s < workers[i]->responses.size(); ++s) {
      std::uint64_t n = get(workers[i]->responses[s]);
      if (n == 0) continue;
      std::string code = s + 1 == workers[i]->responses.size() ? "other" : std::to_string(s + 100);
      out +=
          fmt::format("pyparallel_responses_total{{server=\"{}\",worker=\"{}\",code=\"{}\"}} {}\n",
                      server, i, code, n);
    }
  }
  per_worker(out, server, workers, "pyparallel_received_bytes_total", "counter",
             "Bytes received on the worker's sockets.",
             [](const WorkerMetrics& m) { return get(m.wire_received); });
  per_worker(out, server, workers, "pyparallel_sent_bytes_total", "counter",
             "Bytes sent on the worker's sockets.",
             [](const WorkerMetrics& m) { return get(m.wire_sent); });
  per_worker(out, server, workers, "pyparallel_connections_total", "counter",
             "Connections accepted (or made, for clients).",
             [](const WorkerMetrics& m) { return get(m.connections); });
  per_worker(out, server, workers, "pyparallel_open_connections", "gauge", "Connections open now.",
             [](const WorkerMetrics& m) { return get(m.active); });
  per_worker(out, server, workers, "pyparallel_worker_queue_depth", "gauge",
             "Work posted to the worker from other threads, not yet run.",
             [](const WorkerMetrics& m) { return get(m.queue_depth); });
  out +=
      "# HELP pyparallel_worker_cpu_seconds_total CPU time of the worker thread.\n"
      "# TYPE pyparallel_worker_cpu_seconds_total counter\n";
  for (std::size_t i = 0; i < workers.size(); ++i)
    out +=
        fmt::format("pyparallel_worker_cpu_seconds_total{{server=\"{}\",worker=\"{}\"}} {:.6f}\n",
                    server, i, workers[i]->cpu_seconds());
  out +=
      "# HELP pyparallel_request_duration_seconds From the read that completed a request "
      "to its response being queued.\n"
      "# TYPE pyparallel_request_duration_seconds histogram\n";
  std::uint64_t cumulative = 0, sum_ns = 0;
  for (std::size_t b = 0; b <= kLatencyBounds.size(); ++b) {
    for (const WorkerMetrics* m : workers) cumulative += get(m->latency[b]);
    std::string le = b < kLatencyBounds.size() ? fmt::format("{}", kLatencyBounds[b]) : "+Inf";
    out += fmt::format("pyparallel_request_duration_seconds_bucket{{server=\"{}\",le=\"{}\"}} {}\n",
                       server, le, cumulative);
  }
  for (const WorkerMetrics* m : workers) sum_ns += get(m->latency_ns);
  out += fmt::format("pyparallel_request_duration_seconds_sum{{server=\"{}\"}} {:.9f}\n", server,
                     static_cast<double>(sum_ns) / 1e9);
  out += fmt::format("pyparallel_request_duration_seconds_count{{server=\"{}\"}} {}\n", server,
                     cumulative);
  out += fmt::format(
      "# HELP pyparallel_workers Worker threads.\n# TYPE pyparallel_workers gauge\n"
      "pyparallel_workers{{server=\"{}\"}} {}\n",
      server, workers.size());
  return out;
}

bool parse_metrics_address(std::string_view text, std::string& host, std::uint16_t& port,
                           std::string& error) {
  std::string_view h = "127.0.0.1", p = text;
  if (auto colon = text.rfind(':'); colon != std::string_view::npos) {
    h = text.substr(0, colon);
    p = text.substr(colon + 1);
    if (h.size() >= 2 && h.front() == '[' && h.back() == ']') h = h.substr(1, h.size() - 2);
  }
  unsigned v = 0;
  auto [ptr, ec] = std::from_chars(p.data(), p.data() + p.size(), v);
  if (h.empty() || p.empty() || ec != std::errc{} || ptr != p.data() + p.size() || v > 65535) {
    error = fmt::format("expects PORT or HOST:PORT (e.g. 9180, 0.0.0.0:9180), got '{}'", text);
    return false;
  }
  host = std::string(h);
  port = static_cast<std::uint16_t>(v);
  return true;
}

}  // namespace pp
