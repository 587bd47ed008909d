// platform/bsd/open_loop.cpp -- backend selection on FreeBSD, DragonFly, NetBSD, OpenBSD and
// macOS: kqueue is the only backend there, so the ladder has one rung.
#include <fmt/format.h>

#include "core/loop.h"
#include "platform/bsd/backends.h"

namespace pp {

OpenLoopResult open_loop(BackendKind kind, const LoopOptions& options) {
  OpenLoopResult out;
  switch (kind) {
    case BackendKind::automatic:
    case BackendKind::kqueue: {
      std::string why;
      out.loop = platform::open_kqueue_loop(options, why);
      if (!out.loop)
        out.error = fmt::format("backend kqueue could not start: {}", why);
      else
        out.reason = kind == BackendKind::automatic
                         ? "backend kqueue: the only backend on this system"
                         : "backend kqueue: requested";
      return out;
    }
    // io_uring, libaio, epoll (Linux) and iocp (Windows): a `default` rather than a list, so
    // that this switch names only what exists here and compiles whatever kinds core/loop.h
    // gains for other systems.
    default:
      out.error = fmt::format(
          "backend {} does not exist on this system (io_uring, libaio and epoll are Linux's, "
          "iocp is Windows'); use kqueue or auto",
          to_string(kind));
      return out;
  }
}

std::span<const BackendKind> built_backends() {
  static constexpr BackendKind kinds[] = {BackendKind::kqueue};
  return kinds;
}

std::vector<BackendKind> available_backends() {
  std::vector<BackendKind> kinds;
  if (open_loop(BackendKind::kqueue).loop) kinds.push_back(BackendKind::kqueue);
  return kinds;
}

}  // namespace pp
