// platform/linux/open_loop.cpp -- backend selection on Linux: the probe ladder.
#include <fmt/format.h>

#include "core/loop.h"
#include "platform/linux/backends.h"

namespace pp {

OpenLoopResult open_loop(BackendKind kind, const LoopOptions& options) {
  OpenLoopResult out;
  std::string uring_why;
  switch (kind) {
    case BackendKind::automatic: {
      // io_uring first: completions without a readiness round trip, batched syscalls.
      out.loop = platform::open_uring_loop(options, uring_why);
      if (out.loop) {
        out.reason = "backend io_uring: ring set up and opcode probe passed";
        return out;
      }
      std::string epoll_why;
      out.loop = platform::open_epoll_loop(options, epoll_why);
      if (out.loop) {
        out.reason = fmt::format("backend epoll: io_uring unavailable ({})", uring_why);
        return out;
      }
      out.error = fmt::format("no completion backend could start: io_uring: {}; epoll: {}",
                              uring_why, epoll_why);
      return out;
    }
    case BackendKind::io_uring:
      out.loop = platform::open_uring_loop(options, uring_why);
      if (!out.loop)
        out.error = fmt::format(
            "backend io_uring is unavailable on this host: {}. Use --backend=epoll (or "
            "--backend=auto, which falls back to epoll by itself).",
            uring_why);
      else
        out.reason = "backend io_uring: requested";
      return out;
    case BackendKind::epoll: {
      std::string why;
      out.loop = platform::open_epoll_loop(options, why);
      if (!out.loop)
        out.error = fmt::format("backend epoll could not start: {}", why);
      else
        out.reason = "backend epoll: requested";
      return out;
    }
    case BackendKind::iocp:
    case BackendKind::kqueue:
      out.error = fmt::format(
          "backend {} does not exist on Linux (iocp is Windows', kqueue is BSD's); use "
          "io_uring, epoll or auto",
          to_string(kind));
      return out;
  }
  out.error = "unknown backend";
  return out;
}

std::vector<BackendKind> available_backends() {
  std::vector<BackendKind> kinds;
  for (auto kind : {BackendKind::io_uring, BackendKind::epoll}) {
    if (open_loop(kind).loop) kinds.push_back(kind);
  }
  return kinds;
}

}  // namespace pp
