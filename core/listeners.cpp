// core/listeners.cpp
#include "core/listeners.h"

#include <fmt/format.h>

#include "core/handoff.h"
#include "core/inherit.h"
#include "core/net.h"

namespace pp {

namespace {

// Spreads K sockets over W workers: socket j to worker j mod W, and a worker left without
// one gets a duplicate of socket i mod K.
bool spread(std::vector<Handle> sockets, unsigned workers, ListenerSet& out, std::string& error) {
  out.distinct = sockets;
  out.shared = sockets.size() < workers;
  out.per_worker.assign(workers, {});
  for (std::size_t j = 0; j < sockets.size(); ++j)
    out.per_worker[j % workers].push_back(sockets[j]);
  for (unsigned i = static_cast<unsigned>(sockets.size()); i < workers; ++i) {
    Handle d = duplicate_handle(sockets[i % sockets.size()]);
    if (d == invalid_handle) {
      error = "cannot duplicate an inherited listening socket";
      close_listeners(out);
      return false;
    }
    out.per_worker[i].push_back(d);
  }
  out.port = local_port(sockets.front());
  return true;
}

}  // namespace

bool open_listeners(std::string_view host, std::uint16_t port, int backlog, unsigned workers,
                    bool handoff, ListenerSet& out, std::string& error, bool bind_now) {
  out = {};
  if (workers == 0) workers = 1;
  if (auto inherited = claim_inherited_listeners(host, port); !inherited.empty()) {
    out.origin = "systemd";
    return spread(std::move(inherited), workers, out, error);
  }
  if (handoff) {
    std::string from;
    if (auto taken = request_listeners(host, port, from); !taken.empty()) {
      out.origin = fmt::format("handed over by {}", from);
      return spread(std::move(taken), workers, out, error);
    }
  }
  out.origin = "bound";
  out.per_worker.assign(workers, {});
  if (!bind_now) {
    out.bind_in_workers = true;
    out.port = port;
    return true;
  }
  for (unsigned i = 0; i < workers; ++i) {
    Handle h = listen_tcp(host, port, /*reuse_port=*/true, backlog, error);
    if (h == invalid_handle) {
      close_listeners(out);
      return false;
    }
    // Port 0: the first socket's kernel-chosen port is everyone's.
    if (port == 0) port = local_port(h);
    out.per_worker[i].push_back(h);
    out.distinct.push_back(h);
  }
  out.port = port;
  return true;
}

void close_listeners(ListenerSet& set) {
  for (auto& handles : set.per_worker)
    for (Handle h : handles) close_socket(h);
  set.per_worker.clear();
  set.distinct.clear();
}

}  // namespace pp
