// interpreter/runtime_options.h -- the runtime's own options (workers, backend, NUMA policy).
//
// They come from build-time defaults (meson_options.txt -> PP_DEFAULT_*), then the
// environment (PYPARALLEL_*), then `pyparallel` flags given before the script name, each
// overriding the one before. The host parses them before Python starts and stores them with
// `set_runtime_options`; the `parallel` module reads them with `runtime_options()`. When the
// module is imported as an extension into a plain python3.13t (no host), it parses the
// environment alone on first use.
//
// Nothing here includes Python.h, so the host's argument handling is testable without an
// interpreter and the engine can share the struct.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "core/limits.h"
#include "core/loop.h"

namespace pp {

/// Where an option's value came from (shown by `--topology` and `parallel._options()`).
enum class OptionOrigin { built_in, environment, command_line };

/// "default", "environment", "command line".
std::string_view to_string(OptionOrigin origin);

/// The runtime's options. Add new ones here, in `parse_runtime_args`, in the environment
/// table of runtime_options.cpp, in `--help`, and in `parallel._options()`.
struct RuntimeOptions {
  /// Worker threads. 0 from --workers or PYPARALLEL_WORKERS runs every callback on the main
  /// thread; the built-in 0 (workers_origin built_in) means one per CPU this process may
  /// run on (parallel.run resolves it).
  unsigned workers = 0;
  /// The completion backend to open (`automatic` probes).
  BackendKind backend = BackendKind::automatic;
  /// Placement policy text as validated by `valid_numa_policy`; numa/ interprets it.
  std::string numa_policy = "compact";
  /// Timeouts and bounds of every connection (`--header-timeout`, PYPARALLEL_MAX_BODY...,
  /// see core/limit_options.h); `parallel.run()` keywords override them per run.
  ConnectionLimits limits;

  /// `--metrics-port [HOST:]PORT` (PYPARALLEL_METRICS_PORT): Prometheus metrics at /metrics
  /// on that address while run() serves; empty: none. `parallel.run(metrics_port=...)`
  /// overrides it per run.
  std::string metrics;

  /// `--share-main-data on|off` (PYPARALLEL_SHARE_MAIN_DATA): make every object alive when
  /// run() starts immortal, so workers read it without touching reference counts
  /// (interpreter/parallel/share.h). `parallel.run(share_main_data=...)` overrides it per run.
  bool share_main_data = true;

  OptionOrigin workers_origin = OptionOrigin::built_in;
  OptionOrigin backend_origin = OptionOrigin::built_in;
  OptionOrigin numa_policy_origin = OptionOrigin::built_in;

  /// `--topology`: print the machine and the placement plan, then exit.
  bool show_topology = false;
  /// `--help`/`-h`: print the runtime's options and Python's, then exit.
  bool show_help = false;
  /// True when the values were set by the `pyparallel` host (false inside a plain python).
  bool from_host = false;
};

/// The options with this build's defaults (meson options workers, io_backend, numa_policy).
RuntimeOptions default_runtime_options();

/// The largest `--workers` value accepted; a typo such as 1000000 is an error, not a crash.
inline constexpr unsigned max_workers = 4096;

/// Parses a worker count: a decimal integer in [0, max_workers].
bool parse_workers(std::string_view text, unsigned& out, std::string& error);
/// Parses a switch: on/off, yes/no, true/false or 1/0.
bool parse_switch(std::string_view text, bool& out, std::string& error);
/// Parses a backend name this OS supports ("auto" plus this platform's backends).
bool parse_backend(std::string_view text, BackendKind& out, std::string& error);
/// Checks a NUMA placement policy: compact, scatter, none, node:K, or a CPU list such as
/// "0-3,8" (ascending ranges of OS processor indexes).
bool valid_numa_policy(std::string_view text, std::string& error);
/// The backend names `parse_backend` accepts on this OS, for messages and `--help`.
std::string_view backend_choices();

/// Reads PYPARALLEL_WORKERS, PYPARALLEL_BACKEND and PYPARALLEL_NUMA_POLICY (empty means
/// unset) into `options`. `getenv` is injectable for tests. False with `error` naming the
/// variable when a value is malformed.
bool apply_environment(RuntimeOptions& options, std::string& error,
                       const char* (*getenv_fn)(const char*) = nullptr);

/// Splits the host's command line. The runtime's flags (`--workers N`, `--workers=N`,
/// `--backend B`, `--numa-policy P`, `--topology`, `--help`) are taken from anywhere before
/// the script name, `-c` or `-m`; everything else, including all of Python's own flags, goes
/// to `python_argv` unchanged (argv[0] first). False with `error` for an unknown long option
/// or a malformed value; the host then exits 2.
bool parse_runtime_args(int argc, const char* const* argv, RuntimeOptions& options,
                        std::vector<std::string>& python_argv, std::string& error);

/// The runtime's part of `pyparallel --help`.
std::string runtime_help(std::string_view program);

/// The number of CPUs this process may run on (its affinity mask), at least 1.
unsigned allowed_cpu_count() noexcept;

/// The process-wide options. Set once by the host before Python starts; the module reads
/// them. Without a host, the first call of `runtime_options` parses the environment and
/// keeps the defaults for malformed values (the error is then in `runtime_options_error`).
void set_runtime_options(const RuntimeOptions& options);
/// The process-wide options (see `set_runtime_options`).
const RuntimeOptions& runtime_options();
/// Empty, or why the environment's values could not be used (extension mode only).
const std::string& runtime_options_error();

}  // namespace pp
