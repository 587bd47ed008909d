// interpreter/parallel/runtime_options.h -- the runtime's options: the option table's values
// (core/options.h) as the pyparallel host and the parallel module hold them.
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

#include "core/options.h"

namespace pp {

/// The runtime's options: the table's values (core/options.h) and what only the host's
/// command line asks for. New options go in the table, not here.
struct RuntimeOptions : ServerOptions {
  /// `--topology`: print the machine and the placement plan, then exit.
  bool show_topology = false;
  /// `--help`/`-h`: print the runtime's options and Python's, then exit.
  bool show_help = false;
  /// True when the values were set by the `pyparallel` host (false inside a plain python).
  bool from_host = false;
};

/// The host's and run()'s view of the option table: the rows they read.
inline constexpr OptionProgram runtime_program{user_host, {}};

/// The options with this build's defaults (meson options workers, io_backend, numa_policy).
RuntimeOptions default_runtime_options();

/// Splits the host's command line. The runtime's flags (the table's, `--topology` and
/// `--help`) are taken from anywhere before the script name, `-c` or `-m`; everything
/// else, including all of Python's own flags, goes to `python_argv` unchanged (argv[0]
/// first). False with `error` for an unknown long option or a malformed value; the host
/// then exits 2. Call after `apply_option_environment`: a flag overrides its variable.
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
