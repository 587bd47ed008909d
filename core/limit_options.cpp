// core/limit_options.cpp
#include "core/limit_options.h"

#include <cerrno>
#include <charconv>
#include <cmath>
#include <cstdlib>

#include <fmt/format.h>

namespace pp {
namespace {

using Kind = LimitOption::Kind;

constexpr LimitOption kOptions[] = {
    {"--header-timeout", "PYPARALLEL_HEADER_TIMEOUT", "header_timeout", Kind::seconds,
     "seconds for a request head to arrive complete (408 after)"},
    {"--keepalive-timeout", "PYPARALLEL_KEEPALIVE_TIMEOUT", "keepalive_timeout", Kind::seconds,
     "seconds an idle keep-alive connection stays open"},
    {"--body-timeout", "PYPARALLEL_BODY_TIMEOUT", "body_timeout", Kind::seconds,
     "longest wait in seconds between two reads of a request body (408 after)"},
    {"--send-timeout", "PYPARALLEL_SEND_TIMEOUT", "send_timeout", Kind::seconds,
     "seconds a response may make no progress (a client that stops reading)"},
    {"--drain-timeout", "PYPARALLEL_DRAIN_TIMEOUT", "drain_timeout", Kind::seconds,
     "seconds a graceful stop (SIGTERM) waits for requests under way"},
    {"--max-body", "PYPARALLEL_MAX_BODY", "max_body", Kind::bytes,
     "largest request body, bytes (k/m/g suffixes; 413 above)"},
    {"--max-header-bytes", "PYPARALLEL_MAX_HEADER_BYTES", "max_header_bytes", Kind::bytes,
     "largest request header section, bytes (431 above)"},
    {"--max-connections", "PYPARALLEL_MAX_CONNECTIONS", "max_connections", Kind::count,
     "connections per worker; more are closed at once (0: no limit)"},
};

std::chrono::milliseconds* seconds_field(std::string_view key, ConnectionLimits& l) {
  if (key == "header_timeout") return &l.header_timeout;
  if (key == "keepalive_timeout") return &l.keepalive_timeout;
  if (key == "body_timeout") return &l.body_timeout;
  if (key == "send_timeout") return &l.send_timeout;
  if (key == "drain_timeout") return &l.drain_timeout;
  return nullptr;
}

std::uint64_t* bytes_field(std::string_view key, ConnectionLimits& l) {
  if (key == "max_body") return &l.max_body;
  if (key == "max_header_bytes") return &l.max_header_bytes;
  return nullptr;
}

// Limits above these are typos, not wishes: a week, a terabyte, a billion connections.
constexpr double kMaxSeconds = 7 * 24 * 3600;
constexpr std::uint64_t kMaxBytes = std::uint64_t{1} << 40;
constexpr std::uint64_t kMaxCount = 1'000'000'000;

bool parse_u64(std::string_view text, std::uint64_t& out) {
  auto [p, ec] = std::from_chars(text.data(), text.data() + text.size(), out);
  return ec == std::errc{} && p == text.data() + text.size() && !text.empty();
}

}  // namespace

std::span<const LimitOption> limit_options() { return kOptions; }

const LimitOption* find_limit_flag(std::string_view flag) {
  for (const LimitOption& o : kOptions)
    if (o.flag == flag) return &o;
  return nullptr;
}

bool set_limit(const LimitOption& option, std::string_view text, ConnectionLimits& limits,
               std::string& error) {
  switch (option.kind) {
    case Kind::seconds: {
      std::string s(text);
      char* end = nullptr;
      errno = 0;
      double v = s.empty() ? -1 : std::strtod(s.c_str(), &end);
      if (s.empty() || *end != '\0' || errno || !std::isfinite(v) || v < 0 || v > kMaxSeconds) {
        error = fmt::format("expects seconds from 0 (off) to {:.0f}, got '{}'", kMaxSeconds, text);
        return false;
      }
      *seconds_field(option.keyword, limits) =
          std::chrono::milliseconds(static_cast<std::int64_t>(std::llround(v * 1000)));
      return true;
    }
    case Kind::bytes: {
      std::uint64_t scale = 1;
      std::string_view digits = text;
      if (!digits.empty()) {
        switch (digits.back()) {
          case 'k': case 'K': scale = 1u << 10; break;
          case 'm': case 'M': scale = 1u << 20; break;
          case 'g': case 'G': scale = 1u << 30; break;
          default: break;
        }
        if (scale != 1) digits.remove_suffix(1);
      }
      std::uint64_t v = 0;
      if (!parse_u64(digits, v) || v == 0 || v > kMaxBytes / scale) {
        error = fmt::format("expects a byte count from 1 to 1t (k/m/g suffixes allowed), got '{}'",
                            text);
        return false;
      }
      *bytes_field(option.keyword, limits) = v * scale;
      return true;
    }
    case Kind::count: {
      std::uint64_t v = 0;
      if (!parse_u64(text, v) || v > kMaxCount) {
        error = fmt::format("expects a count from 0 (no limit) to {}, got '{}'", kMaxCount, text);
        return false;
      }
      limits.max_connections = static_cast<std::uint32_t>(v);
      return true;
    }
  }
  return false;
}

bool apply_limit_environment(ConnectionLimits& limits, std::string& error,
                             const char* (*getenv_fn)(const char*)) {
  if (!getenv_fn) getenv_fn = [](const char* n) -> const char* { return std::getenv(n); };
  for (const LimitOption& o : kOptions) {
    const char* v = getenv_fn(std::string(o.environment).c_str());
    if (!v || !*v) continue;
    std::string why;
    if (!set_limit(o, v, limits, why)) {
      error = fmt::format("{} {}", o.environment, why);
      return false;
    }
  }
  return true;
}

std::string limit_value_text(const LimitOption& option, const ConnectionLimits& limits) {
  ConnectionLimits copy = limits;
  switch (option.kind) {
    case Kind::seconds:
      return fmt::format("{:g}", seconds_field(option.keyword, copy)->count() / 1000.0);
    case Kind::bytes:
      return fmt::format("{}", *bytes_field(option.keyword, copy));
    case Kind::count:
      return fmt::format("{}", limits.max_connections);
  }
  return {};
}

std::string limit_help() {
  const ConnectionLimits defaults;
  std::string out;
  for (const LimitOption& o : kOptions) {
    const char* unit = o.kind == Kind::seconds ? " S" : o.kind == Kind::bytes ? " B" : " N";
    out += fmt::format("  {:<23}{}\n  {:<23}default {}, {}\n", fmt::format("{}{}", o.flag, unit),
                       o.help, "", limit_value_text(o, defaults), o.environment);
  }
  return out;
}

}  // namespace pp
