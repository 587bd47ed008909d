// core/acceptor.cpp
#include "core/acceptor.h"

#include <cerrno>

#include "core/log.h"
#include "core/net.h"

namespace pp {

Acceptor::Acceptor(Loop& loop, Handle listener, ConnectionSet& connections, Factory factory)
    : loop_(loop), listener_(listener), connections_(connections), factory_(std::move(factory)) {}

Acceptor::~Acceptor() { close_socket(listener_); }

void Acceptor::start() { arm(); }

void Acceptor::arm() {
  if (stopped_) return;
  accept_op_.prep_accept(listener_, /*multi=*/true, &Acceptor::on_accept, this);
  accept_armed_ = true;
  loop_.submit(accept_op_);
}

void Acceptor::on_accept(Operation& op, const Completion& c) {
  auto* self = static_cast<Acceptor*>(op.user);
  if (!c.more) self->accept_armed_ = false;
  if (c.result >= 0) {
    Handle sock = static_cast<Handle>(c.result);
    // A connection accepted as the accept was being cancelled is a client that already
    // connected: while the server drains it is served (and told to close), since closing
    // it would reset it.
    if (self->stopped_ && !self->connections_.draining()) {
      close_socket(sock);
    } else {
      set_nodelay(sock);
      ++self->accepted_;
      if (self->spread_ && !self->stopped_ && self->spread_(sock)) {
        // taken by another worker
      } else if (Connection* conn = self->factory_(sock))
        self->connections_.add(conn);
      else
        close_socket(sock);
    }
  }
  if (self->stopped_) {
    self->close_listener_if_idle();
    return;
  }
  if (self->accept_armed_) return;
  if (c.result == -EMFILE || c.result == -ENFILE || c.result == -ENOBUFS || c.result == -ENOMEM) {
    // Out of descriptors or memory: accepting again at once would spin. Back off
    // briefly; connections closing meanwhile free what we need. One log line a second
    // at most: under a connection flood this repeats a hundred times a second.
    ++self->failures_unlogged_;
    auto now = std::chrono::steady_clock::now();
    if (now - self->last_failure_log_ >= std::chrono::seconds(1)) {
      log_error("accept: {}; retrying every 10 ms ({} failure{} since the last report)",
          error_text(c.result), self->failures_unlogged_,
          self->failures_unlogged_ == 1 ? "" : "s");
      self->last_failure_log_ = now;
      self->failures_unlogged_ = 0;
    }
    self->retry_op_.prep_timeout(std::chrono::milliseconds(10), &Acceptor::on_retry, self);
    self->retry_armed_ = true;
    self->loop_.submit(self->retry_op_);
    return;
  }
  self->arm();  // the kernel ended the multishot (or a one-off error such as ECONNABORTED)
}

void Acceptor::on_retry(Operation& op, const Completion&) {
  auto* self = static_cast<Acceptor*>(op.user);
  self->retry_armed_ = false;
  self->arm();
  self->close_listener_if_idle();
}

void Acceptor::on_cancel(Operation& op, const Completion&) {
  auto* self = static_cast<Acceptor*>(op.user);
  self->cancel_armed_ = false;
  self->close_listener_if_idle();
}

void Acceptor::close_listener_if_idle() {
  // Closed as soon as nothing uses it: until then the kernel keeps queueing
  // connections on it that no one would accept.
  if (stopped_ && !active() && listener_ != invalid_handle) {
    close_socket(listener_);
    listener_ = invalid_handle;
  }
}

void Acceptor::stop() {
  if (stopped_) return;
  stopped_ = true;
  if (accept_armed_) {
    cancel_op_.prep_cancel(&accept_op_, &Acceptor::on_cancel, this);
    cancel_armed_ = true;
    loop_.submit(cancel_op_);
  }
  if (retry_armed_) {
    cancel_op_.prep_cancel(&retry_op_, &Acceptor::on_cancel, this);
    cancel_armed_ = true;
    loop_.submit(cancel_op_);
  }
  close_listener_if_idle();
}

}  // namespace pp
