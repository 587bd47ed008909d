// core/options.cpp -- the option table and the one parser per type (see options.h).
#include "core/options.h"

#include <cerrno>
#include <charconv>
#include <cmath>
#include <cstdlib>

#include <fmt/format.h>

#include "core/metrics.h"

#ifndef PP_DEFAULT_BACKEND
#define PP_DEFAULT_BACKEND "auto"
#endif
#ifndef PP_DEFAULT_WORKERS
#define PP_DEFAULT_WORKERS 0
#endif
#ifndef PP_DEFAULT_NUMA_POLICY
#define PP_DEFAULT_NUMA_POLICY "compact"
#endif

namespace pp {
namespace {

using Type = OptionType;
using Group = OptionGroup;
constexpr std::uint8_t kEveryone = user_host | user_httpd | user_run;

// Limits above these are typos, not wishes: a week, a terabyte, a billion connections.
constexpr double kMaxSeconds = 7 * 24 * 3600;
constexpr std::uint64_t kMaxBytes = std::uint64_t{1} << 40;
constexpr std::uint64_t kMaxConnections = 1'000'000'000;

// The table. Its order is OptionId's and `--help`'s.
constexpr OptionSpec kTable[] = {
    {OptionId::workers, "workers", "--workers", "PYPARALLEL_WORKERS", Type::count, Group::runtime,
     kEveryone, max_workers, "callbacks on the main thread", "N",
     "worker threads, one per CPU by default; 0 runs every callback on the main thread, for "
     "pdb and tests",
     "one per CPU"},
    {OptionId::backend, "backend", "--backend", "PYPARALLEL_BACKEND", Type::backend, Group::runtime,
     kEveryone, 0, "", "B", "completion backend; auto takes the best one that opens on this host",
     ""},
    {OptionId::numa_policy, "numa_policy", "--numa-policy", "PYPARALLEL_NUMA_POLICY",
     Type::numa_policy, Group::runtime, kEveryone, 0, "", "P",
     "worker placement: compact, scatter, none, node:K or a CPU list such as 0-3,8", ""},
    {OptionId::metrics_port, "metrics_port", "--metrics-port", "PYPARALLEL_METRICS_PORT",
     Type::address, Group::runtime, kEveryone, 0, "", "P",
     "Prometheus metrics at http://127.0.0.1:P/metrics (or HOST:P) while serving", "none"},
    {OptionId::share_main_data, "share_main_data", "--share-main-data",
     "PYPARALLEL_SHARE_MAIN_DATA", Type::on_off, Group::runtime, user_host | user_run, 0, "",
     "on|off",
     "on: what exists when run() starts becomes immortal, so workers read it without "
     "reference counting; it is never freed",
     ""},
    {OptionId::log_level, "log_level", "--log-level", "PYPARALLEL_LOG_LEVEL", Type::log_level,
     Group::runtime, kEveryone, 0, "", "L",
     "the least severe of the server's own messages written to stderr: trace, debug, info "
     "(start-up lines), warning, error (failed callbacks) or critical",
     ""},
    {OptionId::access_log, "access_log", "--access-log", "PYPARALLEL_ACCESS_LOG", Type::on_off,
     Group::runtime, kEveryone, 0, "", "on|off",
     "one line per HTTP response (client, request line, status, bytes, time), written in "
     "batches; --no-access-log turns it off",
     ""},
    {OptionId::access_log_file, "access_log_file", "--access-log-file",
     "PYPARALLEL_ACCESS_LOG_FILE", Type::path, Group::runtime, kEveryone, 0, "", "PATH",
     "append the access log to this file instead of stderr; reopened on SIGHUP (logrotate)",
     "stderr"},
    {OptionId::header_timeout, "header_timeout", "--header-timeout", "PYPARALLEL_HEADER_TIMEOUT",
     Type::seconds, Group::limit, kEveryone, 0, "off", "S",
     "seconds for a request head to arrive complete (408 after)", ""},
    {OptionId::keepalive_timeout, "keepalive_timeout", "--keepalive-timeout",
     "PYPARALLEL_KEEPALIVE_TIMEOUT", Type::seconds, Group::limit, kEveryone, 0, "off", "S",
     "seconds an idle keep-alive connection stays open", ""},
    {OptionId::body_timeout, "body_timeout", "--body-timeout", "PYPARALLEL_BODY_TIMEOUT",
     Type::seconds, Group::limit, kEveryone, 0, "off", "S",
     "longest wait in seconds between two reads of a request body (408 after)", ""},
    {OptionId::send_timeout, "send_timeout", "--send-timeout", "PYPARALLEL_SEND_TIMEOUT",
     Type::seconds, Group::limit, kEveryone, 0, "off", "S",
     "seconds a response may make no progress (a client that stops reading)", ""},
    {OptionId::drain_timeout, "drain_timeout", "--drain-timeout", "PYPARALLEL_DRAIN_TIMEOUT",
     Type::seconds, Group::limit, kEveryone, 0, "off", "S",
     "seconds a graceful stop (SIGTERM) waits for requests under way", ""},
    {OptionId::max_body, "max_body", "--max-body", "PYPARALLEL_MAX_BODY", Type::bytes, Group::limit,
     kEveryone, 0, "", "B", "largest request body, bytes (k/m/g suffixes; 413 above)", ""},
    {OptionId::max_header_bytes, "max_header_bytes", "--max-header-bytes",
     "PYPARALLEL_MAX_HEADER_BYTES", Type::bytes, Group::limit, kEveryone, 0, "", "B",
     "largest request header section, bytes (431 above)", ""},
    {OptionId::max_connections, "max_connections", "--max-connections",
     "PYPARALLEL_MAX_CONNECTIONS", Type::count, Group::limit, kEveryone, kMaxConnections,
     "no limit", "N", "connections per worker; more are closed at once (0: no limit)", ""},
};
static_assert(std::size(kTable) == option_count);

constexpr bool rows_in_id_order() {
  for (std::size_t i = 0; i < std::size(kTable); ++i)
    if (static_cast<std::size_t>(kTable[i].id) != i) return false;
  return true;
}
static_assert(rows_in_id_order(), "kTable's rows must follow OptionId's order");

std::chrono::milliseconds* seconds_field(OptionId id, ConnectionLimits& l) {
  switch (id) {
    case OptionId::header_timeout:
      return &l.header_timeout;
    case OptionId::keepalive_timeout:
      return &l.keepalive_timeout;
    case OptionId::body_timeout:
      return &l.body_timeout;
    case OptionId::send_timeout:
      return &l.send_timeout;
    case OptionId::drain_timeout:
      return &l.drain_timeout;
    default:
      return nullptr;
  }
}

std::uint64_t* bytes_field(OptionId id, ConnectionLimits& l) {
  switch (id) {
    case OptionId::max_body:
      return &l.max_body;
    case OptionId::max_header_bytes:
      return &l.max_header_bytes;
    default:
      return nullptr;
  }
}

bool parse_u64(std::string_view text, std::uint64_t& out) {
  auto [p, ec] = std::from_chars(text.data(), text.data() + text.size(), out);
  return ec == std::errc{} && p == text.data() + text.size() && !text.empty();
}

// A placement policy's syntax: compact, scatter, none, node:K, or a CPU list of ascending
// N or N-M ranges. numa/ decides later whether this machine can meet it.
bool valid_numa_policy(std::string_view text) {
  if (text == "compact" || text == "scatter" || text == "none") return true;
  std::uint64_t lo = 0, hi = 0;
  if (text.starts_with("node:")) return parse_u64(text.substr(5), lo);
  if (text.empty()) return false;
  for (std::string_view rest = text;;) {
    auto comma = rest.find(',');
    std::string_view item = rest.substr(0, comma);
    auto dash = item.find('-');
    if (dash == std::string_view::npos) {
      if (!parse_u64(item, lo)) return false;
    } else if (!parse_u64(item.substr(0, dash), lo) || !parse_u64(item.substr(dash + 1), hi) ||
               lo > hi) {
      return false;
    }
    if (comma == std::string_view::npos) return true;
    rest = rest.substr(comma + 1);
  }
}

bool parse_switch(std::string_view text, bool& out) {
  for (std::string_view on : {"on", "yes", "true", "1"}) {
    if (text == on) {
      out = true;
      return true;
    }
  }
  for (std::string_view off : {"off", "no", "false", "0"}) {
    if (text == off) {
      out = false;
      return true;
    }
  }
  return false;
}

// `spec`'s help and meaning of 0 as `program` words them.
const OptionNote* note_of(const OptionSpec& spec, const OptionProgram* program) {
  if (program)
    for (const OptionNote& n : program->notes)
      if (n.id == spec.id) return &n;
  return nullptr;
}

std::string_view zero_of(const OptionSpec& spec, const OptionProgram* program) {
  const OptionNote* n = note_of(spec, program);
  return n && !n->zero.empty() ? n->zero : spec.zero;
}

// " (what 0 means)" or nothing.
std::string zero_text(std::string_view zero) {
  return zero.empty() ? std::string() : fmt::format(" ({})", zero);
}

// Appends `text` to `out`, wrapped at `width` columns, continuation lines indented by
// `indent` columns; `column` is where `out`'s last line stands.
void append_wrapped(std::string& out, std::string_view text, std::size_t column, std::size_t indent,
                    std::size_t width = 79) {
  bool first = true;
  while (!text.empty()) {
    auto space = text.find(' ');
    std::string_view word = text.substr(0, space);
    text = space == std::string_view::npos ? std::string_view() : text.substr(space + 1);
    if (!first && column + 1 + word.size() > width) {
      out += '\n';
      out.append(indent, ' ');
      column = indent;
    } else if (!first) {
      out += ' ';
      ++column;
    }
    out += word;
    column += word.size();
    first = false;
  }
}

}  // namespace

std::string_view to_string(OptionType type) {
  switch (type) {
    case Type::count:
      return "count";
    case Type::backend:
      return "backend";
    case Type::numa_policy:
      return "numa_policy";
    case Type::address:
      return "address";
    case Type::on_off:
      return "on_off";
    case Type::seconds:
      return "seconds";
    case Type::bytes:
      return "bytes";
    case Type::log_level:
      return "log_level";
    case Type::path:
      return "path";
  }
  return "?";
}

std::string_view to_string(OptionOrigin origin) {
  switch (origin) {
    case OptionOrigin::built_in:
      return "default";
    case OptionOrigin::environment:
      return "environment";
    case OptionOrigin::command_line:
      return "command line";
    case OptionOrigin::keyword:
      return "keyword";
  }
  return "?";
}

std::span<const OptionSpec> option_table() {
  return kTable;
}

const OptionSpec& option_spec(OptionId id) {
  return kTable[static_cast<std::size_t>(id)];
}

const OptionSpec* find_option_keyword(std::string_view keyword) {
  for (const OptionSpec& o : kTable)
    if (o.keyword == keyword && (o.users & user_run)) return &o;
  return nullptr;
}

const OptionSpec* find_option_flag(std::string_view flag, OptionUser user) {
  for (const OptionSpec& o : kTable)
    if (o.flag == flag && (o.users & user)) return &o;
  return nullptr;
}

std::string backend_choices() {
  std::string out(to_string(BackendKind::automatic));
  for (BackendKind kind : built_backends()) out += fmt::format(", {}", to_string(kind));
  return out;
}

bool set_option(const OptionSpec& spec, std::string_view text, OptionOrigin origin,
                ServerOptions& options, std::string& error, const OptionProgram* program) {
  ConnectionLimits& limits = options.limits;
  switch (spec.type) {
    case Type::count: {
      std::uint64_t v = 0;
      if (!parse_u64(text, v) || v > spec.max) {
        error = fmt::format("expects a whole number from 0{} to {}, got '{}'",
                            zero_text(zero_of(spec, program)), spec.max, text);
        return false;
      }
      if (spec.id == OptionId::workers)
        options.workers = static_cast<unsigned>(v);
      else
        limits.max_connections = static_cast<std::uint32_t>(v);
      break;
    }
    case Type::backend: {
      // Only this OS's backends: "--backend iocp" on Linux is a mistake worth naming now
      // rather than when the engine starts.
      BackendKind kind{};
      const bool known = parse_backend_kind(text, kind);
      bool ok = known && kind == BackendKind::automatic;
      for (BackendKind built : built_backends()) ok = ok || (known && built == kind);
      if (!ok) {
        error = fmt::format("expects one of {}, got '{}'", backend_choices(), text);
        // Another system's backend: the platform says whose it is ("does not exist on
        // Windows ..."), without opening anything.
        if (known) error += fmt::format("; {}", open_loop(kind).error);
        return false;
      }
      options.backend = kind;
      break;
    }
    case Type::numa_policy:
      if (!valid_numa_policy(text)) {
        error = fmt::format(
            "expects compact, scatter, none, node:K or a CPU list such as 0-3,8, got '{}'", text);
        return false;
      }
      options.numa_policy = std::string(text);
      break;
    case Type::address: {
      ListenAddress address;
      if (!parse_metrics_address(text, address.host, address.port, error)) return false;
      options.metrics = std::move(address);
      break;
    }
    case Type::on_off:
      if (!parse_switch(text, spec.id == OptionId::access_log ? options.access_log
                                                              : options.share_main_data)) {
        error = fmt::format("expects on or off, got '{}'", text);
        return false;
      }
      break;
    case Type::path:
      // Syntax only (opening it is the real check): not a folder's name. Empty is stderr.
      if (!text.empty() && (text.back() == '/' || text.back() == '\\')) {
        error = fmt::format("expects a file path, got '{}'", text);
        return false;
      }
      options.access_log_file = std::string(text);
      break;
    case Type::seconds: {
      std::string s(text);
      char* end = nullptr;
      errno = 0;
      double v = s.empty() ? -1 : std::strtod(s.c_str(), &end);
      if (s.empty() || *end != '\0' || errno || !std::isfinite(v) || v < 0 || v > kMaxSeconds) {
        error = fmt::format("expects seconds from 0{} to {:.0f}, got '{}'",
                            zero_text(zero_of(spec, program)), kMaxSeconds, text);
        return false;
      }
      *seconds_field(spec.id, limits) =
          std::chrono::milliseconds(static_cast<std::int64_t>(std::llround(v * 1000)));
      break;
    }
    case Type::bytes: {
      std::uint64_t scale = 1;
      std::string_view digits = text;
      if (!digits.empty()) {
        switch (digits.back()) {
          case 'k':
          case 'K':
            scale = 1u << 10;
            break;
          case 'm':
          case 'M':
            scale = 1u << 20;
            break;
          case 'g':
          case 'G':
            scale = 1u << 30;
            break;
          default:
            break;
        }
        if (scale != 1) digits.remove_suffix(1);
      }
      std::uint64_t v = 0;
      if (!parse_u64(digits, v) || v == 0 || v > kMaxBytes / scale) {
        error = fmt::format("expects a byte count from 1 to 1t (k/m/g suffixes allowed), got '{}'",
                            text);
        return false;
      }
      *bytes_field(spec.id, limits) = v * scale;
      break;
    }
    case Type::log_level: {
      auto level = parse_log_level(text);
      if (!level) {
        error =
            fmt::format("expects trace, debug, info, warning, error or critical, got '{}'", text);
        return false;
      }
      options.log_level = *level;
      break;
    }
  }
  options.origins[static_cast<std::size_t>(spec.id)] = origin;
  return true;
}

std::string option_text(const OptionSpec& spec, const ServerOptions& options) {
  ConnectionLimits limits = options.limits;
  switch (spec.type) {
    case Type::count:
      return fmt::format("{}",
                         spec.id == OptionId::workers ? options.workers : limits.max_connections);
    case Type::backend:
      return std::string(to_string(options.backend));
    case Type::numa_policy:
      return options.numa_policy;
    case Type::address: {
      if (!options.metrics) return {};
      const ListenAddress& a = *options.metrics;
      if (a.host.find(':') != std::string::npos) return fmt::format("[{}]:{}", a.host, a.port);
      return fmt::format("{}:{}", a.host, a.port);
    }
    case Type::on_off:
      return (spec.id == OptionId::access_log ? options.access_log : options.share_main_data)
                 ? "on"
                 : "off";
    case Type::path:
      return options.access_log_file;
    case Type::seconds:
      return fmt::format("{}", static_cast<double>(seconds_field(spec.id, limits)->count()) / 1000);
    case Type::bytes:
      return fmt::format("{}", *bytes_field(spec.id, limits));
    case Type::log_level:
      return std::string(to_string(options.log_level));
  }
  return {};
}

ServerOptions default_server_options() {
  ServerOptions options;
  options.workers = PP_DEFAULT_WORKERS;
  // meson validates io_backend (a combo); numa_policy is a free string, checked here.
  std::string ignored;
  if (!set_option(option_spec(OptionId::backend), PP_DEFAULT_BACKEND, OptionOrigin::built_in,
                  options, ignored))
    options.backend = BackendKind::automatic;
  if (valid_numa_policy(PP_DEFAULT_NUMA_POLICY)) options.numa_policy = PP_DEFAULT_NUMA_POLICY;
  return options;
}

bool apply_option_environment(ServerOptions& options, const OptionProgram& program,
                              std::string& error, const char* (*getenv_fn)(const char*)) {
  if (!getenv_fn) getenv_fn = [](const char* n) -> const char* { return std::getenv(n); };
  for (const OptionSpec& o : kTable) {
    if (!(o.users & program.user)) continue;
    const char* v = getenv_fn(std::string(o.environment).c_str());
    if (!v || !*v) continue;  // empty means unset: `PYPARALLEL_WORKERS= cmd`
    std::string why;
    if (!set_option(o, v, OptionOrigin::environment, options, why, &program)) {
      error = fmt::format("{} {}", o.environment, why);
      return false;
    }
  }
  return true;
}

bool take_flag_value(int argc, const char* const* argv, int& i, std::string_view& value,
                     std::string& error) {
  std::string_view arg = argv[i];
  if (auto eq = arg.find('='); eq != std::string_view::npos) {
    value = arg.substr(eq + 1);
    return true;
  }
  if (i + 1 >= argc) {
    error = fmt::format("option {} needs a value", arg);
    return false;
  }
  value = argv[++i];
  return true;
}

FlagResult take_option_flag(int argc, const char* const* argv, int& i, const OptionProgram& program,
                            ServerOptions& options, std::string& error) {
  std::string_view arg = argv[i];
  if (!arg.starts_with("--")) return FlagResult::not_ours;
  std::string_view name = arg.substr(0, arg.find('='));
  const OptionSpec* spec = find_option_flag(name, program.user);
  std::string_view value;
  std::string why;
  if (!spec && name.starts_with("--no-") && name == arg) {
    // An on/off option's `--no-NAME` (uvicorn's --no-access-log): off.
    spec = find_option_flag(fmt::format("--{}", name.substr(5)), program.user);
    if (!spec || spec->type != Type::on_off) return FlagResult::not_ours;
    value = "off";
  } else if (!spec) {
    return FlagResult::not_ours;
  } else if (spec->type == Type::on_off && name == arg &&
             (i + 1 >= argc || std::string_view(argv[i + 1]).starts_with("-"))) {
    // A bare `--NAME` (uvicorn's --access-log), last or before another flag: on. Before
    // anything else the next argument is its value, so `--share-main-data maybe` is an
    // error rather than "on" and a script named "maybe".
    value = "on";
  } else if (!take_flag_value(argc, argv, i, value, error)) {
    return FlagResult::error;
  }
  if (!set_option(*spec, value, OptionOrigin::command_line, options, why, &program)) {
    error = fmt::format("{} {}", spec->flag, why);
    return FlagResult::error;
  }
  return FlagResult::taken;
}

std::string option_help(const OptionProgram& program, OptionGroup group) {
  constexpr std::size_t kHelpColumn = 25;
  const ServerOptions defaults = default_server_options();
  std::string out;
  for (const OptionSpec& o : kTable) {
    if (o.group != group || !(o.users & program.user)) continue;
    const OptionNote* note = note_of(o, &program);
    std::string help(note && !note->help.empty() ? note->help : o.help);
    if (o.type == Type::backend) help += fmt::format(" ({})", backend_choices());
    std::string left = fmt::format("  {} {}", o.flag, o.metavar);
    out += left;
    if (left.size() + 1 < kHelpColumn) {
      out.append(kHelpColumn - left.size(), ' ');
    } else {
      out += '\n';
      out.append(kHelpColumn, ' ');
    }
    append_wrapped(out, help, kHelpColumn, kHelpColumn);
    out += '\n';
    out.append(kHelpColumn, ' ');
    std::string value =
        o.default_note.empty() ? option_text(o, defaults) : std::string(o.default_note);
    append_wrapped(out, fmt::format("default {}; {}", value, o.environment), kHelpColumn,
                   kHelpColumn);
    out += '\n';
  }
  return out;
}

}  // namespace pp
