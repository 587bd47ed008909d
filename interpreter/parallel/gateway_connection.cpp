// interpreter/parallel/gateway_connection.cpp -- GatewayConnection (gateway_internal.h):
// core's HTTP request loop with every request handed to the gateway's Python handler as an
// Exchange, and the connection's side of a response that finishes later (disconnects,
// back-pressure). A file of its own: the connection's life is apart from what an Exchange
// writes (gateway_exchange.cpp) and how the request reads in Python (gateway_environ.cpp).
#include "interpreter/parallel/gateway_internal.h"

#include <utility>

#include "core/http/response.h"
#include "core/log.h"
#include "core/metrics.h"

namespace pp::py {

void GatewayConnection::on_open() {
  ensure_attached();
  Counters::bump(thread_counters().connections);
  Counters::bump(thread_counters().active);
}

void GatewayConnection::on_data(std::span<const std::byte> data) {
  Counters::bump(thread_counters().bytes_received, data.size());
  HttpConnection::on_data(data);
}

void GatewayConnection::respond(const http::Request& request, bool close) {
  ensure_attached();
  Counters::bump(thread_counters().requests);
  auto* ex = PyObject_GC_New(ExchangeObject, exchange_type);
  if (!ex) {
    log_exception("gateway: cannot create an exchange (answered 500)", fetch_exception());
    http::append_error_response(out().tail_buffer(), 500, close);
    return;
  }
  ex->conn = this;
  ex->request = &request;
  ex->body = bytes_from(request.body);
  ex->on_disconnect = nullptr;
  ex->loop = &loop();
  ex->close_after = close;
  ex->head = request.method == "HEAD";
  ex->http10 = request.minor_version == 0;
  ex->started = ex->finished = ex->chunked = ex->no_body = ex->until_close = false;
  ex->close_after_response = false;
  ex->declared = -1;
  ex->written = 0;
  PyObject_GC_Track(reinterpret_cast<PyObject*>(ex));
  Ref exchange(reinterpret_cast<PyObject*>(ex));
  if (!ex->body) {
    log_exception("gateway: cannot copy the request body (answered 500)", fetch_exception());
    ex->body = Py_NewRef(names().empty_bytes);
    ex->started = ex->finished = true;
    http::append_error_response(out().tail_buffer(), 500, close);
    return;
  }
  current_ = exchange;  // until it finishes (now, or later from the event loop)
  Ref r(PyObject_CallOneArg(info_.gateway.get(), exchange.get()));
  ex->request = nullptr;
  if (!r) {
    // The gateway's own failure (it catches the app's): answer as the app would be.
    log_exception(fmt::format("{}: the gateway raised", info_.name), fetch_exception());
    if (live(ex)) {
      Ref again(ex_fail(exchange.get(), nullptr));
      if (!again) PyErr_Clear();
    }
  }
  if (current_.get() != exchange.get()) return;  // finished, or the connection went
  if (ex->finished)
    current_ = Ref();
  else
    defer_response();  // the app answers later, from the worker's event loop
}

void GatewayConnection::on_drained() {
  call_writable();
}

void GatewayConnection::on_closed(std::int64_t) {
  ensure_attached();
  Counters::bump(thread_counters().active, static_cast<std::uint64_t>(-1));
  if (!current_) {
    call_writable();
    return;
  }
  Ref ex = std::move(current_);
  auto* e = reinterpret_cast<ExchangeObject*>(ex.get());
  e->conn = nullptr;
  if (e->on_disconnect && !e->finished) {
    Ref fn(std::exchange(e->on_disconnect, nullptr));
    Ref r(PyObject_CallNoArgs(fn.get()));
    if (!r) log_exception("gateway disconnect callback raised", fetch_exception());
  }
  // Then a stream waiting for room learns that the client is gone (after the disconnect
  // callback, so that an app resuming from here already knows).
  call_writable();
}

void GatewayConnection::call_writable() {
  if (!writable_) return;
  ensure_attached();
  Ref fn = std::move(writable_);
  Ref r(PyObject_CallNoArgs(fn.get()));
  if (!r) log_exception("gateway: a writable callback raised", fetch_exception());
}

pp::Connection* make_gateway_connection(pp::Loop& loop, Handle sock, pp::ConnectionSet& set,
                                        const ProtocolInfo& info) {
  return new GatewayConnection(loop, sock, set, info);
}

}  // namespace pp::py
