// pyparallel-httpd -- the engine's own HTTP server, before Python is involved: the
// ceiling that the Python runtime is measured against.
//
//   pyparallel-httpd [--host H] [--port P] [--workers N] [--root DIR] [--backend B]
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
#include "core/handoff.h"
#include "core/inherit.h"
#include "core/limit_options.h"
#include "core/listeners.h"
#include "core/log.h"
#include "core/metrics.h"
#include "core/metrics_server.h"
#include "core/net.h"
#include "core/signals.h"
#include "core/workers.h"
#include "examples/httpd/http_connection.h"
#include "numa/bind.h"
#include "numa/plan.h"
#include "numa/topology.h"

namespace {

struct Options {
  std::string host = "0.0.0.0";
  std::uint16_t port = 8080;
  unsigned workers = 0;
  std::string root = ".";
  pp::BackendKind backend = pp::BackendKind::automatic;
  pp::ConnectionLimits limits;  // timeouts and sizes (core/limit_options.h)
  std::string numa_policy = PP_DEFAULT_NUMA_POLICY;
  bool numa_policy_explicit = false;
  std::string metrics;  // --metrics-port: [HOST:]PORT, empty for none
};

std::string usage() {
  return std::string(
             "usage: pyparallel-httpd [--host H] [--port P] [--workers N] [--root DIR]\n"
             "                        [--backend B] [--numa-policy compact|scatter|node:K|CPU-LIST|none]\n"
             "                        [--metrics-port [HOST:]PORT] [limits...]\n"
             "--metrics-port serves Prometheus metrics at /metrics (default host 127.0.0.1;\n"
             "  PYPARALLEL_METRICS_PORT)\n"
             "limits (environment variables apply first, flags override them):\n") +
         pp::limit_help();
}

template <typename T>
bool parse_number(std::string_view text, T& out, T min, T max) {
  T value{};
  auto [ptr, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (ec != std::errc{} || ptr != text.data() + text.size() || value < min || value > max)
    return false;
  out = value;
  return true;
}

// Exits 2 with a message naming the option, as a command-line tool should.
[[noreturn]] void usage_error(std::string_view message) {
  pp::log("{}", message);
  std::fputs(usage().c_str(), stderr);
  std::exit(2);
}

Options parse_args(int argc, char** argv) {
  Options o;
  if (const char* env = std::getenv("PYPARALLEL_BACKEND")) {
    if (!pp::parse_backend_kind(env, o.backend))
      usage_error(fmt::format("PYPARALLEL_BACKEND: unknown backend '{}'", env));
  }
  if (std::string why; !pp::apply_limit_environment(o.limits, why)) usage_error(why);
  if (const char* env = std::getenv("PYPARALLEL_METRICS_PORT"); env && *env) o.metrics = env;
  if (const char* env = std::getenv("PYPARALLEL_NUMA_POLICY"); env && *env) {
    o.numa_policy = env;
    o.numa_policy_explicit = true;
  }
  for (int i = 1; i < argc; ++i) {
    std::string_view arg = argv[i];
    std::string_view value;
    std::string name(arg);
    if (auto eq = arg.find('='); arg.starts_with("--") && eq != std::string_view::npos) {
      name = std::string(arg.substr(0, eq));
      value = arg.substr(eq + 1);
    } else if (arg == "--help" || arg == "-h") {
      std::fputs(usage().c_str(), stdout);
      std::exit(0);
    } else if (arg.starts_with("--") && i + 1 < argc) {
      value = argv[++i];
    } else {
      usage_error(fmt::format("unknown or incomplete option '{}'", arg));
    }
    if (name == "--host") {
      o.host = value;
    } else if (name == "--port") {
      if (!parse_number<std::uint16_t>(value, o.port, 0, 65535))
        usage_error(fmt::format("--port expects 0-65535, got '{}'", value));
    } else if (name == "--workers") {
      if (!parse_number<unsigned>(value, o.workers, 0, 4096))
        usage_error(fmt::format("--workers expects 0 (one per CPU) to 4096, got '{}'", value));
    } else if (name == "--root") {
      o.root = value;
    } else if (name == "--backend") {
      if (!pp::parse_backend_kind(value, o.backend))
        usage_error(
            fmt::format("--backend expects auto, io_uring, libaio or epoll, got '{}'", value));
    } else if (name == "--metrics-port") {
      std::string host, why;
      std::uint16_t port = 0;
      if (!pp::parse_metrics_address(value, host, port, why))
        usage_error(fmt::format("--metrics-port {}", why));
      o.metrics = value;
    } else if (name == "--numa-policy") {
      o.numa_policy = value;
      o.numa_policy_explicit = true;
    } else if (const pp::LimitOption* limit =
                   pp::find_limit_flag(name == "--body-limit" ? "--max-body" : name)) {
      // --body-limit: this server's older name for --max-body, still accepted.
      if (std::string why; !pp::set_limit(*limit, value, o.limits, why))
        usage_error(fmt::format("{} {}", name, why));
    } else {
      usage_error(fmt::format("unknown option '{}'", name));
    }
  }
  return o;
}

// Per-worker server state, owned by the worker's thread.
struct WorkerServer {
  explicit WorkerServer(const pp::ConnectionLimits& limits) : connections(limits) {
    connections.set_metrics(&metrics);
  }
  pp::WorkerMetrics metrics;  // this worker's counters (core/metrics.h)
  pp::ConnectionSet connections;
  std::atomic<pp::Loop*> loop{nullptr};  // set once the worker runs; others post to it
  unsigned next = 0;  // round-robin position when spreading a shared socket's connections
  std::vector<std::unique_ptr<pp::Acceptor>> acceptors;
};

}  // namespace

int main(int argc, char** argv) {
  Options opt = parse_args(argc, argv);
  // First, before any thread: the sockets systemd passed (and the variables unset).
  if (std::string note; pp::take_systemd_listeners(note) > 0 || !note.empty())
    pp::log("{}", note);
  pp::ignore_sigpipe();
  pp::block_shutdown_signals();  // before any thread starts: only main sees them

  auto site = std::make_shared<httpd::Site>(opt.root, opt.limits.max_body);
  std::string error;
  if (!site->valid(error)) {
    pp::log("{}", error);
    return 2;
  }

  pp::WorkerPoolConfig config;
  config.backend = opt.backend;
  // Placement: one worker per allowed CPU by default, pinned by the NUMA policy.
  auto topology = pp::numa::Topology::load(pp::numa::Source::host(), error);
  unsigned count = opt.workers;
  if (count == 0)
    count = topology ? static_cast<unsigned>(std::max<std::size_t>(1, topology->allowed_pus().size()))
                     : std::max(1u, std::thread::hardware_concurrency());
  if (topology) {
    auto plan = pp::numa::make_plan(*topology, opt.numa_policy, static_cast<int>(count), error);
    if (plan) {
      config.slots = plan->slots;
    } else if (opt.numa_policy_explicit) {
      pp::log("--numa-policy {}: {}", opt.numa_policy, error);
      return 2;
    } else {
      // The build default is a preference: more workers than CPUs run unpinned.
      pp::log("numa: {}; workers run unpinned", error);
    }
  }
  config.on_thread_start = [](unsigned, const pp::WorkerSlot& slot, std::string&) {
    pp::numa::worker_start_hook(slot);
    return true;
  };
  std::string metrics_host;
  std::uint16_t metrics_port = 0;
  if (!opt.metrics.empty() &&
      !pp::parse_metrics_address(opt.metrics, metrics_host, metrics_port, error)) {
    pp::log("--metrics-port {}", error);
    return 2;
  }
  std::vector<std::unique_ptr<WorkerServer>> servers;
  pp::WorkerPool pool;
  // Sized before start: each worker fills in its own entry from its own thread.
  config.count = count;
  for (unsigned i = 0; i < count; ++i)
    servers.push_back(std::make_unique<WorkerServer>(opt.limits));

  config.drain_timeout = opt.limits.drain_timeout;
  config.on_thread_exit = [&servers](pp::Worker& w) {
    servers[w.index()]->metrics.detach_thread();
    pp::set_thread_metrics(nullptr);
  };
  pp::ListenerSet listeners;
  // Bound by each worker as it starts (bind_now=false) unless inherited or handed over: the
  // port then takes connections once a worker is ready to accept them.
  if (!pp::open_listeners(opt.host, opt.port, 4096, count, /*handoff=*/true, listeners, error,
                          /*bind_now=*/false)) {
    pp::log("{}", error);
    return 1;
  }
  for (const std::string& addr : pp::unclaimed_inherited_listeners())
    pp::log("socket activation: inherited {} matches no --host/--port; not served", addr);
  std::uint16_t port = listeners.port;
  bool ok = pool.start(
      std::move(config),
      [&](pp::Worker& w, std::string& err) {
        WorkerServer& ws = *servers[w.index()];
        pp::Loop& loop = w.loop();
        pp::set_thread_metrics(&ws.metrics);
        ws.metrics.attach_thread();
        if (listeners.bind_in_workers) {
          pp::Handle h = pp::listen_tcp(opt.host, port, /*reuse_port=*/true, 4096, err);
          if (h == pp::invalid_handle) return false;
          // Port 0: the first worker's kernel-chosen port is shared by the rest.
          if (port == 0) port = pp::local_port(h);
          listeners.per_worker[w.index()].push_back(h);
          listeners.distinct.push_back(h);
        }
        // The worker's sockets now belong to its acceptors (closed by them).
        ws.loop = &loop;
        for (pp::Handle listener : std::exchange(listeners.per_worker[w.index()], {})) {
          ws.acceptors.push_back(std::make_unique<pp::Acceptor>(
              loop, listener, ws.connections, [&loop, &ws, site](pp::Handle sock) {
                return new httpd::HttpConnection(loop, sock, ws.connections, *site);
              }));
          if (listeners.shared) {
            // One queue for every worker (systemd's socket): hand connections round-robin.
            ws.acceptors.back()->set_spread([&servers, &ws, site](pp::Handle sock) {
              WorkerServer& t = *servers[ws.next++ % servers.size()];
              pp::Loop* target = t.loop.load();
              if (&t == &ws || !target) return false;
              target->post([&t, target, sock, site] {
                t.connections.add(new httpd::HttpConnection(*target, sock, t.connections, *site));
              });
              return true;
            });
          }
          ws.acceptors.back()->start();
        }
        w.on_stop([&ws] {
          ws.connections.drain();  // first: a connection accepted from now on drains too
          for (auto& a : ws.acceptors) a->stop();
        });
        w.set_busy_check([&ws] {
          if (ws.connections.busy()) return true;
          for (auto& a : ws.acceptors)
            if (a->active()) return true;
          return false;
        });
        return true;
      },
      error);
  if (!ok) {
    pp::close_listeners(listeners);  // those of workers that never started
    pp::log("{}", error);
    return 1;
  }
  // A later instance on the same address takes these sockets over (core/handoff.h).
  pp::offer_listeners(opt.host, port, listeners.distinct);
  pp::MetricsServer metrics;
  if (!opt.metrics.empty()) {
    std::vector<const pp::WorkerMetrics*> all;
    for (auto& ws : servers) all.push_back(&ws->metrics);
    if (!metrics.start(metrics_host, metrics_port,
                       [all] { return pp::render_prometheus(all, "httpd"); }, error)) {
      pp::log("{}", error);
      pool.stop();
      pool.join();
      return 1;
    }
    pp::log("metrics on http://{}:{}/metrics", metrics_host, metrics.port());
  }
  pp::log("{}", pool.backend_reason());
  pp::log("serving http://{}:{}/ with {} worker{} (root {}; listeners {})", opt.host, port,
          pool.size(), pool.size() == 1 ? "" : "s", site->root(), listeners.origin);

  int sig = pp::wait_for_shutdown_signal();
  pp::log("{} received: draining", sig == 2 ? "SIGINT" : "SIGTERM");
  // A successor started from now on binds anew instead of taking sockets about to close.
  pp::withdraw_listeners();
  pool.stop();
  pool.join();
  metrics.stop();
  return 0;
}
