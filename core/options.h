// core/options.h -- every option of a server, in one table: the Python runtime's
// (`pyparallel --workers N`, PYPARALLEL_WORKERS, `parallel.run(workers=N)`, `-m
// parallel.serve --workers N`) and pyparallel-httpd's. Each option is written once, with
// its flag, environment variable, run() keyword, type and range, default and help text;
// the flags, the environment, the keywords, `parallel._options()`, `--help` and
// parallel.serve's argument parser are all read from it, and one parser per type validates
// every way in with one wording ("--workers expects ..., got 'x'").
//
// Precedence: the build's defaults (meson options -> PP_DEFAULT_*), then the environment,
// then the command line, then (for one run) run()'s keywords.
#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>

#include "core/limits.h"
#include "core/log.h"
#include "core/loop.h"

namespace pp {

/// Every option, in `--help` order. The table (options.cpp) has one row per id.
enum class OptionId : std::uint8_t {
  workers,
  backend,
  numa_policy,
  metrics_port,
  share_main_data,
  log_level,
  access_log,
  access_log_file,
  header_timeout,
  keepalive_timeout,
  body_timeout,
  send_timeout,
  drain_timeout,
  max_body,
  max_header_bytes,
  max_connections,
};
/// How many options the table has.
inline constexpr std::size_t option_count = 16;

/// What an option's value is; each type has one parser and one error wording.
enum class OptionType : std::uint8_t {
  count,        // a whole number from 0 to OptionSpec::max
  backend,      // "auto" or a backend this build has for this OS (built_backends)
  numa_policy,  // compact, scatter, none, node:K or a CPU list
  address,      // PORT or HOST:PORT (core/metrics.h's parse_metrics_address)
  on_off,       // on/off, yes/no, true/false, 1/0
  seconds,      // a decimal from 0 (off) to a week
  bytes,        // a whole number from 1, with an optional k/m/g suffix (binary)
  log_level,    // trace, debug, info, warning, error or critical (core/log.h)
  path,         // a file path, not a folder's (opening it is the real check)
};

/// "count", "backend", ... as parallel._option_table() names the types.
std::string_view to_string(OptionType type);

/// Who reads an option (a bit mask: OptionSpec::users).
enum OptionUser : std::uint8_t {
  user_host = 1,   // the pyparallel host's flags and the environment it reads
  user_httpd = 2,  // pyparallel-httpd's flags and environment
  user_run = 4,    // parallel.run() keywords (and so parallel.serve's flags)
};

/// Where an option sits in `--help`: the runtime's own, or a limit of every connection.
enum class OptionGroup : std::uint8_t { runtime, limit };

/// One option: the table's row.
struct OptionSpec {
  OptionId id;
  std::string_view keyword;      // "header_timeout": run()'s keyword, _options()'s key
  std::string_view flag;         // "--header-timeout"
  std::string_view environment;  // "PYPARALLEL_HEADER_TIMEOUT"
  OptionType type;
  OptionGroup group;
  std::uint8_t users;        // OptionUser bits
  std::uint64_t max;         // OptionType::count: the largest value accepted
  std::string_view zero;     // count, seconds: what 0 means ("no limit"); empty: nothing special
  std::string_view metavar;  // "S" in "--header-timeout S"
  std::string_view help;
  std::string_view default_note;  // shown as the default instead of the value, when set
};

/// A program's own wording for one option, where the option means something else there
/// (pyparallel-httpd has no main-thread mode, so its `--workers 0` is one per CPU).
struct OptionNote {
  OptionId id;
  std::string_view help;
  std::string_view zero;
};

/// One program's view of the table: which rows it reads (`user`) and its notes.
struct OptionProgram {
  OptionUser user;
  std::span<const OptionNote> notes = {};
};

/// Where a value came from (shown by `--topology` and `parallel._options()`).
enum class OptionOrigin : std::uint8_t { built_in, environment, command_line, keyword };

/// "default", "environment", "command line", "keyword".
std::string_view to_string(OptionOrigin origin);

/// A host and port to listen on (`--metrics-port [HOST:]PORT`).
struct ListenAddress {
  std::string host;
  std::uint16_t port = 0;
};

/// The largest `--workers` value accepted; a typo such as 1000000 is an error, not a crash.
inline constexpr unsigned max_workers = 4096;

/// The values of every option, as typed fields. Fill one with `default_server_options`,
/// then `apply_option_environment`, then `take_option_flag` per argument.
struct ServerOptions {
  /// Worker threads. The built-in 0 means one per allowed CPU; an explicit 0 runs every
  /// callback on the main thread in the runtime (one per CPU in pyparallel-httpd).
  unsigned workers = 0;
  /// The completion backend to open (`automatic` probes).
  BackendKind backend = BackendKind::automatic;
  /// Placement policy text, validated; numa/ interprets it.
  std::string numa_policy = "compact";
  /// Where /metrics listens (Prometheus); none: no metrics endpoint.
  std::optional<ListenAddress> metrics;
  /// Whether run() makes what exists when it starts immortal (interpreter/parallel/share.h).
  bool share_main_data = true;
  /// The least severe of the server's own messages that is written (core/log.h).
  LogLevel log_level = LogLevel::info;
  /// One line per HTTP response (core/http/access_log.h).
  bool access_log = true;
  /// Where the access log goes: empty for stderr.
  std::string access_log_file;
  /// Timeouts and bounds of every connection.
  ConnectionLimits limits;
  /// Where each option's value came from, by OptionId.
  std::array<OptionOrigin, option_count> origins{};

