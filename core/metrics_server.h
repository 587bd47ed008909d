// core/metrics_server.h -- GET /metrics (Prometheus text) on a port of its own, for
// pyparallel-httpd (--metrics-port) and the runtime (--metrics-port, run(metrics_port=)).
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>

namespace pp {

/// A one-thread HTTP server on the engine that answers GET /metrics with what `render`
/// returns (text/plain; version=0.0.4) and anything else with 404. It runs beside the
/// workers, on its own loop and thread, so a scrape never waits behind requests (and is
/// not counted in them). Opt-in: nothing listens unless one is started.
class MetricsServer {
 public:
  /// Builds the exposition; called on the server's thread for each scrape.
  using Render = std::function<std::string()>;
  MetricsServer();
  MetricsServer(const MetricsServer&) = delete;
  MetricsServer& operator=(const MetricsServer&) = delete;
  ~MetricsServer();

  /// Listens on `host:port` (port 0: a free one) and serves until `stop`. False with
  /// `error` when it cannot listen.
  bool start(std::string_view host, std::uint16_t port, Render render, std::string& error);
  /// The port it listens on (after `start`).
  std::uint16_t port() const { return port_; }
  /// Stops and joins. Idempotent; the destructor calls it.
  void stop();

 private:
  struct State;
  std::unique_ptr<State> state_;
  std::uint16_t port_ = 0;
};

}  // namespace pp
