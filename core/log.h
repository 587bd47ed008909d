// core/log.h -- one-line diagnostics on stderr, prefixed so they stand out in a
// server's output. Logging is for start-up, shutdown and errors, never per request.
#pragma once

#include <cstdio>
#include <string_view>

#include <fmt/format.h>

namespace pp {

/// Writes "pyparallel: <message>\n" to stderr in one write, so lines from several
/// workers never interleave, and flushes it: a C runtime may buffer a redirected stderr
/// (Windows' does), and a service manager or a log file must see each line as it happens,
/// not when the process exits.
inline void log_line(std::string_view message) {
  auto line = fmt::format("pyparallel: {}\n", message);
  std::fwrite(line.data(), 1, line.size(), stderr);
  std::fflush(stderr);
}

/// fmt-style `log_line`.
template <typename... Args>
void log(fmt::format_string<Args...> format, Args&&... args) {
  log_line(fmt::format(format, std::forward<Args>(args)...));
}

}  // namespace pp
