// interpreter/parallel/objects.cpp -- the module's small types (Server, Client,
// Response, FileResponse, Timer) and the functions that make them.
#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <new>
#include <unordered_set>

#include "core/log.h"
#include "interpreter/parallel/gateway.h"
#include "interpreter/parallel/runtime.h"

namespace pp::py {

// ---- py_util.h --------------------------------------------------------------------

void log_exception(std::string_view context, const Ref& exc) {
  // With workers=0 callbacks run on the main thread, where Ctrl-C surfaces as a
  // KeyboardInterrupt inside whatever callback is running: it means "stop", not
  // "this callback failed" (and the signal is consumed, so run() would not see it).
  if (exc && (PyErr_GivenExceptionMatches(exc.get(), PyExc_KeyboardInterrupt) ||
              PyErr_GivenExceptionMatches(exc.get(), PyExc_SystemExit))) {
    pp::log("{} received during a callback: stopping",
            PyErr_GivenExceptionMatches(exc.get(), PyExc_SystemExit) ? "SystemExit" : "SIGINT");
    request_stop();
    return;
  }
  // A failed callback is an error; below --log-level error neither its line nor its
  // traceback is written (the client is answered either way).
  if (!pp::log_enabled(pp::LogLevel::error)) return;
  pp::log_line(context);
  if (!exc) return;
#if PY_VERSION_HEX >= 0x030C0000
  PyErr_DisplayException(exc.get());
#else
  Ref tb(PyException_GetTraceback(exc.get()));
  PyErr_Display(reinterpret_cast<PyObject*>(Py_TYPE(exc.get())), exc.get(), tb.get());
#endif
}

bool append_sendable(PyObject* value, std::string& out) {
  if (PyBytes_Check(value)) {
    out.append(PyBytes_AS_STRING(value), static_cast<std::size_t>(PyBytes_GET_SIZE(value)));
    return true;
  }
  if (PyUnicode_Check(value)) {
    Py_ssize_t n = 0;
    const char* s = PyUnicode_AsUTF8AndSize(value, &n);
    if (!s) return false;
    out.append(s, static_cast<std::size_t>(n));
    return true;
  }
  if (PyObject_CheckBuffer(value)) {  // bytearray, memoryview, array, numpy ...
    Py_buffer view;
    if (PyObject_GetBuffer(value, &view, PyBUF_CONTIG_RO) < 0) return false;
    out.append(static_cast<const char*>(view.buf), static_cast<std::size_t>(view.len));
    PyBuffer_Release(&view);
    return true;
  }
  PyErr_Format(PyExc_TypeError,
               "a callback must return bytes, bytearray, memoryview, str or None, not %.200s",
               Py_TYPE(value)->tp_name);
  return false;
}

namespace {

// True while run() is under way, from its first step: the registry is read by the
// workers as they start, so register() (and a second run()) must wait for the run's end.
bool registry_closed = false;  // guarded by registry_mutex()

// ---- Server / Client --------------------------------------------------------------

PyObject* endpoint_new(PyTypeObject* type, const char* host, int port, int backlog,
                       bool is_client) {
  auto* e = PyObject_New(EndpointObject, type);
  if (!e) return nullptr;
  e->host = new (std::nothrow) std::string(host);
  if (!e->host) {
    // endpoint_dealloc deletes host (null is fine) and must not see a garbage protocol.
    e->protocol = nullptr;
    Py_DECREF(e);
    return PyErr_NoMemory();
  }
  new (&e->port) std::atomic<int>(port);
  e->backlog = backlog;
  e->is_client = is_client;
  e->protocol = nullptr;
  return reinterpret_cast<PyObject*>(e);
}

void endpoint_dealloc(PyObject* self) {
  auto* e = reinterpret_cast<EndpointObject*>(self);
  delete e->host;
  // The ProtocolInfo may be in use by a running worker; a registered endpoint lives in
  // the registry (module state) until the module goes, never while run() serves.
  delete e->protocol;
  PyTypeObject* type = Py_TYPE(self);
  PyObject_Free(self);
  Py_DECREF(type);
}

PyObject* endpoint_host(PyObject* self, void*) {
  return PyUnicode_FromString(reinterpret_cast<EndpointObject*>(self)->host->c_str());
}
PyObject* endpoint_port(PyObject* self, void*) {
  return PyLong_FromLong(reinterpret_cast<EndpointObject*>(self)->port.load());
}
PyObject* endpoint_repr(PyObject* self) {
  auto* e = reinterpret_cast<EndpointObject*>(self);
  return PyUnicode_FromFormat("<parallel.%s %s:%d>", e->is_client ? "Client" : "Server",
                              e->host->c_str(), e->port.load());
}

PyGetSetDef endpoint_getset[] = {
    {"host", endpoint_host, nullptr, "The host given.", nullptr},
    {"port", endpoint_port, nullptr, "The port (the bound one once running).", nullptr},
    {nullptr, nullptr, nullptr, nullptr, nullptr},
};

PyType_Slot server_slots[] = {
    {Py_tp_dealloc, reinterpret_cast<void*>(endpoint_dealloc)},
    {Py_tp_getset, endpoint_getset},
    {Py_tp_repr, reinterpret_cast<void*>(endpoint_repr)},
    {Py_tp_doc, const_cast<char*>("A listening endpoint made by parallel.server().")},
    {0, nullptr},
};
PyType_Slot client_slots[] = {
    {Py_tp_dealloc, reinterpret_cast<void*>(endpoint_dealloc)},
    {Py_tp_getset, endpoint_getset},
    {Py_tp_repr, reinterpret_cast<void*>(endpoint_repr)},
    {Py_tp_doc, const_cast<char*>("An outgoing connection made by parallel.client().")},
    {0, nullptr},
};

// ---- Response / FileResponse ------------------------------------------------------

PyObject* response_new(PyTypeObject* type, PyObject* args, PyObject* kwargs) {
  static const char* kw[] = {"body", "status", "headers", "content_type", nullptr};
  PyObject* body = names().empty_bytes;
  PyObject* headers = Py_None;
  PyObject* content_type = Py_None;
  int status = 200;
  if (!PyArg_ParseTupleAndKeywords(args, kwargs, "|OiOO:Response", const_cast<char**>(kw), &body,
                                   &status, &headers, &content_type))
    return nullptr;
  if (status < 100 || status > 999) {
    PyErr_Format(PyExc_ValueError, "status must be a 3-digit HTTP status, not %d", status);
    return nullptr;
  }
  if (headers != Py_None && !PyDict_Check(headers)) {
    PyErr_SetString(PyExc_TypeError, "headers must be a dict or None");
    return nullptr;
  }
  if (content_type != Py_None && !PyUnicode_Check(content_type)) {
    PyErr_SetString(PyExc_TypeError, "content_type must be a str or None");
    return nullptr;
  }
  auto* r = reinterpret_cast<ResponseObject*>(type->tp_alloc(type, 0));
  if (!r) return nullptr;
  r->body = Py_NewRef(body);
  r->headers = Py_NewRef(headers);
  r->content_type = Py_NewRef(content_type);
  r->status = status;
  return reinterpret_cast<PyObject*>(r);
}

// Response takes part in garbage collection: its headers dict (or a subclass's __dict__)
// can hold the response itself, and such a cycle would otherwise never be freed.
int response_traverse(PyObject* self, visitproc visit, void* arg) {
  auto* r = reinterpret_cast<ResponseObject*>(self);
  Py_VISIT(Py_TYPE(self));  // a heap type's instances own a reference to it
  Py_VISIT(r->body);
  Py_VISIT(r->headers);
  Py_VISIT(r->content_type);
  return 0;
}

int response_clear(PyObject* self) {
  auto* r = reinterpret_cast<ResponseObject*>(self);
  Py_CLEAR(r->body);
  Py_CLEAR(r->headers);
  Py_CLEAR(r->content_type);
  return 0;
}

void response_dealloc(PyObject* self) {
  PyObject_GC_UnTrack(self);
  response_clear(self);
  PyTypeObject* type = Py_TYPE(self);
  type->tp_free(self);
  Py_DECREF(type);
}

PyObject* response_status(PyObject* self, void*) {
  return PyLong_FromLong(reinterpret_cast<ResponseObject*>(self)->status);
}
PyObject* response_body(PyObject* self, void*) {
  return Py_NewRef(reinterpret_cast<ResponseObject*>(self)->body);
}

PyGetSetDef response_getset[] = {
    {"status", response_status, nullptr, "The HTTP status.", nullptr},
    {"body", response_body, nullptr, "The body as given.", nullptr},
    {nullptr, nullptr, nullptr, nullptr, nullptr},
};

PyType_Slot response_slots[] = {
    {Py_tp_new, reinterpret_cast<void*>(response_new)},
    {Py_tp_dealloc, reinterpret_cast<void*>(response_dealloc)},
    {Py_tp_traverse, reinterpret_cast<void*>(response_traverse)},
    {Py_tp_clear, reinterpret_cast<void*>(response_clear)},
    {Py_tp_getset, response_getset},
    {Py_tp_doc,
     const_cast<char*>("Response(body=b'', status=200, headers=None, content_type=None)\n--\n\n"
                       "An explicit HTTP response for http11 protocols.")},
    {0, nullptr},
};

void file_response_dealloc(PyObject* self) {
  auto* f = reinterpret_cast<FileResponseObject*>(self);
  delete f->path;
  delete f->content_type;
  PyTypeObject* type = Py_TYPE(self);
  PyObject_Free(self);
  Py_DECREF(type);
}

PyType_Slot file_response_slots[] = {
    {Py_tp_dealloc, reinterpret_cast<void*>(file_response_dealloc)},
    {Py_tp_doc, const_cast<char*>("A file served with Range support; made by parallel.file().")},
    {0, nullptr},
};

}  // namespace

// ---- Timer --------------------------------------------------------------------------

namespace {
/// The longest duetime or period (about 31 years): as nanoseconds it fits int64 with room.
constexpr double kMaxTimerSeconds = 1e9;
}  // namespace

/// A timer's engine side, shared by the Timer object (to cancel it), the runtime (while it
/// waits for run() or for a worker to arm it) and the loop it is armed on.
///
/// The loop's thread owns everything below `loop`. The timer's two operations each get
/// exactly one last completion, in either order (the engine's contract), so the timer
/// keeps itself alive (`self`) until neither is in flight: a cancel that outlived its
/// victim's memory would be a use after free.
struct TimerState;
// This thread's gateway timers with an operation in flight (see TimerState::gateway).
thread_local std::unordered_set<TimerState*> gateway_timers;

struct TimerState {
  Operation op;
  Operation cancel_op;
  Ref func;
  Ref args;
  std::chrono::nanoseconds due{};
  std::chrono::nanoseconds period{};
  // cancel() (any thread) sets `cancelled` then reads `loop`; arm_timer (the loop's thread)
  // publishes `loop` then reads `cancelled`. Both sequentially consistent, so at least one
  // sees the other: either the arm backs off, or cancel() finds the loop to cancel it on.
  std::atomic<Loop*> loop{nullptr};
  std::atomic<bool> cancelled{false};
  WorkerLocal* owner = nullptr;  // the registry it is in while an operation is in flight
  bool armed = false;            // `op` in flight
  bool cancelling = false;       // `cancel_op` in flight
  // A gateway's event-loop timer (timer_on_this_thread): it serves requests still under
  // way, so a stop does not cancel it and a worker does not wait for it (its connections
  // keep the worker busy instead); teardown releases it.
  bool gateway = false;
  std::shared_ptr<TimerState> self;

