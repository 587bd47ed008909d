// platform/win32/accept_port.cpp -- the process's accept port and its forwarding thread.
#include "platform/win32/accept_port.h"

#include <thread>

namespace pp::platform::win32 {
namespace {

void forward_forever(HANDLE port) {
  OVERLAPPED_ENTRY entries[64];
  for (;;) {
    ULONG n = 0;
    if (!::GetQueuedCompletionStatusEx(port, entries, 64, &n, INFINITE, FALSE)) continue;
    for (ULONG i = 0; i < n; ++i) {
      auto* f = reinterpret_cast<ForwardedOverlapped*>(entries[i].lpOverlapped);
      if (f == nullptr) continue;
      // The request (and so `destination`) outlives this packet: a loop drains every
      // request it issued, forwarded ones included, before it closes its port.
      ::PostQueuedCompletionStatus(f->destination, entries[i].dwNumberOfBytesTransferred,
                                   kForwardedKey, &f->ov);
    }
  }
}

}  // namespace

HANDLE accept_port() {
  static const HANDLE port = [] {
    HANDLE p = ::CreateIoCompletionPort(INVALID_HANDLE_VALUE, nullptr, 0, 1);
    // Detached on purpose: the thread blocks in the kernel until the process exits, and
    // Windows ends it then; nothing needs to join it.
    if (p != nullptr) std::thread(forward_forever, p).detach();
    return p;
  }();
  return port;
}

bool associate_listener(SOCKET listener, DWORD& error) {
  HANDLE port = accept_port();
  if (port == nullptr) {
    error = ::GetLastError();
    return false;
  }
  if (::CreateIoCompletionPort(reinterpret_cast<HANDLE>(listener), port, 1, 0) != nullptr)
    return true;
  error = ::GetLastError();
  // ERROR_INVALID_PARAMETER: already associated, which for a listener means with this port
  // (loops never associate listeners with their own).
  return error == ERROR_INVALID_PARAMETER;
}

}  // namespace pp::platform::win32
