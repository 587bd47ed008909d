// core/metrics_server.cpp
#include "core/metrics_server.h"

#include "core/acceptor.h"
#include "core/connection.h"
#include "core/http/http_connection.h"
#include "core/http/response.h"
#include "core/net.h"
#include "core/workers.h"

namespace pp {

namespace {

class ScrapeConnection final : public http::HttpConnection {
 public:
  ScrapeConnection(Loop& loop, Handle sock, ConnectionSet& set, const MetricsServer::Render& render)
      : HttpConnection(loop, sock, set, options()), render_(render) {}

 protected:
  void respond(const http::Request& request, bool close) override {
    std::string& buf = out().tail_buffer();
    if (request.path != "/metrics") {
      http::append_error_response(buf, 404, close);
      return;
    }
    if (request.method != "GET" && request.method != "HEAD") {
      http::append_error_response(buf, 405, close);
      return;
    }
    std::string body = render_();
    http::ResponseHead head;
    head.content_type = "text/plain; version=0.0.4; charset=utf-8";
    head.connection = http::connection_for(request, close);
    if (request.method == "HEAD") {
      head.content_length = body.size();
      http::append_response_head(buf, head);
    } else {
      http::append_response(buf, head, body);
    }
  }

 private:
  static const http::ParserOptions& options() {
    static const http::ParserOptions o;
    return o;
  }
  const MetricsServer::Render& render_;
};

}  // namespace

struct MetricsServer::State {
  Render render;
  ConnectionSet connections;
  std::unique_ptr<Acceptor> acceptor;
  WorkerPool pool;
};

MetricsServer::MetricsServer() = default;
MetricsServer::~MetricsServer() {
  stop();
}

bool MetricsServer::start(std::string_view host, std::uint16_t port, Render render,
                          std::string& error) {
  stop();
  auto s = std::make_unique<State>();
  s->render = std::move(render);
  Handle listener = listen_tcp(host, port, /*reuse_port=*/false, 64, error);
  if (listener == invalid_handle) {
    error = "--metrics-port: " + error;
    return false;
  }
  port_ = local_port(listener);
  WorkerPoolConfig config;
  config.count = 1;
  config.drain_timeout = std::chrono::milliseconds(1000);
  State* st = s.get();
  bool ok = st->pool.start(
      std::move(config),
      [st, listener](Worker& w, std::string&) {
        Loop& loop = w.loop();
        st->acceptor =
            std::make_unique<Acceptor>(loop, listener, st->connections, [&loop, st](Handle sock) {
              return new ScrapeConnection(loop, sock, st->connections, st->render);
            });
        st->acceptor->start();
        w.on_stop([st] {
          st->acceptor->stop();
          st->connections.close_all();
        });
        w.set_busy_check([st] { return st->connections.busy() || st->acceptor->active(); });
        return true;
      },
      error);
  if (!ok) {
    if (!st->acceptor) close_socket(listener);
    return false;
  }
  state_ = std::move(s);
  return true;
}

void MetricsServer::stop() {
  if (!state_) return;
  state_->pool.stop();
  state_->pool.join();
  state_->acceptor.reset();
  state_.reset();
}

}  // namespace pp
