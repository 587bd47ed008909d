// core/connection.h -- one TCP connection on a worker: its receive stream, its
// send queue and its lifetime. Protocols (the C++ HTTP server, Python protocol
// classes) derive from it and only see "bytes arrived" and "closed".
#pragma once

#include <cerrno>
#include <chrono>
#include <cstdint>
#include <memory>
#include <span>

#include "core/limits.h"
#include "core/loop.h"
#include "core/metrics.h"
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
  /// graceful shutdown). Reading stops now -- unless `linger`: after an error response
  /// the connection keeps reading and discarding until the client's EOF or the linger
  /// timeout, sending its FIN once the response is out, so that bytes the client is still
  /// sending do not turn the close into a reset that destroys the response (nginx's
  /// lingering close).
  void close_after_send(bool linger = false);
  /// Closes now, dropping anything unsent and cancelling a send in flight (protocol
  /// errors, peer errors, timeouts). `error` is what on_closed receives.
  void abort(std::int64_t error = 0);
  /// True once a close has been asked for.
  bool closing() const { return closing_; }
  /// True once the server began a graceful stop (ConnectionSet::drain): finish what is in
  /// flight, then close.
  bool draining() const { return draining_; }
  /// The socket.
  Handle socket() const { return sock_; }
  /// The worker's loop.
  Loop& loop() { return loop_; }

  /// What the connection waits for from its peer; it picks the read timeout that the
  /// worker's sweep applies (a queued or in-flight send is under the send timeout instead).
  enum class Wait : std::uint8_t {
    nothing,       // no read deadline (raw protocols: the protocol decides)
    request_head,  // header_timeout, from the head's first byte (or from the accept)
    request_body,  // body_timeout, from the last read
    next_request,  // keepalive_timeout, from the end of the last response's request
    linger,        // linger_timeout: discarding input after an error response
  };

  /// Defers the connection's deletion while code outside the engine's callbacks works on
  /// it (a deferred response finishing from a Python event loop): a close inside only
  /// marks it, and the guard's end deletes it if it is done. Touch nothing after that.
  class Hold {
   public:
    explicit Hold(Connection& c) : c_(c) { ++c_.dispatching_; }
    ~Hold() {
      --c_.dispatching_;
      c_.maybe_finish();  // may delete the connection
    }
    Hold(const Hold&) = delete;
    Hold& operator=(const Hold&) = delete;

   private:
    Connection& c_;
  };

 protected:
  /// Sets what the connection now waits for, starting that wait's clock. Setting the
  /// wait it already has restarts the clock only for `request_body` (its timeout is per
  /// read) or with `restart` (a new request began); a head otherwise keeps its first
  /// byte's start, which is what stops slowloris.
  void expect(Wait wait, bool restart = false);
  /// The current wait.
  Wait waiting_for() const { return wait_; }
  /// True while the queued output is over `max_queued_output`: a protocol that answers
  /// several requests per read stops answering here (`hold_input`), so that one read of
  /// pipelined requests cannot queue more than the cap plus one response.
  bool output_full() const;
  /// Stops reading until the queued output falls to half the cap, with no read deadline
  /// meanwhile (the send timeout covers a client that does not read); `on_resume` then runs
  /// before reading starts again. The peer's end of input waits too: on_eof comes after
  /// the held requests, when reading resumes and meets it again.
  void hold_input();
  /// True between `hold_input` and `on_resume`: bytes that still arrive (in flight when
  /// reading paused) belong after the held ones.
  bool input_held() const { return input_held_; }
  /// The wait's timeout expired (never for `nothing`, `linger` or a stalled send, which
  /// the connection handles itself). Default: close at once.
  virtual void on_read_timeout(Wait /*wait*/) { abort(-ETIMEDOUT); }
  /// The limits of this connection's server.
  const ConnectionLimits& limits() const;
  /// The server's metrics for this connection's worker (ConnectionSet::set_metrics), or null.
  WorkerMetrics* owner_metrics() const;

  /// The connection is set up and reading: send a greeting, or close at once.
  virtual void on_open() {}
  /// The server is draining (a graceful stop or a restart; `draining()` is now true).
  /// Default: finish sending what is queued, then close -- right for protocols whose
  /// requests the engine cannot see. HTTP overrides it to answer the request in flight
  /// with `Connection: close`; an idle connection is closed by the set's drain rounds.
  virtual void on_drain() { close_after_send(); }
  /// Bytes arrived; `data` is valid only during the call.
  virtual void on_data(std::span<const std::byte> data) = 0;
  /// The peer shut down its sending side. Default: finish sending, then close.
  virtual void on_eof() { close_after_send(); }
  /// A queued send finished and the queue is now empty.
  virtual void on_drained() {}
  /// The queued output fell to half the cap after `hold_input`: answer what was held back.
  /// Reading starts again afterwards unless this holds input again.
  virtual void on_resume() {}
  /// The connection is gone: `error` is 0 for an orderly close, else the negated
  /// errno that ended it. Runs once, just before deletion.
  virtual void on_closed(std::int64_t /*error*/) {}


 private:
  friend class ConnectionSet;
  static void on_recv(Operation& op, const Completion& c);
  static void on_send(Operation& op, const Completion& c);
  static void on_cancel(Operation& op, const Completion& c);
  static void on_send_cancelled(Operation& op, const Completion& c);
  void arm_recv();
  void stop_reading();
  // Reading was paused for back-pressure and the queued output is down to half the cap:
  // on_resume, then read again (unless it held input again or closed).
  void maybe_resume();
  void cancel_send();
  void send_fin_if_drained();
  void maybe_finish();
  /// The sweep's check: applies the send or read timeout whose time has come.
  void check_deadline(std::uint64_t now_tick);
  /// Draining: marks the connection draining and calls on_drain.
  void begin_drain();
  /// A drain round: closes the connection (lingering) once it has been idle -- no request
  /// under way, nothing to send, nothing read -- for two rounds in a row, so a request
  /// already on its way when the drain began is answered rather than met by a close.
  void drain_round();

  Loop& loop_;
  Handle sock_;
  ConnectionSet& owner_;
  Outbound out_;
  Operation recv_op_;
  /// The cancels, made on first use: only back-pressure, a close or an abort cancel
  /// anything, and two operations would be a third of an idle connection's memory.
  struct CancelOps {
    Operation recv;  // stops the multishot receive
    Operation send;  // stops a send in flight
  };
  CancelOps& cancel_ops();
  std::unique_ptr<CancelOps> cancel_ops_;
  bool reading_ = false;     // the multishot recv is armed
  bool cancelling_ = false;  // cancel_op_ is in flight
  bool send_cancelling_ = false;  // send_cancel_op_ is in flight
  bool paused_ = false;      // reading stopped for back-pressure, to resume
  bool input_held_ = false;  // paused by hold_input: on_resume runs before reading again
  bool closing_ = false;
  bool aborted_ = false;     // nothing more is sent
  bool lingering_ = false;   // closing, but reading on (see close_after_send)
  bool fin_sent_ = false;
  bool finished_ = false;
  bool draining_ = false;
  std::uint8_t linger_rounds_ = 0;  // drain rounds spent lingering
  Wait wait_ = Wait::nothing;
  std::uint64_t reads_ = 0;          // receive completions with data (drain rounds)
  std::uint64_t drain_mark_ = ~std::uint64_t{0};  // reads_ at the last idle drain round
  std::uint64_t wait_since_ = 0;  // the sweep's tick when wait_ began
  std::uint64_t send_since_ = 0;  // the tick of the last send progress
  int dispatching_ = 0;  // depth of our own callbacks on the stack
  std::int64_t error_ = 0;
  // Intrusive list of the owner's live connections.
  Connection* prev_ = nullptr;
  Connection* next_ = nullptr;
};

