// platform/win32/handoff.cpp -- core/handoff.h on Windows: not implemented, as on every
// system but Linux (the hand-over there is a Unix socket in Linux's abstract namespace with
// SO_PEERCRED). A Windows version would hand sockets over with WSADuplicateSocket through a
// named pipe; until then a restarted server binds anew.
#include "core/handoff.h"

namespace pp {

std::vector<Handle> request_listeners(std::string_view, std::uint16_t, std::string& from) {
  from.clear();
  return {};
}

void offer_listeners(std::string_view, std::uint16_t, const std::vector<Handle>&) {}

void withdraw_listeners() {}

}  // namespace pp
