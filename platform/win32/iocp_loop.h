// platform/win32/iocp_loop.h -- the Windows backend: an I/O completion port per loop.
//
// Windows is completion-based like io_uring, so nothing is emulated on readiness: every
// operation is one overlapped call (AcceptEx, WSARecv, WSASend, TransmitFile, ConnectEx)
// whose completion packet the loop dequeues in batches with GetQueuedCompletionStatusEx.
// How each `core/loop.h` operation maps, and why: iocp_loop.cpp's header comment.
#pragma once

#include <memory>
#include <string>

#include "core/loop.h"

namespace pp::platform {

/// An IOCP loop, one per worker. Returns null with `why` set when the host cannot run it
/// (Winsock did not start, CreateIoCompletionPort failed, or the TCP provider lacks
/// AcceptEx/ConnectEx/TransmitFile).
std::unique_ptr<Loop> open_iocp_loop(const LoopOptions& options, std::string& why);

}  // namespace pp::platform
