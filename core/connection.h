// core/connection.h -- one TCP connection on a worker: its receive stream, its
// send queue and its lifetime. Protocols (the C++ HTTP server, Python protocol
// classes) derive from it and only see "bytes arrived" and "closed".
#pragma once

#include <cstdint>
#include <span>

#include "core/loop.h"
#include "core/outbound.h"

namespace pp {

class ConnectionSet;

/// A connection driven by one worker's loop. Created by an accept handler,
/// deleted by its `ConnectionSet` after the last operation on it has completed, so
/// derived classes never manage their own lifetime.
class Connection {
 public:
  Connection(Loop& loop, Handle sock, ConnectionSet& owner);
  Connection(const Connection&) = delete;
  Connection& operator=(const Connection&) = delete;
  virtual ~Connection();

  /// Arms the multishot receive, then calls `on_open`. `ConnectionSet::add` calls it.
  void open();
  /// The send queue: append responses, then `flush()`.
  Outbound& out() { return out_; }
  /// Hands queued bytes to the engine (no-op while a send is in flight; the
  /// completion continues with whatever was queued meanwhile).
  void flush();
  /// Closes once everything queued has been sent (HTTP "Connection: close",
  /// graceful shutdown). Reading stops now.
  void close_after_send();
  /// Closes now, dropping anything unsent (protocol errors, peer errors).
  void abort();
  /// True once a close has been asked for.
  bool closing() const { return closing_; }
  /// The socket.
  Handle socket() const { return sock_; }
  /// The worker's loop.
  Loop& loop() { return loop_; }

 protected:
  /// The connection is set up and reading: send a greeting, or close at once.
  virtual void on_open() {}
  /// Bytes arrived; `data` is valid only during the call.
  virtual void on_data(std::span<const std::byte> data) = 0;
  /// The peer shut down its sending side. Default: finish sending, then close.
  virtual void on_eof() { close_after_send(); }
  /// A queued send finished and the queue is now empty.
  virtual void on_drained() {}
  /// The connection is gone: `error` is 0 for an orderly close, else the negated
  /// errno that ended it. Runs once, just before deletion.
  virtual void on_closed(std::int64_t /*error*/) {}

  /// Send queues above this stop reading until they drain: a client that
  /// pipelines requests without reading the answers cannot grow our memory.
  static constexpr std::uint64_t kMaxQueuedBytes = 4u << 20;

 private:
  friend class ConnectionSet;
  static void on_recv(Operation& op, const Completion& c);
  static void on_send(Operation& op, const Completion& c);
  static void on_cancel(Operation& op, const Completion& c);
  void arm_recv();
  void stop_reading();
  void maybe_finish();

  Loop& loop_;
  Handle sock_;
  ConnectionSet& owner_;
  Outbound out_;
  Operation recv_op_;
  Operation cancel_op_;
  bool reading_ = false;     // the multishot recv is armed
  bool cancelling_ = false;  // cancel_op_ is in flight
  bool paused_ = false;      // reading stopped for back-pressure, to resume
  bool closing_ = false;
  bool finished_ = false;
  int dispatching_ = 0;  // depth of our own callbacks on the stack
  std::int64_t error_ = 0;
  // Intrusive list of the owner's live connections.
  Connection* prev_ = nullptr;
  Connection* next_ = nullptr;
};

/// The live connections of one worker. Deletes each connection once it is fully
/// closed; closes them all at shutdown.
class ConnectionSet {
 public:
  ConnectionSet() = default;
  ConnectionSet(const ConnectionSet&) = delete;
  ConnectionSet& operator=(const ConnectionSet&) = delete;
  ~ConnectionSet();
  /// Takes ownership of `c` and starts it.
  void add(Connection* c);
  /// Number of live connections.
  std::size_t size() const { return size_; }
  /// Graceful shutdown: every connection finishes its in-flight sends, then closes.
  void close_all();
  /// Deletes every connection at once, without callbacks. Only when nothing is in
  /// flight any more (the loop has stopped): a worker's last act.
  void drop_all();

 private:
  friend class Connection;
  void remove(Connection* c);
  Connection* head_ = nullptr;
  std::size_t size_ = 0;
};

}  // namespace pp
