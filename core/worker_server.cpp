// core/worker_server.cpp
#include "core/worker_server.h"

#include <utility>

#include "core/net.h"

namespace pp {

bool WorkerServer::take_listeners(Loop& loop, ListenerSet& set, unsigned index, unsigned workers,
                                  std::string_view host, int backlog, Acceptor::Factory make,
                                  Acceptor::Spread spread, std::string& error) {
  if (set.bind_in_workers) {
    // Bound here, worker by worker as they start (SO_REUSEPORT: each worker its own
    // accept queue); connections wait in its backlog until start_accepting.
    Handle h = listen_tcp(host, set.port, /*reuse_port=*/true, backlog, error);
    if (h == invalid_handle) return false;
    if (set.port == 0) set.port = local_port(h);  // the first worker's pick is everyone's
    set.per_worker[index].push_back(h);
    set.distinct.push_back(h);
  }
  // Taken: the acceptors own (and close) them from here on.
  for (Handle listener : std::exchange(set.per_worker[index], {})) {
    acceptors_.push_back(std::make_unique<Acceptor>(loop, listener, connections_, make));
    if (set.shared && workers > 1 && spread) acceptors_.back()->set_spread(spread);
  }
  return true;
}

void WorkerServer::start_accepting() {
  for (auto& a : acceptors_) a->start();
}

void WorkerServer::begin_stop() {
  connections_.drain();
  for (auto& a : acceptors_) a->stop();
}

bool WorkerServer::busy() const {
  if (connections_.busy()) return true;
  for (auto& a : acceptors_)
    if (a->active()) return true;
  return false;
}

}  // namespace pp