  static void fired(Operation& op, const Completion& c) {
    auto* t = static_cast<TimerState*>(op.user);
    std::shared_ptr<TimerState> keep = t->self;  // whatever the callback drops
    t->armed = false;
    ensure_attached();
    if (c.result >= 0 && !t->cancelled) {
      Ref r(PyObject_Call(t->func.get(), t->args.get(), nullptr));
      if (!r) log_exception("timer callback raised", fetch_exception());
      if (t->period.count() > 0) {
        t->due = t->period;
        arm_timer(keep, *t->loop.load());
      }
    }
    t->settle();
  }

  static void cancel_done(Operation& op, const Completion&) {
    auto* t = static_cast<TimerState*>(op.user);
    std::shared_ptr<TimerState> keep = t->self;
    t->cancelling = false;
    ensure_attached();
    t->settle();
  }

  /// Loop thread: cancels the armed operation (its completion ends the timer).
  void cancel_on_loop() {
    if (!armed || cancelling) return;
    cancelling = true;
    cancel_op.prep_cancel(&op, &TimerState::cancel_done, this);
    loop.load()->submit(cancel_op);
  }

  /// Loop thread, attached: once neither operation is in flight the timer is over (a
  /// periodic one re-arms before this): its references go now, and so does its claim
  /// on itself, which may free it.
  void settle() {
    if (armed || cancelling) return;
    if (gateway) gateway_timers.erase(this);
    if (owner) {
      owner->timers.erase(this);
      owner = nullptr;
    }
    func = Ref();
    args = Ref();
    std::shared_ptr<TimerState> last = std::move(self);
  }
};

void arm_timer(const std::shared_ptr<TimerState>& timer, Loop& loop) {
  WorkerLocal* local = worker_local();
  timer->loop.store(&loop);
  if (timer->gateway && !timer->cancelled.load() && local) {
    gateway_timers.insert(timer.get());
    timer->self = timer;
    timer->armed = true;
    timer->op.prep_timeout(timer->due, &TimerState::fired, timer.get());
    loop.submit(timer->op);
    return;
  }
  if (timer->cancelled.load() || !local || local->stopping) {
    // Cancelled before it was armed, or the runtime is stopping: it never fires.
    timer->cancelled = true;
    if (!timer->armed && !timer->cancelling && !timer->self) {
      timer->func = Ref();
      timer->args = Ref();
    }
    return;
  }
  if (!timer->owner) {
    timer->owner = local;
    local->timers.insert(timer.get());
  }
  timer->self = timer;
  timer->armed = true;
  timer->op.prep_timeout(timer->due, &TimerState::fired, timer.get());
  loop.submit(timer->op);
}

void stop_timers(WorkerLocal& local) {
  local.stopping = true;
  for (TimerState* t : local.timers) {
    t->cancelled = true;
    t->cancel_on_loop();
  }
}

void release_timers(WorkerLocal& local) {
  // In flight past the drain deadline: the loop is destroyed next without completing (or
  // touching) their operations, so nothing will settle them but this.
  auto timers = std::exchange(local.timers, {});
  for (TimerState* t : std::exchange(gateway_timers, {})) timers.insert(t);
  for (TimerState* t : timers) {
    t->cancelled = true;
    t->armed = t->cancelling = false;
    t->owner = nullptr;
    t->func = Ref();
    t->args = Ref();
    std::shared_ptr<TimerState> last = std::move(t->self);
  }
}

void timer_references(const TimerState& timer, std::vector<Ref>& out) {
  out.push_back(timer.func);
  out.push_back(timer.args);
}

namespace {

struct TimerObject {
  PyObject_HEAD
  std::shared_ptr<TimerState>* state;
};

PyObject* timer_cancel(PyObject* self, PyObject*) {
  std::shared_ptr<TimerState> t = *reinterpret_cast<TimerObject*>(self)->state;
  if (t->cancelled.exchange(true)) Py_RETURN_NONE;
  if (Loop* loop = t->loop.load()) {
    // The loop owns the operation: cancel it from the loop's own thread. Refused when
    // that runtime is stopping or gone; its stop cancels the timer anyway.
    post_to_loop(loop, [t] { t->cancel_on_loop(); });
  } else {
    // Waiting for run(), or for the worker about to arm it (which now backs off).
    forget_pending_timer(t.get());
  }
  Py_RETURN_NONE;
}

void timer_dealloc(PyObject* self) {
  auto* t = reinterpret_cast<TimerObject*>(self);
  delete t->state;
  PyTypeObject* type = Py_TYPE(self);
  PyObject_Free(self);
  Py_DECREF(type);
}

PyMethodDef timer_methods[] = {
    {"cancel", timer_cancel, METH_NOARGS,
     "cancel()\n--\n\nStop the timer: it does not fire again and lets go of func and args. "
     "Any thread; a no-op once the timer is over."},
    {nullptr, nullptr, 0, nullptr},
};

PyType_Slot timer_slots[] = {
    {Py_tp_dealloc, reinterpret_cast<void*>(timer_dealloc)},
    {Py_tp_methods, timer_methods},
    {Py_tp_doc, const_cast<char*>("A timer made by parallel.timer().")},
    {0, nullptr},
};

}  // namespace

PyType_Spec server_spec = {"parallel.Server", sizeof(EndpointObject), 0,
                           Py_TPFLAGS_DEFAULT | Py_TPFLAGS_DISALLOW_INSTANTIATION, server_slots};
PyType_Spec client_spec = {"parallel.Client", sizeof(EndpointObject), 0,
                           Py_TPFLAGS_DEFAULT | Py_TPFLAGS_DISALLOW_INSTANTIATION, client_slots};
PyType_Spec response_spec = {"parallel.Response", sizeof(ResponseObject), 0,
                             Py_TPFLAGS_DEFAULT | Py_TPFLAGS_BASETYPE | Py_TPFLAGS_HAVE_GC,
                             response_slots};
PyType_Spec file_response_spec = {"parallel.FileResponse", sizeof(FileResponseObject), 0,
                                  Py_TPFLAGS_DEFAULT | Py_TPFLAGS_DISALLOW_INSTANTIATION,
                                  file_response_slots};
PyType_Spec timer_spec = {"parallel.Timer", sizeof(TimerObject), 0,
                          Py_TPFLAGS_DEFAULT | Py_TPFLAGS_DISALLOW_INSTANTIATION, timer_slots};

bool close_registry() {
  std::lock_guard lock(registry_mutex());
  return !std::exchange(registry_closed, true);
}

void open_registry() {
  std::lock_guard lock(registry_mutex());
  registry_closed = false;
}

// ---- module functions ---------------------------------------------------------------

PyObject* fn_server(PyObject*, PyObject* args, PyObject* kwargs) {
  static const char* kw[] = {"host", "port", "backlog", nullptr};
  const char* host;
  int port, backlog = 4096;
  if (!PyArg_ParseTupleAndKeywords(args, kwargs, "si|i:server", const_cast<char**>(kw), &host,
                                   &port, &backlog))
    return nullptr;
  if (port < 0 || port > 65535) {
    PyErr_Format(PyExc_ValueError, "port must be 0-65535, not %d", port);
    return nullptr;
  }
  return endpoint_new(names().server_type, host, port, backlog, false);
}

PyObject* fn_client(PyObject*, PyObject* args, PyObject* kwargs) {
  static const char* kw[] = {"host", "port", nullptr};
  const char* host;
  int port;
  if (!PyArg_ParseTupleAndKeywords(args, kwargs, "si:client", const_cast<char**>(kw), &host,
                                   &port))
    return nullptr;
  if (port <= 0 || port > 65535) {
    PyErr_Format(PyExc_ValueError, "port must be 1-65535, not %d", port);
    return nullptr;
  }
  return endpoint_new(names().client_type, host, port, 0, true);
}

namespace {
bool has_attr(PyObject* cls, PyObject* name) {
  return PyObject_HasAttr(cls, name) == 1;
}
}  // namespace

PyObject* fn_register(PyObject*, PyObject* args, PyObject* kwargs) {
  static const char* kw[] = {"transport", "protocol", nullptr};
  PyObject *transport, *protocol;
  if (!PyArg_ParseTupleAndKeywords(args, kwargs, "OO:register", const_cast<char**>(kw),
                                   &transport, &protocol))
    return nullptr;
  if (!Py_IS_TYPE(transport, names().server_type) && !Py_IS_TYPE(transport, names().client_type)) {
    PyErr_SetString(PyExc_TypeError, "transport must be made by parallel.server() or client()");
    return nullptr;
  }
  if (!PyType_Check(protocol)) {
    PyErr_SetString(PyExc_TypeError, "protocol must be a class (one instance per connection)");
    return nullptr;
  }
  auto* e = reinterpret_cast<EndpointObject*>(transport);
  auto info = std::make_unique<ProtocolInfo>();
  info->cls = Ref::borrow(protocol);
  Ref qual(PyObject_GetAttr(protocol, names().qualname));
  const char* q = qual ? PyUnicode_AsUTF8(qual.get()) : nullptr;
  info->name = q ? q : "protocol";
  PyErr_Clear();
  Ref http11(PyObject_GetAttr(protocol, names().http11));
  if (http11) {
    int t = PyObject_IsTrue(http11.get());
    if (t < 0) return nullptr;
    info->http11 = t;
  }
  PyErr_Clear();
  // parallel.wsgi()/asgi() classes: every request goes to their handler (gateway.h).
  info->gateway = Ref(PyObject_GetAttrString(protocol, kGatewayAttribute));
  PyErr_Clear();
  if (info->gateway && e->is_client) {
    PyErr_SetString(names().parallel_error, "WSGI and ASGI apps serve; a client speaks raw bytes");
    return nullptr;
  }
  if (info->http11 && e->is_client) {
    PyErr_SetString(names().parallel_error, "http11 protocols serve; a client speaks raw bytes");
    return nullptr;
  }
  info->has_connection_made = has_attr(protocol, names().connection_made);
  info->has_data_received = has_attr(protocol, names().data_received);
  info->has_send_complete = has_attr(protocol, names().send_complete);
  info->has_connection_lost = has_attr(protocol, names().connection_lost);
  info->has_exception_handler = has_attr(protocol, names().exception_handler);
  if (info->has_connection_made) {
    // The seed's form is connection_made(self, transport, data): tell them apart by
    // the function's positional parameter count.
    Ref fn(PyObject_GetAttr(protocol, names().connection_made));
    Ref code(fn ? PyObject_GetAttrString(fn.get(), "__code__") : nullptr);
    Ref argc(code ? PyObject_GetAttrString(code.get(), "co_argcount") : nullptr);
    if (argc) info->made_takes_data = PyLong_AsLong(argc.get()) >= 3;
    PyErr_Clear();
  }
  if (has_attr(protocol, names().initial_bytes_to_send)) {
    info->initial_bytes = Ref(PyObject_GetAttr(protocol, names().initial_bytes_to_send));
    if (!info->initial_bytes) return nullptr;
    if (info->initial_bytes.get() == Py_None) info->initial_bytes = Ref();
  }
  // Checked and added in one step under the registry's lock: a run() that began meanwhile
  // on another thread is reading the registry.
  enum { added, running, taken } outcome;
  {
    std::lock_guard lock(registry_mutex());
    if (registry_closed) {
      outcome = running;
    } else if (e->protocol) {
      outcome = taken;
    } else {
      endpoints().push_back(Ref::borrow(transport));
      e->protocol = info.release();
      outcome = added;
    }
  }
  if (outcome == running) {
    PyErr_SetString(names().parallel_error, "register() must come before run()");
    return nullptr;
  }
  if (outcome == taken) {
    PyErr_Format(names().parallel_error, "%R already has a protocol", transport);
    return nullptr;
  }
  Py_RETURN_NONE;
}

PyObject* fn_file(PyObject*, PyObject* args, PyObject* kwargs) {
  static const char* kw[] = {"path", "content_type", nullptr};
  PyObject* path_obj;
  const char* content_type = "";
  if (!PyArg_ParseTupleAndKeywords(args, kwargs, "O&|z:file", const_cast<char**>(kw),
                                   PyUnicode_FSConverter, &path_obj, &content_type))
    return nullptr;
  Ref path(path_obj);
  auto* f = PyObject_New(FileResponseObject, names().file_response_type);
  if (!f) return nullptr;
  f->path = new std::string(PyBytes_AS_STRING(path.get()));
  f->content_type = new std::string(content_type ? content_type : "");
  return reinterpret_cast<PyObject*>(f);
}

PyObject* fn_timer(PyObject*, PyObject* args) {
  Py_ssize_t n = PyTuple_GET_SIZE(args);
  if (n < 3) {
    PyErr_SetString(PyExc_TypeError, "timer(duetime, period, func, *args)");
    return nullptr;
  }
  double due = PyFloat_AsDouble(PyTuple_GET_ITEM(args, 0));
  double period = PyFloat_AsDouble(PyTuple_GET_ITEM(args, 1));
  if (PyErr_Occurred()) return nullptr;
  PyObject* func = PyTuple_GET_ITEM(args, 2);
  // Written so that NaN fails too; the bound keeps the nanoseconds well inside int64 (a
  // larger double would be cast with undefined behaviour).
  if (!(due >= 0 && due <= kMaxTimerSeconds) || !(period >= 0 && period <= kMaxTimerSeconds) ||
      !PyCallable_Check(func)) {
    PyErr_Format(PyExc_ValueError,
                 "timer: duetime and period must be 0 to %d seconds (not NaN), func callable",
                 static_cast<int>(kMaxTimerSeconds));
    return nullptr;
  }
  auto state = std::make_shared<TimerState>();
  state->func = Ref::borrow(func);
  state->args = Ref(PyTuple_GetSlice(args, 3, n));
  if (!state->args) return nullptr;
  state->due = std::chrono::nanoseconds(static_cast<long long>(due * 1e9));
  state->period = std::chrono::nanoseconds(static_cast<long long>(period * 1e9));
  auto* t = PyObject_New(TimerObject, names().timer_type);
  if (!t) return nullptr;
  t->state = new std::shared_ptr<TimerState>(state);
  if (!start_timer(state)) {
    Py_DECREF(t);
    return raise_refused();
  }
  return reinterpret_cast<PyObject*>(t);
}

}  // namespace pp::py

namespace pp::py {

// For the gateways' per-worker asyncio loops (gateway.h): a one-shot timer on this
// thread's own loop, where parallel.timer() picks any worker.
PyObject* timer_on_this_thread(double seconds, PyObject* func) {
  Loop* loop = current_loop();
  if (!loop) {
    PyErr_SetString(names().parallel_error, "not on a runtime thread");
    return nullptr;
  }
  auto state = std::make_shared<TimerState>();
  state->func = Ref::borrow(func);
  state->args = Ref(PyTuple_New(0));
  if (!state->args) return nullptr;
  // asyncio's call_at may ask for anything: NaN or less is now, more than the bound is the
  // bound (the loop re-arms as its own schedule changes).
  if (!(seconds > 0)) seconds = 0;
  seconds = std::min(seconds, kMaxTimerSeconds);
  state->due = std::chrono::nanoseconds(static_cast<long long>(seconds * 1e9));
  state->gateway = true;
  auto* t = PyObject_New(TimerObject, names().timer_type);
  if (!t) return nullptr;
  t->state = new std::shared_ptr<TimerState>(state);
  arm_timer(state, *loop);
  return reinterpret_cast<PyObject*>(t);
}

}  // namespace pp::py
