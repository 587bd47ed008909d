// core/connection.cpp
#include "core/connection.h"

#include <cerrno>

#include "core/net.h"

namespace pp {

Connection::Connection(Loop& loop, Handle sock, ConnectionSet& owner)
    : loop_(loop), sock_(sock), owner_(owner) {}

Connection::~Connection() { close_socket(sock_); }

void Connection::open() {
  arm_recv();
  ++dispatching_;  // on_open may close: delete only once it has returned
  on_open();
  --dispatching_;
  maybe_finish();
}

void Connection::arm_recv() {
  recv_op_.prep_recv(sock_, /*multi=*/true, &Connection::on_recv, this);
  reading_ = true;
  loop_.submit(recv_op_);
}

void Connection::flush() {
  if (finished_) return;
  out_.flush(loop_, sock_, &Connection::on_send, this);
  if (!paused_ && reading_ && out_.queued_bytes() > kMaxQueuedBytes) {
    paused_ = true;
    stop_reading();
  }
}

void Connection::on_recv(Operation& op, const Completion& c) {
  auto* self = static_cast<Connection*>(op.user);
  ++self->dispatching_;
  if (!c.more) self->reading_ = false;
  if (c.result > 0) {
    // Bytes that arrive while back-pressure is cancelling the receive are still
    // the peer's data: process them (pausing only stops asking for more).
    if (!self->closing_) self->on_data(c.data);
  } else if (c.result == 0) {
    if (!self->closing_) self->on_eof();
  } else if (c.result != -ECANCELED) {
    self->error_ = c.result;
    self->abort();
  }
  if (!self->reading_ && self->paused_ && !self->closing_ && !self->cancelling_ &&
      self->out_.queued_bytes() <= kMaxQueuedBytes / 2) {
    // Back-pressure lifted while the cancel was in flight: read again.
    self->paused_ = false;
    self->arm_recv();
  }
  // A multishot recv that ended by itself (not EOF/error/cancel) is re-armed.
  if (!self->reading_ && !self->closing_ && !self->paused_ && c.result > 0) self->arm_recv();
  --self->dispatching_;
  self->maybe_finish();
}

void Connection::on_send(Operation& op, const Completion& c) {
  auto* self = static_cast<Connection*>(op.user);
  ++self->dispatching_;
  std::int64_t result = self->out_.complete(c);
  if (result < 0) {
    self->error_ = result;
    self->abort();
    --self->dispatching_;
    self->maybe_finish();
    return;
  }
  if (!self->closing_) {
    self->flush();
    if (self->out_.idle()) self->on_drained();
    if (self->paused_ && self->out_.queued_bytes() <= kMaxQueuedBytes / 2 && !self->reading_ &&
        !self->cancelling_) {
      self->paused_ = false;
      self->arm_recv();
    }
  } else if (!self->error_) {
    self->flush();  // close_after_send: keep sending what is queued
  }
  --self->dispatching_;
  self->maybe_finish();
}

void Connection::on_cancel(Operation& op, const Completion&) {
  auto* self = static_cast<Connection*>(op.user);
  self->cancelling_ = false;
  if (self->paused_ && !self->closing_ && !self->reading_ &&
      self->out_.queued_bytes() <= kMaxQueuedBytes / 2) {
    self->paused_ = false;
    self->arm_recv();
  }
  self->maybe_finish();
}

void Connection::stop_reading() {
  if (!reading_ || cancelling_) return;
  cancelling_ = true;
  cancel_op_.prep_cancel(&recv_op_, &Connection::on_cancel, this);
  loop_.submit(cancel_op_);
}

void Connection::close_after_send() {
  if (closing_) return;
  closing_ = true;
  stop_reading();
  flush();
  maybe_finish();
}

void Connection::abort() {
  closing_ = true;
  stop_reading();
  if (!out_.in_flight()) out_.clear();
  maybe_finish();
}

void Connection::maybe_finish() {
  // Never delete while one of our callbacks is still on the stack.
  if (dispatching_ || finished_ || !closing_ || reading_ || cancelling_ || out_.in_flight())
    return;
  if (!error_ && !out_.idle()) return;  // graceful close still has bytes to send
  finished_ = true;
  out_.clear();
  owner_.remove(this);
  on_closed(error_);
  delete this;
}

ConnectionSet::~ConnectionSet() { drop_all(); }

void ConnectionSet::drop_all() {
  // Reached with live connections only when a worker is torn down without a full
  // drain (start-up failure, drain deadline): nothing is in flight any more.
  while (head_) {
    Connection* c = head_;
    remove(c);
    delete c;
  }
}

void ConnectionSet::add(Connection* c) {
  c->next_ = head_;
  if (head_) head_->prev_ = c;
  head_ = c;
  ++size_;
  c->open();
}

void ConnectionSet::remove(Connection* c) {
  if (c->prev_) c->prev_->next_ = c->next_;
  else if (head_ == c) head_ = c->next_;
  if (c->next_) c->next_->prev_ = c->prev_;
  c->prev_ = c->next_ = nullptr;
  --size_;
}

void ConnectionSet::close_all() {
  for (Connection* c = head_; c;) {
    Connection* next = c->next_;  // close_after_send may delete c
    c->close_after_send();
    c = next;
  }
}

}  // namespace pp
