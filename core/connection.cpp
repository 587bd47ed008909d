// core/connection.cpp
#include "core/connection.h"

#include <algorithm>
#include <cerrno>
#include <utility>

#include "core/access_log.h"
#include "core/log.h"
#include "core/net.h"

namespace pp {

namespace {
std::int64_t steady_ns() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}
}  // namespace

Connection::Connection(Loop& loop, Handle sock, ConnectionSet& owner)
    : loop_(loop), sock_(sock), owner_(owner) {}

Connection::~Connection() { close_socket(sock_); }

const ConnectionLimits& Connection::limits() const { return owner_.limits(); }

WorkerMetrics* Connection::owner_metrics() const { return owner_.metrics(); }

void Connection::open() {
  wait_since_ = send_since_ = owner_.tick();
  arm_recv();
  ++dispatching_;  // on_open may close: delete only once it has returned
  on_open();
  if (draining_ && !closing_) on_drain();  // accepted while the server drains
  --dispatching_;
  maybe_finish();
}

void Connection::expect(Wait wait, bool restart) {
  if (wait == wait_ && wait != Wait::request_body && !restart) return;
  wait_ = wait;
  wait_since_ = owner_.tick();
}

void Connection::arm_recv() {
  recv_op_.prep_recv(sock_, /*multi=*/true, &Connection::on_recv, this);
  reading_ = true;
  loop_.submit(recv_op_);
}

bool Connection::output_full() const {
  return out_.queued_bytes() > owner_.limits().max_queued_output;
}

void Connection::hold_input() {
  input_held_ = true;
  paused_ = true;
  stop_reading();
  expect(Wait::nothing);
}

void Connection::maybe_resume() {
  if (!paused_ || closing_ || reading_ || cancelling_ ||
      out_.queued_bytes() > owner_.limits().max_queued_output / 2)
    return;
  paused_ = false;
  if (std::exchange(input_held_, false)) on_resume();  // may hold input again
  if (!paused_ && !closing_ && !reading_) arm_recv();
}

void Connection::flush() {
  if (finished_ || aborted_) return;
  bool was_idle = !out_.in_flight();
  out_.flush(loop_, sock_, &Connection::on_send, this);
  // A send that starts now starts the send timeout's clock.
  if (was_idle && out_.in_flight()) send_since_ = owner_.tick();
  if (!paused_ && reading_ && !lingering_ &&
      out_.queued_bytes() > owner_.limits().max_queued_output) {
    paused_ = true;
    stop_reading();
  }
}

void Connection::on_recv(Operation& op, const Completion& c) {
  auto* self = static_cast<Connection*>(op.user);
  ++self->dispatching_;
  if (!c.more) self->reading_ = false;
  if (c.result > 0) {
    ++self->reads_;
    if (WorkerMetrics* m = thread_metrics())
      WorkerMetrics::bump(m->wire_received, static_cast<std::uint64_t>(c.result));
    // Bytes that arrive while back-pressure is cancelling the receive are still
    // the peer's data: process them (pausing only stops asking for more). Once
    // closing (lingering included) they are discarded.
    if (!self->closing_) self->on_data(c.data);
  } else if (c.result == 0) {
    if (!self->closing_ && !self->input_held_) self->on_eof();
  } else if (c.result != -ECANCELED) {
    self->abort(c.result);
  }
  // Back-pressure lifted while the cancel was in flight: read again.
  if (!self->reading_) self->maybe_resume();
  // A multishot recv that ended by itself (not EOF/error/cancel) is re-armed; a lingering
  // one too, until the client's EOF or the linger timeout.
  if (!self->reading_ && (!self->closing_ || self->lingering_) && !self->paused_ &&
      c.result > 0)
    self->arm_recv();
  --self->dispatching_;
  self->maybe_finish();
}

void Connection::on_send(Operation& op, const Completion& c) {
  auto* self = static_cast<Connection*>(op.user);
  ++self->dispatching_;
  std::int64_t result = self->out_.complete(c);
  if (WorkerMetrics* m = thread_metrics(); m && c.result > 0)
    WorkerMetrics::bump(m->wire_sent, static_cast<std::uint64_t>(c.result));
  self->send_since_ = self->owner_.tick();  // progress: the send timeout starts over
  if (result < 0 || self->aborted_) {
    if (result < 0) self->abort(result);
    self->out_.clear();  // aborted: what is still queued is never sent
    --self->dispatching_;
    self->maybe_finish();
    return;
  }
  if (!self->closing_) {
    self->flush();
    if (self->out_.idle()) {
      // Keep-alive idleness starts when the last response is out, as in nginx.
      if (self->wait_ == Wait::next_request) self->wait_since_ = self->owner_.tick();
      self->on_drained();
    }
    self->maybe_resume();
  } else {
    self->flush();  // close_after_send: keep sending what is queued
    self->send_fin_if_drained();
  }
  --self->dispatching_;
  self->maybe_finish();
}

