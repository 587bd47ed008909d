// core/access_log.h -- one line per HTTP response, as uvicorn, gunicorn and nginx
// users expect: `client - "GET /x HTTP/1.1" 200 13 0.4ms` (the peer's address, the
// request line, the status, the response's bytes (head and body), the time from the read
// that completed the request to the response's end).
//
// Cheap enough to leave on: each worker appends its lines to a buffer of its own and
// writes it out in one call once it holds a batch (32 KiB) or its oldest line is a second
// old, when the worker's connections are all gone, and when the worker ends. Never one
// write per request. The destination (stderr, or a file opened for appending) is
// process-wide; a file is reopened at its path on SIGHUP, so logrotate can move it away.
#pragma once

#include <chrono>
#include <cstdint>
#include <string>
#include <string_view>

namespace pp {

/// Turns the access log on, writing to `path` (appended to, created if missing) or, with an
/// empty path, to stderr. Call from the main thread before the workers start (the C++
/// server, run()). False with `error` naming the file and the reason.
bool open_access_log(const std::string& path, std::string& error);

/// Opens the access log's file anew at its path and writes to the new one from now on
/// (SIGHUP: logrotate renamed the old one). Any thread; a no-op for stderr or when off.
/// False with `error` (the old file stays in use).
bool reopen_access_log(std::string& error);

/// Turns the access log off and closes its file. The workers' buffers must have been
/// flushed (a worker flushes its own when it ends, before this is called).
void close_access_log();

/// True while the access log is on: the request loop's one check per response.
bool access_log_enabled();

/// Appends one line to the calling thread's buffer, and writes the buffer out when it holds
/// a batch or its oldest line is a second old (`now` is the caller's clock read).
void log_access(std::string_view client, std::string_view method, std::string_view target,
                int minor_version, int status, std::uint64_t bytes,
                std::chrono::steady_clock::duration took,
                std::chrono::steady_clock::time_point now);

/// Writes out the calling thread's buffered lines, if any. With `only_if_old`, only when
/// the oldest is a second old (the worker's sweep calls it so: an idle server's last lines
/// do not wait for its next request).
void flush_access_log(bool only_if_old = false);

/// The status of the response head last written on this thread (append_status_line notes
/// it): what the request loop logs for a response its handler produced in the call.
int last_response_status();
/// Notes `status` as the last response head's (append_status_line calls it).
void note_response_status(int status);

}  // namespace pp
