// interpreter/parallel/gateway.h -- the engine side of parallel.wsgi() and parallel.asgi():
// an HTTP/1.1 connection that hands every request, whatever its path, to one Python
// handler as an Exchange, and lets the handler answer now (WSGI) or later, from the
// worker's asyncio loop (ASGI).
//
// The gateways themselves (environ/scope, start_response, receive/send, the per-worker
// event loop) are Python, in interpreter/parallel/python/; this file gives them what
// Python cannot do cheaply or at all: the parsed request as an environ or scope dict
// in one call, response framing (Content-Length, chunked, HEAD, Connection), sendfile,
// pausing a pipelined connection until an asynchronous response is complete, and
// timers and posts to the worker that owns a connection.
#pragma once

#include "interpreter/parallel/runtime.h"

namespace pp::py {

/// The name of the class attribute that makes a protocol class a gateway: its value is
/// the handler called with each request's Exchange (set by parallel.wsgi/asgi).
inline constexpr const char* kGatewayAttribute = "_parallel_gateway";

/// Creates the connection for a gateway protocol (info.gateway set). Worker thread.
pp::Connection* make_gateway_connection(pp::Loop& loop, Handle sock, pp::ConnectionSet& set,
                                        const ProtocolInfo& info);

/// Adds wsgi(), asgi(), the gateway's private functions and the Exchange type to the
/// module, and makes the module a package whose __path__ is the folder of its Python
/// submodules (parallel.serve, parallel._wsgi, ...): parallel/python beside the binary
/// holding the module (the host, or the extension), else ../lib/pyparallel/python from
/// it. Call from the module's exec slot. Returns -1 with an exception set on failure.
int init_gateway(PyObject* module);

/// Calls `func()` on the calling runtime thread's loop after `seconds`, once; cancelled
/// at stop, released at teardown (objects.cpp, beside parallel.timer). Null with
/// ParallelError set off runtime threads. Returns a Timer (its cancel() works).
PyObject* timer_on_this_thread(double seconds, PyObject* func);

}  // namespace pp::py
