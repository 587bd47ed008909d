// platform/linux/open_loop.cpp -- backend selection on Linux: the probe ladder
// io_uring -> libaio -> epoll (libaio while kLibaioInAutomaticLadder, backends.h).
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
      std::string aio_why;
      if (platform::kLibaioInAutomaticLadder) {
        out.loop = platform::open_aio_loop(options, aio_why);
        if (out.loop) {
          out.reason = fmt::format("backend libaio: io_uring unavailable ({})", uring_why);
          return out;
        }
      }
      // What was tried and why it failed, for the reason line and the error.
      std::string tried = fmt::format("io_uring unavailable ({})", uring_why);
      if (platform::kLibaioInAutomaticLadder)
        tried += fmt::format("; libaio unavailable ({})", aio_why);
      std::string epoll_why;
      out.loop = platform::open_epoll_loop(options, epoll_why);
      if (out.loop) {
        out.reason = fmt::format("backend epoll: {}", tried);
        return out;
      }
      out.error = fmt::format("no completion backend could start: {}; epoll: {}", tried, epoll_why);
      return out;
    }
    case BackendKind::io_uring:
      out.loop = platform::open_uring_loop(options, uring_why);
      if (!out.loop)
        out.error = fmt::format(
            "backend io_uring is unavailable on this host: {}. Use --backend=epoll or "
            "--backend=libaio (or --backend=auto, which falls back by itself).",
            uring_why);
      else
        out.reason = "backend io_uring: requested";
      return out;
    case BackendKind::libaio: {
      std::string why;
      out.loop = platform::open_aio_loop(options, why);
      if (!out.loop)
        out.error = fmt::format(
            "backend libaio is unavailable on this host: {}. Use --backend=epoll or "
            "--backend=io_uring (or --backend=auto, which picks what works).",
            why);
      else
        out.reason = "backend libaio: requested";
      return out;
    }
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
          "io_uring, libaio, epoll or auto",
          to_string(kind));
      return out;
  }
  out.error = "unknown backend";
  return out;
}

std::span<const BackendKind> built_backends() {
  static constexpr BackendKind kinds[] = {BackendKind::io_uring, BackendKind::libaio,
                                          BackendKind::epoll};
  return kinds;
}

std::vector<BackendKind> available_backends() {
  std::vector<BackendKind> kinds;
  for (BackendKind kind : built_backends()) {
    if (open_loop(kind).loop) kinds.push_back(kind);
  }
  return kinds;
}

}  // namespace pp
