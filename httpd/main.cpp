// pyparallel-httpd -- the engine's own HTTP server, before Python is involved: the
// ceiling that the Python runtime is measured against.
//
//   pyparallel-httpd [--host H] [--port P] [--root DIR] [--workers N] [--backend B] ...
//
// Its options beyond --host, --port and --root are the option table's (core/options.h),
// shared with the Python runtime: the same flags, PYPARALLEL_* variables and checks.
//
// GET /plaintext and /json follow TechEmpower's rules; any other path is a file
// under --root, sent with sendfile and honouring Range. One worker per CPU by
// default, each with its own loop and SO_REUSEPORT listener; SIGINT/SIGTERM stop
// accepting and drain (requests under way are answered with `Connection: close`, idle
// connections closed, within --drain-timeout), then exit 0.
//
// Listeners: sockets passed by systemd (LISTEN_FDS) are used for their address instead of
// binding; otherwise an instance already serving the address hands its sockets over
// (core/handoff.h), so starting a new instance and then sending SIGTERM to the old one loses
// no connection; otherwise one SO_REUSEPORT socket per worker is bound.
#include <atomic>
#include <charconv>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "core/acceptor.h"
#include "core/access_log.h"
#include "core/handoff.h"
#include "core/inherit.h"
#include "core/listeners.h"
#include "core/log.h"
#include "core/metrics.h"
#include "core/metrics_server.h"
#include "core/net.h"
#include "core/options.h"
#include "core/signals.h"
#include "core/worker_server.h"
#include "core/workers.h"
#include "httpd/http_connection.h"
#include "numa/bind.h"
#include "numa/placement.h"

namespace {

// pyparallel-httpd's view of the option table (core/options.h): the rows it reads, and its
// own meaning of --workers 0 (it has no main-thread mode; 0 is one per CPU, as no flag).
constexpr pp::OptionNote kNotes[] = {
    {pp::OptionId::workers,
     "worker threads, one per CPU by default (0 too: this server has no main-thread mode)",
     "one per CPU"},
};
constexpr pp::OptionProgram kProgram{pp::user_httpd, kNotes};

struct Options {
  std::string host = "0.0.0.0";
  std::uint16_t port = 8080;
  std::string root = ".";
  pp::ServerOptions server = pp::default_server_options();  // the table's options
};

std::string usage() {
  return fmt::format(
      "usage: pyparallel-httpd [--host H] [--port P] [--root DIR] [options]\n"
      "  --host H               address to listen on (default 0.0.0.0)\n"
      "  --port P               port to listen on, 0 for any free one (default 8080)\n"
      "  --root DIR             folder of the files served (default .)\n"
      "Server options (each also has an environment variable; a flag overrides it):\n"
      "{}"
      "Limits of every connection:\n"
      "{}",
      pp::option_help(kProgram, pp::OptionGroup::runtime),
      pp::option_help(kProgram, pp::OptionGroup::limit));
}

// Exits 2 with a message naming the option, as a command-line tool should.
[[noreturn]] void usage_error(std::string_view message) {
  pp::log_critical("{}", message);
  std::fputs(usage().c_str(), stderr);
  std::exit(2);
}

// The environment first, then the flags: the table's, and this server's own.
Options parse_args(int argc, char** argv) {
  Options o;
  std::string error;
  if (!pp::apply_option_environment(o.server, kProgram, error)) usage_error(error);
  for (int i = 1; i < argc; ++i) {
    std::string_view arg = argv[i];
    if (arg == "--help" || arg == "-h") {
      std::fputs(usage().c_str(), stdout);
      std::exit(0);
    }
    switch (pp::take_option_flag(argc, argv, i, kProgram, o.server, error)) {
      case pp::FlagResult::taken:
        continue;
      case pp::FlagResult::error:
        usage_error(error);
      case pp::FlagResult::not_ours:
        break;
    }
    std::string_view name = arg.substr(0, arg.find('='));
    // --body-limit: this server's older name for --max-body, still accepted.
    if (name != "--host" && name != "--port" && name != "--root" && name != "--body-limit")
      usage_error(fmt::format("unknown option '{}'", name));
    std::string_view value;
    if (!pp::take_flag_value(argc, argv, i, value, error)) usage_error(error);
    if (name == "--host") {
      o.host = value;
    } else if (name == "--root") {
      o.root = value;
    } else if (name == "--port") {
      unsigned port = 0;
      auto [end, ec] = std::from_chars(value.data(), value.data() + value.size(), port);
      if (ec != std::errc{} || end != value.data() + value.size() || value.empty() || port > 65535)
        usage_error(fmt::format("--port expects a port from 0 to 65535, got '{}'", value));
      o.port = static_cast<std::uint16_t>(port);
    } else if (!pp::set_option(pp::option_spec(pp::OptionId::max_body), value,
                               pp::OptionOrigin::command_line, o.server, error, &kProgram)) {
      usage_error(fmt::format("{} {}", name, error));
    }
  }
  return o;
}

// Per-worker server state, owned by the worker's thread.
struct WorkerState {
  explicit WorkerState(const pp::ConnectionLimits& limits) : server(limits) {
    server.connections().set_metrics(&metrics);
  }
  pp::WorkerMetrics metrics;             // this worker's counters (core/metrics.h)
  pp::WorkerServer server;               // its connections and acceptors (core/worker_server.h)
  std::atomic<pp::Loop*> loop{nullptr};  // set once the worker runs; others post to it
  unsigned next = 0;  // round-robin position when spreading a shared socket's connections
};

}  // namespace

