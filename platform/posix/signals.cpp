// platform/posix/signals.cpp -- POSIX signal handling behind core/signals.h.
#include "core/signals.h"

#include <pthread.h>
#include <signal.h>
#include <unistd.h>

namespace pp {

void ignore_sigpipe() { ::signal(SIGPIPE, SIG_IGN); }

namespace {
sigset_t shutdown_set() {
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGINT);
  sigaddset(&set, SIGTERM);
  sigaddset(&set, SIGHUP);  // reopen the access log (logrotate), not a stop
  return set;
}
}  // namespace

bool is_reopen_signal(int sig) { return sig == SIGHUP; }

void block_shutdown_signals() {
  auto set = shutdown_set();
  pthread_sigmask(SIG_BLOCK, &set, nullptr);
}

int wait_for_shutdown_signal() {
  auto set = shutdown_set();
  int sig = 0;
  while (sigwait(&set, &sig) != 0) {
  }
  return sig;
}

void raise_shutdown_signal() { ::kill(::getpid(), SIGTERM); }

}  // namespace pp
