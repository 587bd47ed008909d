// core/worker_server.h -- one worker's side of a process's TCP servers: the connections
// it serves, its acceptors over its share of each server's listeners, and its part of a
// graceful stop. The C++ server and the Python runtime each hold one per worker, so
// binding, spreading and draining are written once.
#pragma once

#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "core/acceptor.h"
#include "core/connection.h"
#include "core/listeners.h"

namespace pp {

/// What one worker serves. Live on the worker's thread: every call but the constructor
/// is made there.
class WorkerServer {
 public:
  explicit WorkerServer(const ConnectionLimits& limits) : connections_(limits) {}

  /// The connections this worker serves (accepted here, spread here, or connected out).
  ConnectionSet& connections() { return connections_; }
  const ConnectionSet& connections() const { return connections_; }

  /// Takes worker `index`'s share of server `set` (opened by `open_listeners`), each
  /// accepted socket becoming `make(sock)`. In a set that binds in workers this worker
  /// binds its own SO_REUSEPORT socket on `host` first; with port 0 the first worker's
  /// pick becomes everyone's (`set.port`: workers start in order). When the set's sockets
  /// are shared by several workers, `spread` is offered each accepted socket first (the
  /// kernel would give every connection to the first waiting worker). Nothing is
  /// accepted before `start_accepting`. False with `error` set.
  bool take_listeners(Loop& loop, ListenerSet& set, unsigned index, unsigned workers,
                      std::string_view host, int backlog, Acceptor::Factory make,
                      Acceptor::Spread spread, std::string& error);
  /// Starts accepting on every socket taken.
  void start_accepting();
  /// The graceful stop: open connections drain (first, so that one the cancelled accept
  /// still yields drains too) and the acceptors stop.
  void begin_stop();
  /// True while a connection or an accept is still in flight: the worker's loop must run
  /// on (WorkerPool's busy check).
  bool busy() const;
  /// Destroys the acceptors (their sockets close); after the loop has run them idle.
  void clear_acceptors() { acceptors_.clear(); }

 private:
  ConnectionSet connections_;
  std::vector<std::unique_ptr<Acceptor>> acceptors_;
};

}  // namespace pp
