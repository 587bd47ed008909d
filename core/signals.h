// core/signals.h -- process-wide signal set-up for servers built on the engine.
#pragma once

namespace pp {

/// Ignores SIGPIPE: sendfile(2) has no MSG_NOSIGNAL, and a peer that vanishes
/// mid-transfer must cost that connection an EPIPE, not the process its life.
/// Call once at start-up, before any worker starts.
void ignore_sigpipe();

/// Blocks SIGINT, SIGTERM and SIGHUP in the calling thread; threads started afterwards
/// inherit the mask, so only `wait_for_shutdown_signal` sees them. Call in main()
/// before starting workers.
void block_shutdown_signals();

/// Waits (in the thread that called `block_shutdown_signals`) for SIGINT or SIGTERM
/// and returns its number; SIGHUP (POSIX) comes back too: see `is_reopen_signal`.
int wait_for_shutdown_signal();

/// True for SIGHUP, which asks a server to reopen its log files (logrotate) rather than
/// stop; it is blocked with the shutdown signals. Never true on Windows (no SIGHUP).
bool is_reopen_signal(int sig);

/// Sends SIGTERM to this process: the same path as an operator's `kill`, for tests
/// and for a programmatic stop.
void raise_shutdown_signal();

}  // namespace pp
