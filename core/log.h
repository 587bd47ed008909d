// core/log.h -- one-line diagnostics on stderr, prefixed so they stand out in a
// server's output, filtered by a process-wide level (`--log-level`). Logging is for
// start-up, shutdown and errors, never per request (the access log is its own thing).
#pragma once

#include <atomic>
#include <cstdint>
#include <cstdio>
#include <optional>
#include <string_view>

#include <fmt/format.h>

namespace pp {

/// How much the server says, least first: uvicorn's level names, so that `--log-level` in
/// a unit file means what it meant there. `info` is the default: start-up lines (backend,
/// workers, listeners) and everything worse.
enum class LogLevel : std::uint8_t { trace, debug, info, warning, error, critical };

/// "trace", "debug", "info", "warning", "error", "critical".
constexpr std::string_view to_string(LogLevel level) {
  constexpr std::string_view names[] = {"trace", "debug", "info", "warning", "error", "critical"};
  return names[static_cast<std::size_t>(level)];
}

/// The level named `text` (a to_string name), or none.
constexpr std::optional<LogLevel> parse_log_level(std::string_view text) {
  for (auto level : {LogLevel::trace, LogLevel::debug, LogLevel::info, LogLevel::warning,
                     LogLevel::error, LogLevel::critical})
    if (to_string(level) == text) return level;
  return std::nullopt;
}

/// The process's level. Relaxed: a level change need not be seen at once by a worker in the
/// middle of a message, and a log call costs one load.
inline std::atomic<LogLevel> process_log_level{LogLevel::info};

/// Sets the level below which messages are dropped (the host and pyparallel-httpd at
/// start-up from `--log-level`/PYPARALLEL_LOG_LEVEL, run() from its keyword).
inline void set_log_level(LogLevel level) {
  process_log_level.store(level, std::memory_order_relaxed);
}

/// True when a message of `level` is written: skip building one that is not.
inline bool log_enabled(LogLevel level) {
  return level >= process_log_level.load(std::memory_order_relaxed);
}

/// Writes "pyparallel: <message>\n" to stderr in one write, so lines from several
/// workers never interleave, and flushes it: a C runtime may buffer a redirected stderr
/// (Windows' does), and a service manager or a log file must see each line as it happens,
/// not when the process exits. Unfiltered: the level-taking calls below filter.
inline void log_line(std::string_view message) {
  auto line = fmt::format("pyparallel: {}\n", message);
  std::fwrite(line.data(), 1, line.size(), stderr);
  std::fflush(stderr);
}

/// fmt-style `log_line` at `level`: dropped below the process's level.
template <typename... Args>
void log_at(LogLevel level, fmt::format_string<Args...> format, Args&&... args) {
  if (log_enabled(level)) log_line(fmt::format(format, std::forward<Args>(args)...));
}

/// An informational line (start-up, shutdown, where the server listens).
template <typename... Args>
void log(fmt::format_string<Args...> format, Args&&... args) {
  log_at(LogLevel::info, format, std::forward<Args>(args)...);
}

/// Something degraded that the server works around (runs unpinned, falls back, refuses a
/// peer): worth an operator's look.
template <typename... Args>
void log_warning(fmt::format_string<Args...> format, Args&&... args) {
  log_at(LogLevel::warning, format, std::forward<Args>(args)...);
}

/// Something failed (a callback raised, accept fails, a client could not connect).
template <typename... Args>
void log_error(fmt::format_string<Args...> format, Args&&... args) {
  log_at(LogLevel::error, format, std::forward<Args>(args)...);
}

/// Why the program cannot go on (a bad option, a port it cannot listen on): written at every
/// level, since the user must learn why the server exited.
template <typename... Args>
void log_critical(fmt::format_string<Args...> format, Args&&... args) {
  log_at(LogLevel::critical, format, std::forward<Args>(args)...);
}

}  // namespace pp