void Connection::on_cancel(Operation& op, const Completion&) {
  auto* self = static_cast<Connection*>(op.user);
  self->cancelling_ = false;
  ++self->dispatching_;  // on_resume may close: delete only once it has returned
  self->maybe_resume();
  --self->dispatching_;
  self->maybe_finish();
}

void Connection::on_send_cancelled(Operation& op, const Completion&) {
  auto* self = static_cast<Connection*>(op.user);
  self->send_cancelling_ = false;
  self->maybe_finish();
}

void Connection::stop_reading() {
  if (!reading_ || cancelling_) return;
  cancelling_ = true;
  Operation& cancel = cancel_ops().recv;
  cancel.prep_cancel(&recv_op_, &Connection::on_cancel, this);
  loop_.submit(cancel);
}

void Connection::cancel_send() {
  Operation* op = out_.in_flight_op();
  if (!op || send_cancelling_) return;
  send_cancelling_ = true;
  Operation& cancel = cancel_ops().send;
  cancel.prep_cancel(op, &Connection::on_send_cancelled, this);
  loop_.submit(cancel);
}

void Connection::send_fin_if_drained() {
  // Lingering: the response is out, so tell the client (FIN) and read on until its EOF.
  if (lingering_ && !fin_sent_ && !aborted_ && out_.idle()) {
    fin_sent_ = true;
    shutdown_send(sock_);
  }
}

void Connection::close_after_send(bool linger) {
  if (closing_) return;
  closing_ = true;
  if (linger && reading_ && !paused_ && owner_.limits().linger_timeout.count() > 0) {
    lingering_ = true;
    wait_ = Wait::linger;
    wait_since_ = owner_.tick();
  } else {
    stop_reading();
  }
  flush();
  send_fin_if_drained();
  maybe_finish();
}

void Connection::abort(std::int64_t error) {
  if (error && !error_) error_ = error;
  closing_ = true;
  aborted_ = true;
  lingering_ = false;
  stop_reading();
  if (out_.in_flight())
    cancel_send();  // a client that never reads would otherwise hold it forever
  else
    out_.clear();
  maybe_finish();
}

Connection::CancelOps& Connection::cancel_ops() {
  if (!cancel_ops_) cancel_ops_ = std::make_unique<CancelOps>();
  return *cancel_ops_;
}

void Connection::maybe_finish() {
  // Never delete while one of our callbacks is still on the stack.
  if (dispatching_ || finished_ || !closing_ || cancelling_ || send_cancelling_ ||
      out_.in_flight())
    return;
  // Lingering ends when the client's EOF ends the recv, or the linger timeout aborts.
  if (reading_) return;
  if (!error_ && !aborted_ && !out_.idle()) return;  // graceful close still has bytes to send
  finished_ = true;
  out_.clear();
  owner_.remove(this);
  on_closed(error_);
  delete this;
}

void Connection::check_deadline(std::uint64_t now) {
  if (finished_ || aborted_) return;
  if (!out_.idle()) {
    std::uint64_t t = owner_.send_ticks_;
    if (t && now - send_since_ >= t) abort(-ETIMEDOUT);
    return;
  }
  std::uint64_t t = owner_.wait_ticks_[static_cast<std::size_t>(wait_)];  // 0: no deadline
  if (!t || now - wait_since_ < t) return;
  if (wait_ == Wait::linger) {
    abort();  // the response went out long ago; the client just keeps sending
    return;
  }
  if (closing_) return;  // already on its way out (its send is under send_timeout)
  ++dispatching_;
  on_read_timeout(wait_);
  --dispatching_;
  maybe_finish();
}

void Connection::begin_drain() {
  if (draining_ || finished_) return;
  draining_ = true;
  if (closing_) return;
  ++dispatching_;
  on_drain();
  --dispatching_;
  maybe_finish();
}

