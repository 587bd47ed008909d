// tests/win32/shim/sys/socket.h -- Windows builds only: <sys/socket.h> in a test file means
// Winsock here (see tests/win32/shim/tests/engine/loopback.h).
#pragma once
#include "platform/win32/winsock.h"