  /// Where `id`'s value came from.
  OptionOrigin origin(OptionId id) const { return origins[static_cast<std::size_t>(id)]; }
  /// True when `id` was set by someone (environment, flag, keyword), not the build.
  bool given(OptionId id) const { return origin(id) != OptionOrigin::built_in; }
};

/// The options with this build's defaults (meson options workers, io_backend, numa_policy);
/// a bad build default falls back to the safe choice rather than failing every run.
ServerOptions default_server_options();

/// Every option, in `--help` order (index = OptionId).
std::span<const OptionSpec> option_table();
/// The row of `id`.
const OptionSpec& option_spec(OptionId id);
/// The row whose run() keyword is `keyword`, or null.
const OptionSpec* find_option_keyword(std::string_view keyword);
/// The row whose flag is `flag` and that `user` reads, or null.
const OptionSpec* find_option_flag(std::string_view flag, OptionUser user);

/// "auto" and the backends this build has for this OS, for messages and `--help`.
std::string backend_choices();

/// Parses `text` as `spec`'s type and stores it in `options`, recording `origin`. False
/// with `error` saying what is expected ("expects ..., got 'text'"); callers put the flag,
/// variable or keyword in front. `program` supplies its notes, if any.
bool set_option(const OptionSpec& spec, std::string_view text, OptionOrigin origin,
                ServerOptions& options, std::string& error, const OptionProgram* program = nullptr);

/// `spec`'s value in `options` as text in the form `set_option` reads ("" for no metrics).
std::string option_text(const OptionSpec& spec, const ServerOptions& options);

/// Applies every variable of `program`'s options that is set and non-empty. False with
/// `error` naming the variable when one is malformed. `getenv_fn` is injectable for tests.
bool apply_option_environment(ServerOptions& options, const OptionProgram& program,
                              std::string& error, const char* (*getenv_fn)(const char*) = nullptr);

/// Reads the value of the long option at argv[i]: after '=' in `--name=value`, or the next
/// argument (then `i` moves past it). False with `error` when there is none. Use it for a
/// program's own flags too, so that every flag takes its value the same two ways.
bool take_flag_value(int argc, const char* const* argv, int& i, std::string_view& value,
                     std::string& error);

/// What `take_option_flag` did with an argument.
enum class FlagResult { not_ours, taken, error };

/// If argv[i] is one of `program`'s table flags (`--name value` or `--name=value`), parses
/// and stores it (moving `i` past its value). `error` names the flag on failure.
FlagResult take_option_flag(int argc, const char* const* argv, int& i, const OptionProgram& program,
                            ServerOptions& options, std::string& error);

/// `program`'s lines of `group` for a `--help` text: flag, help, default and variable.
std::string option_help(const OptionProgram& program, OptionGroup group);

}  // namespace pp