void Connection::drain_round() {
  if (finished_) return;
  if (closing_) {
    // A lingering close waits for the client's EOF; while draining, half a second (five
    // rounds) is enough for a request that crossed our FIN to arrive and be discarded.
    // A client that keeps its socket open after our FIN must not hold up the exit.
    if (lingering_ && !aborted_ && ++linger_rounds_ >= 5) {
      ++dispatching_;
      abort();
      --dispatching_;
      maybe_finish();
    }
    return;
  }
  // Idle: between requests (or accepted with nothing read yet) with nothing to send.
  bool idle = out_.idle() && (wait_ == Wait::next_request ||
                              (wait_ == Wait::request_head && reads_ == 0));
  if (!idle) {
    drain_mark_ = ~std::uint64_t{0};
    return;
  }
  if (drain_mark_ != reads_) {
    drain_mark_ = reads_;  // idle now: closed at the next round if nothing arrives
    return;
  }
  // Lingering: the FIN goes out at once, and a request that crossed it is read and
  // discarded rather than answered by a reset.
  ++dispatching_;
  close_after_send(/*linger=*/true);
  --dispatching_;
  maybe_finish();
}

// ---------------------------------------------------------------------------------------

ConnectionSet::ConnectionSet(const ConnectionLimits& limits) : limits_(limits) {
  // A quarter of the shortest enabled timeout, within [10 ms, 1 s]: late by at most a
  // quarter, and an idle-looking server wakes at most once a second.
  std::chrono::milliseconds shortest{1000 * 4};
  for (auto t : {limits.header_timeout, limits.keepalive_timeout, limits.body_timeout,
                 limits.send_timeout, limits.linger_timeout})
    if (t.count() > 0) shortest = std::min(shortest, t);
  tick_length_ = std::clamp<std::chrono::nanoseconds>(shortest / 4, std::chrono::milliseconds(10),
                                                      std::chrono::seconds(1));
  // In ticks once, not per connection per sweep. Indexed by Connection::Wait.
  wait_ticks_[static_cast<std::size_t>(Connection::Wait::nothing)] = 0;
  wait_ticks_[static_cast<std::size_t>(Connection::Wait::request_head)] =
      ticks(limits.header_timeout);
  wait_ticks_[static_cast<std::size_t>(Connection::Wait::request_body)] = ticks(limits.body_timeout);
  wait_ticks_[static_cast<std::size_t>(Connection::Wait::next_request)] =
      ticks(limits.keepalive_timeout);
  wait_ticks_[static_cast<std::size_t>(Connection::Wait::linger)] = ticks(limits.linger_timeout);
  send_ticks_ = ticks(limits.send_timeout);
}

ConnectionSet::~ConnectionSet() { drop_all(); }

std::uint64_t ConnectionSet::ticks(std::chrono::milliseconds timeout) const {
  if (timeout.count() <= 0) return 0;
  auto ns = std::chrono::duration_cast<std::chrono::nanoseconds>(timeout);
  return static_cast<std::uint64_t>((ns + tick_length_ - std::chrono::nanoseconds(1)) /
                                    tick_length_);
}

void ConnectionSet::abort_all(std::int64_t error) {
  for (Connection* c = head_; c != nullptr;) {
    Connection* next = c->next_;  // abort may delete c (nothing in flight), never another
    c->abort(error);
    c = next;
  }
}

void ConnectionSet::drop_all() {
  // Reached with live connections only when a worker is torn down without a full
  // drain (start-up failure, drain deadline): nothing is in flight any more.
  // The loop is gone or stopped: the sweep's operation will never complete, and
  // nothing may be submitted for it any more.
  sweep_armed_ = sweep_cancelling_ = false;
  while (head_) {
    Connection* c = head_;
    remove(c);
    delete c;
  }
}

void ConnectionSet::add(Connection* c) {
  if (limits_.max_connections && size_ >= limits_.max_connections) {
    // Close at once: the client learns now instead of waiting in a backlog, and this
    // worker's memory stays bounded. Logged at most once a second.
    ++refused_;
    ++refusals_unlogged_;
    std::int64_t now = steady_ns();
    if (now - last_refusal_log_ns_ >= 1'000'000'000) {
      log_warning("worker holds {} connections (--max-connections): closed {} new one{}", size_,
          refusals_unlogged_, refusals_unlogged_ == 1 ? "" : "s");
      last_refusal_log_ns_ = now;
      refusals_unlogged_ = 0;
    }
    delete c;
    return;
  }
  c->next_ = head_;
  if (head_) head_->prev_ = c;
  head_ = c;
  ++size_;
  c->draining_ = draining_;
  if (metrics_) {
    WorkerMetrics::bump(metrics_->connections);
    WorkerMetrics::bump(metrics_->active);
  }
  if (!sweep_armed_ && !stopping_) arm_sweep(c->loop());
  c->open();
}