/// The live connections of one worker. Deletes each connection once it is fully
/// closed; closes them all at shutdown; enforces the server's ConnectionLimits.
///
/// Timeouts cost no syscall per request: a connection notes the sweep's tick when a wait
/// begins (a plain load), and one timer per worker, armed only while connections exist,
/// walks the connections every tick. A tick is a quarter of the shortest timeout, between
/// 10 ms and 1 s, so a timeout fires at most a quarter late.
class ConnectionSet {
 public:
  explicit ConnectionSet(const ConnectionLimits& limits = {});
  ConnectionSet(const ConnectionSet&) = delete;
  ConnectionSet& operator=(const ConnectionSet&) = delete;
  ~ConnectionSet();
  /// Takes ownership of `c` and starts it, or closes it at once when the worker already
  /// holds `max_connections`.
  void add(Connection* c);
  /// Number of live connections.
  std::size_t size() const { return size_; }
  /// True while connections live or the sweep's timer is in flight: the worker's loop must
  /// run until this is false.
  bool busy() const { return size_ > 0 || sweep_armed_ || sweep_cancelling_; }
  /// Graceful shutdown: every connection finishes its in-flight sends, then closes.
  void close_all();
  /// A graceful stop that loses no request (SIGTERM, a restart): every connection gets
  /// `on_drain` (HTTP: the next response says `Connection: close`, then the connection
  /// closes), connections idle for two drain rounds (100 ms apart) are closed, and a
  /// connection accepted from now on drains from its start. The worker runs until
  /// `busy()` is false or its grace period ends.
  void drain();
  /// True once `drain` was called.
  bool draining() const { return draining_; }
  /// Counts connections, open connections and HTTP requests of this set into `m` (the
  /// worker's; written on the worker's thread only). Null (the default) counts none of
  /// them here: the runtime's protocol layer counts those itself. (Bytes on the wire,
  /// responses by status and latency go to the thread's `thread_metrics()` either way.)
  void set_metrics(WorkerMetrics* m) { metrics_ = m; }
  /// The metrics set by `set_metrics`, or null.
  WorkerMetrics* metrics() const { return metrics_; }
  /// Aborts every connection (`Connection::abort(error)`): sends in flight are cancelled,
  /// sockets closed; each is deleted, after `on_closed`, once its last operation has
  /// completed, so the loop must run on. Past a drain's deadline, before `drop_all`: the
  /// engine must not be left reading a deleted connection's send buffers.
  void abort_all(std::int64_t error);
  /// Deletes every connection at once, without callbacks. Only when nothing is in
  /// flight any more (the loop has stopped; after `abort_all` and the loop's last turns):
  /// a worker's last act.
  void drop_all();
  /// The limits every connection here obeys.
  const ConnectionLimits& limits() const { return limits_; }
  /// The sweep's clock, in ticks (see the class comment).
  std::uint64_t tick() const { return tick_; }
  /// Connections closed by `max_connections` so far.
  std::uint64_t refused() const { return refused_; }

