// platform/win32/signals.cpp -- core/signals.h on Windows: console control events.
//
// Windows has no SIGINT/SIGTERM delivery to a server: Ctrl-C and Ctrl-Break (and closing
// the console, logging off, shutting down) arrive as console control events on a thread
// the system starts. The handler only records the event and sets a Win32 event that
// `wait_for_shutdown_signal` waits on, so the stop runs on the main thread as on POSIX.
#include <csignal>

#include "core/signals.h"
#include "platform/win32/winsock.h"

namespace pp {
namespace {

HANDLE shutdown_event() {
  static const HANDLE event = ::CreateEventW(nullptr, TRUE, FALSE, nullptr);
  return event;
}

// The signal number wait_for_shutdown_signal reports: SIGINT for Ctrl-C, SIGTERM for the
// rest, so callers log the same names on every OS.
volatile LONG g_signal = 0;

BOOL WINAPI on_console_event(DWORD type) {
  switch (type) {
    case CTRL_C_EVENT:
      ::InterlockedCompareExchange(&g_signal, SIGINT, 0);
      break;
    case CTRL_BREAK_EVENT:
    case CTRL_CLOSE_EVENT:
    case CTRL_LOGOFF_EVENT:
    case CTRL_SHUTDOWN_EVENT:
      ::InterlockedCompareExchange(&g_signal, SIGTERM, 0);
      break;
    default:
      return FALSE;
  }
  ::SetEvent(shutdown_event());
  // TRUE: handled; the process is not terminated (for CTRL_CLOSE_EVENT Windows still ends
  // it once the handler returns, so give the main thread a moment to stop the workers).
  if (type == CTRL_CLOSE_EVENT || type == CTRL_SHUTDOWN_EVENT) ::Sleep(2000);
  return TRUE;
}

}  // namespace

void ignore_sigpipe() {
  // Nothing to do: Windows has no SIGPIPE; a send to a vanished peer fails with an error.
}

void block_shutdown_signals() {
  shutdown_event();
  ::SetConsoleCtrlHandler(on_console_event, TRUE);
}

int wait_for_shutdown_signal() {
  ::WaitForSingleObject(shutdown_event(), INFINITE);
  LONG sig = g_signal;
  return sig != 0 ? static_cast<int>(sig) : SIGTERM;
}

void raise_shutdown_signal() {
  ::InterlockedCompareExchange(&g_signal, SIGTERM, 0);
  ::SetEvent(shutdown_event());
}

bool is_reopen_signal(int) { return false; }  // no SIGHUP: a restart reopens files

}  // namespace pp
