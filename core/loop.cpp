// core/loop.cpp -- the portable parts of the engine API.
#include "core/loop.h"

namespace pp {

std::string_view to_string(BackendKind kind) {
  switch (kind) {
    case BackendKind::automatic: return "auto";
    case BackendKind::io_uring: return "io_uring";
    case BackendKind::libaio: return "libaio";
    case BackendKind::epoll: return "epoll";
    case BackendKind::iocp: return "iocp";
    case BackendKind::kqueue: return "kqueue";
  }
  return "unknown";
}

bool parse_backend_kind(std::string_view text, BackendKind& out) {
  for (auto kind : {BackendKind::automatic, BackendKind::io_uring, BackendKind::libaio,
                    BackendKind::epoll, BackendKind::iocp, BackendKind::kqueue}) {
    if (text == to_string(kind)) {
      out = kind;
      return true;
    }
  }
  if (text == "uring" || text == "automatic") {
    out = text == "uring" ? BackendKind::io_uring : BackendKind::automatic;
    return true;
  }
  return false;
}

}  // namespace pp
