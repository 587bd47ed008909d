// interpreter/parallel/worker_state.cpp -- what one runtime thread (a worker, or the
// main thread with workers=0) serves: its share of the listeners, its clients' connects,
// and the graceful stop, drain and teardown that end them before its thread state goes.
#include <cerrno>

#include <fmt/format.h>

#include "core/connection.h"
#include "core/log.h"
#include "core/metrics.h"
#include "core/net.h"
#include "interpreter/parallel/runtime_state.h"

namespace pp::py {

bool WorkerState::setup(Loop& l, unsigned index, unsigned count, std::vector<ListenerSet>& sets,
                        std::string& error) {
  loop = &l;
  context.loop = &l;
  context.counters = &counters;
  context.local = &local;
  // The engine counts responses by status and latency into the thread's metrics.
  set_thread_metrics(&counters);
  counters.attach_thread();
  unsigned client_no = 0;
  std::size_t server_no = 0;
  for (Ref& ref : endpoints()) {
    auto* e = reinterpret_cast<EndpointObject*>(ref.get());
    if (!e->protocol) continue;
    const ProtocolInfo* info = e->protocol;
    if (!e->is_client) {
      Loop* lp = loop;
      ConnectionSet* set = &server.connections();
      ListenerSet& ls = sets[server_no++];
      // Bound here when the set binds in workers; connections wait in the backlog
      // until start_serving.
      if (!server.take_listeners(
              *loop, ls, index, count, *e->host, e->backlog,
              [lp, set, info](Handle sock) { return make_connection(*lp, sock, *set, *info); },
              [this, info](Handle sock) { return spread_connection(*this, sock, info); }, error))
        return false;
      if (ls.bind_in_workers) e->port.store(ls.port);  // port 0: the kernel's pick
    } else if (client_no++ % count == index) {
      clients.push_back(e);  // spread over the workers
    }
  }
  return true;
}

void WorkerState::start_serving() {
  server.start_accepting();
  for (EndpointObject* e : std::exchange(clients, {}))
    start_client(e);  // a failure is the protocol's to hear
}

void WorkerState::start_client(EndpointObject* e) {
  auto c = std::make_unique<Connector>();
  c->client = e;
  c->worker = this;
  c->where = fmt::format("{}:{}", *e->host, e->port.load());
  std::string err;
  if (!resolve_endpoint(*e->host, static_cast<std::uint16_t>(e->port.load()), c->endpoint, err) ||
      (c->sock = open_stream_socket(c->endpoint, err)) == invalid_handle) {
    pp::log_error("client {}: {}", c->where, err);
    return;
  }
  c->op.prep_connect(c->sock, &c->endpoint, &WorkerState::connected, c.get());
  loop->submit(c->op);
  connectors.push_back(std::move(c));
}

void WorkerState::connected(Operation& op, const Completion& done) {
  auto* c = static_cast<Connector*>(op.user);
  c->done = true;
  WorkerState& w = *c->worker;
  if (done.result < 0) {
    close_socket(c->sock);
    report_connect_failure(*c->client->protocol, c->where, done.result);
    return;
  }
  set_nodelay(c->sock);
  ConnectionSet& set = w.server.connections();
  set.add(make_connection(*w.loop, c->sock, set, *c->client->protocol));
}

void WorkerState::begin_stop() {
  clients.clear();  // not connected yet (a stop before start_serving): never will be
  server.begin_stop();
  stop_timers(local);
}

bool WorkerState::busy() const {
  if (server.busy()) return true;
  if (posts_pending.load(std::memory_order_acquire) > 0 || !local.timers.empty()) return true;
  for (auto& c : connectors)
    if (!c->done) return true;
  return false;
}

void WorkerState::finish(Loop& l) {
  static constexpr auto kAbortGrace = std::chrono::seconds(2);
  auto turn = [&] {
    detach();
    l.run_once(std::chrono::milliseconds(10));
    ensure_attached();
  };
  while (posts_pending.load(std::memory_order_acquire) > 0) turn();
  if (!busy()) return;
  ConnectionSet& connections = server.connections();
  connections.abort_all(-ECANCELED);
  for (auto& c : connectors) {
    if (c->done) continue;
    c->cancel_op.prep_cancel(
        &c->op, [](Operation&, const Completion&) {}, nullptr);
    loop->submit(c->cancel_op);
  }
  auto deadline = std::chrono::steady_clock::now() + kAbortGrace;
  while (busy() && std::chrono::steady_clock::now() < deadline) turn();
  if (connections.size() > 0)
    pp::log_warning("{} connection{} still in flight after the stop; dropped", connections.size(),
            connections.size() == 1 ? "" : "s");
}

void WorkerState::teardown() {
  server.clear_acceptors();
  connectors.clear();
  server.connections().drop_all();
  release_timers(local);
  local.route_names.clear();
}

}  // namespace pp::py
