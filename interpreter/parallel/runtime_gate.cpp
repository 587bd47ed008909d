// interpreter/parallel/runtime_gate.cpp -- handing work to the runtime threads from any
// thread: posts through the gate (accepted only while serving, and then always run before
// run() returns), connections spread from a shared listener, and timers made before run().
#include "interpreter/parallel/runtime_state.h"

#include "core/connection.h"

namespace pp::py {

// Posts `fn` to `ws`'s loop, counted until it has run. The gate is held and open.
void post_locked(WorkerState& ws, std::function<void()> fn) {
  ws.posts_pending.fetch_add(1, std::memory_order_relaxed);
  ws.counters.queue_depth.fetch_add(1, std::memory_order_relaxed);
  ws.loop->post([&ws, fn = std::move(fn)]() mutable {
    ws.counters.queue_depth.fetch_sub(1, std::memory_order_relaxed);
    ensure_attached();
    fn();
    fn = nullptr;  // its captures may hold Python references: released here, attached
    ws.posts_pending.fetch_sub(1, std::memory_order_release);
  });
}

WorkerState& next_worker_locked() {
  Runtime& r = rt();
  return *r.workers[r.next_worker.fetch_add(1, std::memory_order_relaxed) % r.workers.size()];
}

void post_arm_locked(const std::shared_ptr<TimerState>& timer) {
  post_locked(next_worker_locked(), [timer] {
    if (Loop* loop = current_loop()) arm_timer(timer, *loop);
  });
}

bool spread_connection(WorkerState& from, Handle sock, const ProtocolInfo* info) {
  Runtime& r = rt();
  std::shared_lock lock(r.gate_mutex);
  if (r.gate != Gate::open) return false;  // workers still starting, or stopping
  WorkerState& to = *r.workers[from.spread_next++ % r.workers.size()];
  if (&to == &from) return false;
  post_locked(to, [&to, sock, info] {
    ConnectionSet& set = to.server.connections();
    set.add(make_connection(*to.loop, sock, set, *info));
  });
  return true;
}

// Opens the gate once every runtime thread is set up, tells each to start accepting and
// connecting (so no callback runs while a post to another thread would be refused), and
// hands them the timers made while it was closed. Attached (the pending list's references
// are dropped here).
void open_gate() {
  Runtime& r = rt();
  std::unique_lock lock(r.gate_mutex);
  r.gate = Gate::open;
  for (auto& ws : r.workers) post_locked(*ws, [w = ws.get()] { w->start_serving(); });
  for (auto& t : std::exchange(r.pending_timers, {})) post_arm_locked(t);
}

void set_gate(Gate g) {
  Runtime& r = rt();
  std::unique_lock lock(r.gate_mutex);
  r.gate = g;
}

bool post_to_runtime(std::function<void()> fn) {
  Runtime& r = rt();
  std::shared_lock lock(r.gate_mutex);
  if (r.gate != Gate::open) return false;
  post_locked(next_worker_locked(), std::move(fn));
  return true;
}

bool post_to_loop(Loop* loop, std::function<void()> fn) {
  Runtime& r = rt();
  std::shared_lock lock(r.gate_mutex);
  if (r.gate != Gate::open) return false;
  for (auto& ws : r.workers) {
    if (ws->loop == loop) {
      post_locked(*ws, std::move(fn));
      return true;
    }
  }
  return false;
}

PyObject* raise_refused() {
  Runtime& r = rt();
  Gate g;
  {
    std::shared_lock lock(r.gate_mutex);
    g = r.gate;
  }
  PyErr_SetString(names().parallel_error,
                  g == Gate::stopping ? "the runtime is stopping" : "the runtime is not running");
  return nullptr;
}

bool start_timer(const std::shared_ptr<TimerState>& timer) {
  Runtime& r = rt();
  std::unique_lock lock(r.gate_mutex);
  switch (r.gate) {
    case Gate::closed:
      r.pending_timers.push_back(timer);
      return true;
    case Gate::open:
      post_arm_locked(timer);
      return true;
    case Gate::stopping:
      break;
  }
  return false;
}

void forget_pending_timer(const TimerState* timer) {
  Runtime& r = rt();
  std::shared_ptr<TimerState> gone;  // dropped after the lock, by the attached caller
  std::unique_lock lock(r.gate_mutex);
  auto& v = r.pending_timers;
  for (auto it = v.begin(); it != v.end(); ++it) {
    if (it->get() == timer) {
      gone = std::move(*it);
      v.erase(it);
      break;
    }
  }
}

}  // namespace pp::py
