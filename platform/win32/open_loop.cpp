// platform/win32/open_loop.cpp -- backend selection on Windows: IOCP is the only backend,
// so `automatic` means iocp and every other name is refused with the alternative.
#include <fmt/format.h>

#include "core/loop.h"
#include "platform/win32/iocp_loop.h"

namespace pp {

OpenLoopResult open_loop(BackendKind kind, const LoopOptions& options) {
  OpenLoopResult out;
  switch (kind) {
    case BackendKind::automatic:
    case BackendKind::iocp: {
      std::string why;
      out.loop = platform::open_iocp_loop(options, why);
      if (!out.loop)
        out.error = fmt::format("backend iocp could not start: {}", why);
      else
        out.reason = kind == BackendKind::iocp ? "backend iocp: requested"
                                               : "backend iocp: the Windows backend";
      return out;
    }
    case BackendKind::io_uring:
    case BackendKind::libaio:
    case BackendKind::epoll:
    case BackendKind::kqueue:
      out.error = fmt::format(
          "backend {} does not exist on Windows (io_uring, libaio and epoll are Linux's, "
          "kqueue is BSD's); use iocp or auto",
          to_string(kind));
      return out;
  }
  out.error = "unknown backend";
  return out;
}

std::span<const BackendKind> built_backends() {
  static constexpr BackendKind kinds[] = {BackendKind::iocp};
  return kinds;
}

std::vector<BackendKind> available_backends() {
  std::vector<BackendKind> kinds;
  if (open_loop(BackendKind::iocp).loop) kinds.push_back(BackendKind::iocp);
  return kinds;
}

}  // namespace pp