int main(int argc, char** argv) {
  Options opt = parse_args(argc, argv);
  pp::set_log_level(opt.server.log_level);
  // First, before any thread: the sockets systemd passed (and the variables unset).
  if (std::string note; pp::take_systemd_listeners(note) > 0 || !note.empty()) pp::log("{}", note);
  pp::ignore_sigpipe();
  pp::block_shutdown_signals();  // before any thread starts: only main sees them

  const pp::ServerOptions& server = opt.server;
  auto site = std::make_shared<httpd::Site>(opt.root, server.limits.max_body);
  std::string error;
  if (!site->valid(error)) {
    pp::log_critical("{}", error);
    return 2;
  }
  if (server.access_log && !pp::open_access_log(server.access_log_file, error)) {
    pp::log_critical("{}", error);
    return 2;
  }

  pp::WorkerPoolConfig config;
  config.backend = server.backend;
  // Placement: one worker per allowed CPU by default, pinned by the NUMA policy.
  auto placement = pp::numa::place_workers(
      server.numa_policy, server.given(pp::OptionId::numa_policy), server.workers, error);
  if (!placement) {
    // An impossible policy someone asked for (node:7 on one node) is an error, naming
    // where it was asked for.
    const pp::OptionSpec& spec = pp::option_spec(pp::OptionId::numa_policy);
    pp::log_critical("{} {}: {}",
                     server.origin(pp::OptionId::numa_policy) == pp::OptionOrigin::environment
                         ? spec.environment
                         : spec.flag,
                     server.numa_policy, error);
    return 2;
  }
  unsigned count = placement->workers;
  config.slots = placement->slots;
  config.on_thread_start = [](unsigned, const pp::WorkerSlot& slot, std::string&) {
    pp::numa::worker_start_hook(slot);
    return true;
  };
  std::vector<std::unique_ptr<WorkerState>> servers;
  pp::WorkerPool pool;
  // Sized before start: each worker fills in its own entry from its own thread.
  config.count = count;
  for (unsigned i = 0; i < count; ++i)
    servers.push_back(std::make_unique<WorkerState>(server.limits));

  config.drain_timeout = server.limits.drain_timeout;
  config.on_thread_exit = [&servers](pp::Worker& w) {
    servers[w.index()]->metrics.detach_thread();
    pp::set_thread_metrics(nullptr);
  };
  pp::ListenerSet listeners;
  // Bound by each worker as it starts (bind_now=false) unless inherited or handed over: the
  // port then takes connections once a worker is ready to accept them.
  if (!pp::open_listeners(opt.host, opt.port, 4096, count, /*handoff=*/true, listeners, error,
                          /*bind_now=*/false)) {
    pp::log_critical("{}", error);
    return 1;
  }
  for (const std::string& addr : pp::unclaimed_inherited_listeners())
    pp::log_warning("socket activation: inherited {} matches no --host/--port; not served", addr);
  bool ok = pool.start(
      std::move(config),
      [&](pp::Worker& w, std::string& err) {
        WorkerState& ws = *servers[w.index()];
        pp::Loop& loop = w.loop();
        pp::set_thread_metrics(&ws.metrics);
        ws.metrics.attach_thread();
        ws.loop = &loop;
        pp::ConnectionSet& connections = ws.server.connections();
        auto make = [&loop, &connections, site](pp::Handle sock) {
          return new httpd::HttpConnection(loop, sock, connections, *site);
        };
        // One queue for every worker (systemd's socket): hand connections round-robin.
        auto spread = [&servers, &ws, site](pp::Handle sock) {
          WorkerState& t = *servers[ws.next++ % servers.size()];
          pp::Loop* target = t.loop.load();
          if (&t == &ws || !target) return false;
          target->post([&t, target, sock, site] {
            pp::ConnectionSet& set = t.server.connections();
            set.add(new httpd::HttpConnection(*target, sock, set, *site));
          });
          return true;
        };
        if (!ws.server.take_listeners(loop, listeners, w.index(), count, opt.host, 4096, make,
                                      spread, err))
          return false;
        ws.server.start_accepting();
        w.on_stop([&ws] { ws.server.begin_stop(); });
        w.set_busy_check([&ws] { return ws.server.busy(); });
        return true;
      },
      error);
  if (!ok) {
    pp::close_listeners(listeners);  // those of workers that never started
    pp::log_critical("{}", error);
    return 1;
  }
  // A later instance on the same address takes these sockets over (core/handoff.h).
  std::uint16_t port = listeners.port;
  pp::offer_listeners(opt.host, port, listeners.distinct);
  pp::MetricsServer metrics;
  if (server.metrics) {
    std::vector<const pp::WorkerMetrics*> all;
    for (auto& ws : servers) all.push_back(&ws->metrics);
    if (!metrics.start(
            server.metrics->host, server.metrics->port,
            [all] { return pp::render_prometheus(all, "httpd"); }, error)) {
      pp::log_critical("{}", error);
      pool.stop();
      pool.join();
      return 1;
    }
    pp::log("metrics on http://{}:{}/metrics", server.metrics->host, metrics.port());
  }
  pp::log("{}", pool.backend_reason());
  pp::log("serving http://{}:{}/ with {} worker{} (root {}; listeners {})", opt.host, port,
          pool.size(), pool.size() == 1 ? "" : "s", site->root(), listeners.origin);

  int sig = pp::wait_for_shutdown_signal();
  for (; pp::is_reopen_signal(sig); sig = pp::wait_for_shutdown_signal()) {
    std::string why;
    if (!pp::reopen_access_log(why)) pp::log_error("{}", why);
  }
  pp::log("{} received: draining", sig == 2 ? "SIGINT" : "SIGTERM");
  // A successor started from now on binds anew instead of taking sockets about to close.
  pp::withdraw_listeners();
  pool.stop();
  pool.join();  // each worker wrote out its access log lines as it ended
  metrics.stop();
  pp::close_access_log();
  return 0;
}