 private:
  friend class Connection;
  static void on_sweep(Operation& op, const Completion& c);
  static void on_sweep_cancelled(Operation& op, const Completion& c);
  void arm_sweep(Loop& loop);
  void cancel_sweep_if_done();
  void rearm_for_drain();
  void remove(Connection* c);
  /// Ticks that `timeout` lasts, rounded up; 0 for a disabled timeout.
  std::uint64_t ticks(std::chrono::milliseconds timeout) const;

  ConnectionLimits limits_;
  std::chrono::nanoseconds tick_length_;
  std::chrono::nanoseconds armed_interval_{};  // the sweep timer in flight
  std::chrono::nanoseconds since_tick_{};      // drain rounds since the last tick
  std::uint64_t wait_ticks_[5] = {};  // each Connection::Wait's timeout in ticks (0: none)
  std::uint64_t send_ticks_ = 0;
  Connection* head_ = nullptr;
  std::size_t size_ = 0;
  std::uint64_t tick_ = 1;
  std::uint64_t refused_ = 0;
  std::int64_t last_refusal_log_ns_ = 0;
  std::uint64_t refusals_unlogged_ = 0;
  Loop* sweep_loop_ = nullptr;
  Operation sweep_op_;
  Operation sweep_cancel_op_;
  bool sweep_armed_ = false;
  bool sweep_cancelling_ = false;
  bool stopping_ = false;
  bool draining_ = false;
  WorkerMetrics* metrics_ = nullptr;
};

}  // namespace pp