// Drain rounds: idle connections are closed after two of these without activity.
constexpr std::chrono::milliseconds kDrainRound{100};

void ConnectionSet::arm_sweep(Loop& loop) {
  sweep_loop_ = &loop;
  // While draining, the timer fires every drain round; ticks still advance at their own
  // pace (since_tick_ adds the rounds up), so timeouts keep their meaning.
  armed_interval_ = draining_ ? std::min<std::chrono::nanoseconds>(tick_length_, kDrainRound)
                              : tick_length_;
  sweep_op_.prep_timeout(armed_interval_, &ConnectionSet::on_sweep, this);
  sweep_armed_ = true;
  loop.submit(sweep_op_);
}

void ConnectionSet::on_sweep(Operation& op, const Completion& c) {
  auto* self = static_cast<ConnectionSet*>(op.user);
  self->sweep_armed_ = false;
  flush_access_log(/*only_if_old=*/true);  // idle keep-alive connections: no request comes
  if (c.result == -ECANCELED) {
    self->rearm_for_drain();  // drain() cancelled the long tick
    return;
  }
  self->since_tick_ += self->armed_interval_;
  if (self->since_tick_ >= self->tick_length_) {
    self->since_tick_ = {};
    std::uint64_t now = ++self->tick_;
    for (Connection* conn = self->head_; conn;) {
      Connection* next = conn->next_;  // check_deadline may delete conn
      conn->check_deadline(now);
      conn = next;
    }
  }
  if (self->draining_) {
    for (Connection* conn = self->head_; conn;) {
      Connection* next = conn->next_;  // drain_round may delete conn
      conn->drain_round();
      conn = next;
    }
  }
  // Armed only while there are connections: an idle worker does not wake every tick.
  if (self->size_ > 0) self->arm_sweep(*self->sweep_loop_);
}

void ConnectionSet::on_sweep_cancelled(Operation& op, const Completion&) {
  auto* self = static_cast<ConnectionSet*>(op.user);
  self->sweep_cancelling_ = false;
  self->rearm_for_drain();
}

void ConnectionSet::rearm_for_drain() {
  if (draining_ && size_ > 0 && !sweep_armed_ && !sweep_cancelling_) arm_sweep(*sweep_loop_);
}

void ConnectionSet::remove(Connection* c) {
  if (c->prev_) c->prev_->next_ = c->next_;
  else if (head_ == c) head_ = c->next_;
  if (c->next_) c->next_->prev_ = c->prev_;
  c->prev_ = c->next_ = nullptr;
  --size_;
  if (metrics_) WorkerMetrics::bump(metrics_->active, static_cast<std::uint64_t>(-1));
  // The worker's last connection went: its access log lines would otherwise wait for the
  // next request (the sweep that flushes old ones stops with the connections).
  if (size_ == 0) flush_access_log();
  cancel_sweep_if_done();
}

void ConnectionSet::cancel_sweep_if_done() {
  if (size_ == 0 && (stopping_ || draining_) && sweep_armed_ && !sweep_cancelling_) {
    // Shutting down: the worker may stop as soon as the sweep is gone too.
    sweep_cancelling_ = true;
    sweep_cancel_op_.prep_cancel(&sweep_op_, &ConnectionSet::on_sweep_cancelled, this);
    sweep_loop_->submit(sweep_cancel_op_);
  }
}

void ConnectionSet::drain() {
  if (draining_ || stopping_) return;
  draining_ = true;
  for (Connection* c = head_; c;) {
    Connection* next = c->next_;  // begin_drain may delete c
    c->begin_drain();
    c = next;
  }
  if (size_ > 0 && sweep_armed_ && !sweep_cancelling_) {
    // Re-armed at the drain round's pace by its completion: cancel the long tick.
    sweep_cancelling_ = true;
    sweep_cancel_op_.prep_cancel(&sweep_op_, &ConnectionSet::on_sweep_cancelled, this);
    sweep_loop_->submit(sweep_cancel_op_);
  }
  cancel_sweep_if_done();
}

void ConnectionSet::close_all() {
  stopping_ = true;
  for (Connection* c = head_; c;) {
    Connection* next = c->next_;  // close_after_send may delete c
    c->close_after_send();
    c = next;
  }
  if (size_ == 0 && sweep_armed_ && !sweep_cancelling_) {
    sweep_cancelling_ = true;
    sweep_cancel_op_.prep_cancel(&sweep_op_, &ConnectionSet::on_sweep_cancelled, this);
    sweep_loop_->submit(sweep_cancel_op_);
  }
}

}  // namespace pp
