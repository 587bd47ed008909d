// platform/linux/epoll_loop.cpp -- placeholder until the backend lands.
#include "platform/linux/backends.h"

namespace pp::platform {
std::unique_ptr<Loop> open_epoll_loop(const LoopOptions&, std::string& why) {
  why = "not built yet";
  return nullptr;
}
}  // namespace pp::platform
