// core/listeners.h -- the listening sockets of one server address, wherever they come from,
// spread over the workers.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "core/loop.h"

namespace pp {

/// One server address's listeners, per worker.
struct ListenerSet {
  /// per_worker[i]: the sockets worker i accepts on; each is owned by whoever takes it
  /// (an Acceptor closes its socket).
  std::vector<std::vector<Handle>> per_worker;
  /// The port served (the kernel's pick when port 0 was asked for).
  std::uint16_t port = 0;
  /// Where the sockets came from: "bound", "systemd" or "handed over by pid N".
  std::string origin;
  /// One handle per distinct socket, for `offer_listeners` (owned by per_worker).
  std::vector<Handle> distinct;
  /// True when workers share accept queues (fewer sockets than workers: systemd's one
  /// socket): the server should spread accepted connections over its workers
  /// (Acceptor::set_spread), since the kernel gives them all to the first waiting worker.
  bool shared = false;
  /// Nothing inherited and `bind_now` was false: each worker binds its own SO_REUSEPORT
  /// socket when it starts (`listen_tcp`), adding it to `distinct`, and sets `port` when
  /// port 0 was asked for. per_worker is then empty lists.
  bool bind_in_workers = false;
};

/// Opens the listeners of `host:port` for `workers` workers. In order of preference:
///  1. sockets systemd passed (`take_systemd_listeners`, matched by address): never bound here;
///  2. with `handoff`, the sockets of the instance already serving the address
///     (`request_listeners`), so a restart loses no queued connection;
///  3. one new SO_REUSEPORT socket per worker (the kernel spreads connections over them).
/// When fewer sockets are inherited than there are workers (systemd passes one), the
/// workers share them: worker i also accepts on a `duplicate_handle` of socket i mod K. A
/// duplicate is the same socket and accept queue, woken on whichever worker's loop is ready,
/// and closed separately; so every worker's Acceptor owns its own handle and stops on its
/// own thread. When there are more sockets than workers, a worker accepts on several, so no
/// queue is left without an acceptor. False with `error` set on failure (nothing leaks).
/// With `bind_now` false, step 3 is left to the workers (`ListenerSet::bind_in_workers`):
/// the port then takes connections only once the first worker can accept them, as a
/// runtime whose callbacks may need every worker started wants.
bool open_listeners(std::string_view host, std::uint16_t port, int backlog, unsigned workers,
                    bool handoff, ListenerSet& out, std::string& error, bool bind_now = true);

/// Closes every socket of `set` (a server that failed to start).
void close_listeners(ListenerSet& set);

}  // namespace pp
