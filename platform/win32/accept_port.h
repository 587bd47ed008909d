// platform/win32/accept_port.h -- the one completion port every listening socket of the
// process is associated with, and the thread that forwards its packets to the loops.
//
// Why it exists: Windows has no SO_REUSEPORT, so the workers of a server share one
// listening socket (platform/win32/net.cpp; the choice is argued in docs/decisions.md).
// A handle can be associated with only one completion port, and AcceptEx completes on the
// port of the *listening* socket, whichever loop posted it. So listeners belong to none
// of the loops: they live on this port, and its thread re-posts each AcceptEx completion
// (PostQueuedCompletionStatus, same OVERLAPPED and byte count) to the port of the loop
// that posted it. Each worker still posts its own AcceptEx, so the kernel hands each new
// connection to whichever worker has an accept waiting -- the balancing SO_REUSEPORT gives
// on Linux -- at the cost of one extra completion-port hop per accepted connection (not
// per request).
#pragma once

#include "platform/win32/winsock.h"

namespace pp::platform::win32 {

/// The completion key that marks a packet forwarded from the accept port.
inline constexpr ULONG_PTR kForwardedKey = 2;

/// What the forwarder needs of an overlapped accept: place the OVERLAPPED first in the
/// request and set `destination` to the posting loop's port before issuing AcceptEx.
struct ForwardedOverlapped {
  OVERLAPPED ov;
  HANDLE destination;
};

/// The process's accept port, created (with its forwarding thread) on first use. Null
/// when it could not be created (then GetLastError says why).
HANDLE accept_port();

/// Associates listening socket `listener` with the accept port. True when it is (now, or
/// already was); false with the Windows error in `error` otherwise.
bool associate_listener(SOCKET listener, DWORD& error);

}  // namespace pp::platform::win32
