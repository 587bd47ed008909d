// interpreter/parallel/stats.cpp -- parallel.stats(): the workers' counters (the last
// run's, or this one's) as a dict, per worker and summed.
#include <array>

#include "core/metrics.h"
#include "interpreter/parallel/runtime_state.h"

namespace pp::py {

namespace {
// Sets d[key] = value (a new reference, consumed). False with an exception set.
bool put(PyObject* d, const char* key, PyObject* value) {
  Ref v(value);
  return v && PyDict_SetItemString(d, key, v.get()) == 0;
}

// The metrics beyond the five classic counters, as stats() shows them (and /metrics):
// responses by status (int keys), the latency histogram, CPU seconds and queue depth.
// `sums` accumulates the totals.
struct Extra {
  std::array<std::uint64_t, 501> responses{};
  std::array<std::uint64_t, kLatencyBounds.size() + 1> latency{};
  std::uint64_t latency_ns = 0, queue_depth = 0, wire_sent = 0, wire_received = 0;
  double cpu = 0;
};

bool put_extra(PyObject* d, const Extra& e) {
  Ref responses(PyDict_New());
  if (!responses) return false;
  for (std::size_t s = 0; s < e.responses.size(); ++s) {
    if (!e.responses[s]) continue;
    Ref key(s + 1 == e.responses.size() ? PyUnicode_FromString("other")
                                        : PyLong_FromSize_t(s + 100));
    Ref n(PyLong_FromUnsignedLongLong(e.responses[s]));
    if (!key || !n || PyDict_SetItem(responses.get(), key.get(), n.get()) < 0) return false;
  }
  Ref bounds(PyList_New(0)), counts(PyList_New(0));
  if (!bounds || !counts) return false;
  for (std::size_t b = 0; b < e.latency.size(); ++b) {
    Ref bound(PyFloat_FromDouble(b < kLatencyBounds.size() ? kLatencyBounds[b] : Py_HUGE_VAL));
    Ref n(PyLong_FromUnsignedLongLong(e.latency[b]));
    if (!bound || !n || PyList_Append(bounds.get(), bound.get()) < 0 ||
        PyList_Append(counts.get(), n.get()) < 0)
      return false;
  }
  Ref latency(PyDict_New());
  return latency && PyDict_SetItemString(latency.get(), "bounds", bounds.get()) == 0 &&
         PyDict_SetItemString(latency.get(), "counts", counts.get()) == 0 &&
         put(latency.get(), "sum", PyFloat_FromDouble(static_cast<double>(e.latency_ns) / 1e9)) &&
         PyDict_SetItemString(d, "responses", responses.get()) == 0 &&
         PyDict_SetItemString(d, "latency", latency.get()) == 0 &&
         put(d, "cpu_seconds", PyFloat_FromDouble(e.cpu)) &&
         put(d, "queue_depth", PyLong_FromUnsignedLongLong(e.queue_depth)) &&
         put(d, "wire_bytes_sent", PyLong_FromUnsignedLongLong(e.wire_sent)) &&
         put(d, "wire_bytes_received", PyLong_FromUnsignedLongLong(e.wire_received));
}
}  // namespace

PyObject* collect_stats() {
  Runtime& r = rt();
  Ref total(PyDict_New());
  Ref per(PyList_New(0));
  if (!total || !per) return nullptr;
  std::uint64_t sums[5] = {};
  Extra all;
  static const char* keys[5] = {"connections", "active_connections", "requests", "bytes_sent",
                                "bytes_received"};
  auto get = [](const WorkerMetrics::Counter& c) { return c.load(std::memory_order_relaxed); };
  std::vector<std::shared_ptr<Counters>> counters;  // kept alive while read: run() may replace them
  {
    std::lock_guard lock(r.counters_mutex);
    counters = r.counters;
  }
  for (auto& c : counters) {
    std::uint64_t v[5] = {get(c->connections), get(c->active), get(c->requests), get(c->bytes_sent),
                          get(c->bytes_received)};
    Ref d(PyDict_New());
    if (!d) return nullptr;
    for (int i = 0; i < 5; ++i) {
      sums[i] += v[i];
      if (!put(d.get(), keys[i], PyLong_FromUnsignedLongLong(v[i]))) return nullptr;
    }
    Extra e;
    for (std::size_t s = 0; s < e.responses.size(); ++s)
      all.responses[s] += e.responses[s] = get(c->responses[s]);
    for (std::size_t b = 0; b < e.latency.size(); ++b)
      all.latency[b] += e.latency[b] = get(c->latency[b]);
    all.latency_ns += e.latency_ns = get(c->latency_ns);
    all.queue_depth += e.queue_depth = get(c->queue_depth);
    all.wire_sent += e.wire_sent = get(c->wire_sent);
    all.wire_received += e.wire_received = get(c->wire_received);
    all.cpu += e.cpu = c->cpu_seconds();
    if (!put_extra(d.get(), e) || PyList_Append(per.get(), d.get()) < 0) return nullptr;
  }
  for (int i = 0; i < 5; ++i)
    if (!put(total.get(), keys[i], PyLong_FromUnsignedLongLong(sums[i]))) return nullptr;
  if (!put_extra(total.get(), all)) return nullptr;
  if (PyDict_SetItemString(total.get(), "workers", per.get()) < 0) return nullptr;
  Ref running(PyBool_FromLong(r.running));
  if (PyDict_SetItemString(total.get(), "running", running.get()) < 0) return nullptr;
  return total.release();
}

}  // namespace pp::py
