// tests/win32/shim/tests/engine/loopback.h -- Windows builds only: the POSIX test helper's
// name resolves here (tests/win32/meson.build puts tests/win32/shim first on the include
// path of the Windows test binaries), so test files written against tests/engine/loopback.h
// compile unchanged on Winsock (tests/core/test_connection.cpp).
#pragma once
#include "tests/win32/loopback_win32.h"
