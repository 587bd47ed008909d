// core/acceptor.h -- a worker's accept loop on its own listening socket.
#pragma once

#include <chrono>
#include <functional>

#include "core/connection.h"
#include "core/loop.h"

namespace pp {

/// Keeps one multishot accept armed on a listening socket and hands each new
/// socket to `factory`, whose connection joins `connections`. Use one per worker,
/// each on its own SO_REUSEPORT socket, so accepts never contend across workers.
class Acceptor {
 public:
  /// Makes the connection object for a freshly accepted socket; null refuses it
  /// (the socket is then closed).
  using Factory = std::function<Connection*(Handle sock)>;

  /// Offered each accepted socket first; returning true means it took the socket (e.g.
  /// handed it to another worker). See `set_spread`.
  using Spread = std::function<bool(Handle sock)>;

  /// Takes ownership of `listener` (closed by `stop` or the destructor).
  Acceptor(Loop& loop, Handle listener, ConnectionSet& connections, Factory factory);
  /// Workers that share one accept queue (a socket systemd passed, duplicated per worker)
  /// do not share its connections: the kernel wakes the first waiting worker, which keeps
  /// winning while it keeps up. `spread` lets the accepting worker hand connections on
  /// (round-robin, core/listeners.h) so every worker serves some.
  void set_spread(Spread spread) { spread_ = std::move(spread); }
  Acceptor(const Acceptor&) = delete;
  Acceptor& operator=(const Acceptor&) = delete;
  ~Acceptor();

  /// Arms the accept.
  void start();
  /// Stops accepting: cancels the accept and closes the listening socket, so
  /// the kernel sends new connections to workers still running (or refuses them).
  void stop();
  /// Accepted connections so far.
  std::uint64_t accepted() const { return accepted_; }
  /// True while an accept or its retry timer is in flight (the loop must keep
  /// running until this is false before the Acceptor may be destroyed).
  bool active() const { return accept_armed_ || retry_armed_ || cancel_armed_; }

 private:
  static void on_accept(Operation& op, const Completion& c);
  static void on_retry(Operation& op, const Completion& c);
  static void on_cancel(Operation& op, const Completion& c);
  void arm();
  void close_listener_if_idle();

  Loop& loop_;
  Handle listener_;
  ConnectionSet& connections_;
  Factory factory_;
  Spread spread_;
  Operation accept_op_;
  Operation retry_op_;
  Operation cancel_op_;
  bool accept_armed_ = false;
  bool retry_armed_ = false;
  bool cancel_armed_ = false;
  bool stopped_ = false;
  std::uint64_t accepted_ = 0;
  std::uint64_t failures_unlogged_ = 0;
  std::chrono::steady_clock::time_point last_failure_log_{};
};

}  // namespace pp
