// core/limit_options.h -- the ConnectionLimits as options: one table of names shared by the
// runtime (`pyparallel --header-timeout S`, PYPARALLEL_HEADER_TIMEOUT, `parallel.run(
// header_timeout=S)`) and pyparallel-httpd (`--header-timeout S`), so every way of setting a
// limit spells it the same and validates it the same.
#pragma once

#include <span>
#include <string>
#include <string_view>

#include "core/limits.h"

namespace pp {

/// One configurable limit.
struct LimitOption {
  enum class Kind { seconds, bytes, count };
  std::string_view flag;         // "--header-timeout"
  std::string_view environment;  // "PYPARALLEL_HEADER_TIMEOUT"
  std::string_view keyword;      // "header_timeout" (parallel.run)
  Kind kind;
  std::string_view help;
};

/// Every limit, in `--help` order.
std::span<const LimitOption> limit_options();

/// Sets `option`'s field of `limits` from text: seconds as a decimal ("0.5", "75"; 0
/// disables the timeout), bytes as an integer with an optional k/m/g suffix (binary),
/// counts as an integer (0: no limit). False with `error` describing the expected form.
bool set_limit(const LimitOption& option, std::string_view text, ConnectionLimits& limits,
               std::string& error);

/// The option whose flag is `flag`, or null.
const LimitOption* find_limit_flag(std::string_view flag);

/// Applies every PYPARALLEL_* limit variable that is set and non-empty. False with `error`
/// naming the variable when one is malformed. `getenv_fn` is injectable for tests.
bool apply_limit_environment(ConnectionLimits& limits, std::string& error,
                             const char* (*getenv_fn)(const char*) = nullptr);

/// `option`'s current value in `limits` as text in the form `set_limit` reads.
std::string limit_value_text(const LimitOption& option, const ConnectionLimits& limits);

/// The limits' lines for a `--help` text (flag, what it does, default, variable).
std::string limit_help();

}  // namespace pp
