// numa/options.h -- where the policy and worker count come from: the command line
// beats the environment, which beats meson's build-time default.
#pragma once

#include <optional>
#include <string>
#include <string_view>

namespace pp::numa {

/// meson's `numa_policy` option (PP_DEFAULT_NUMA_POLICY), or "compact" in builds
/// that do not define it.
#ifdef PP_DEFAULT_NUMA_POLICY
inline constexpr std::string_view build_default_policy = PP_DEFAULT_NUMA_POLICY;
#else
inline constexpr std::string_view build_default_policy = "compact";
#endif

/// meson's `workers` option (PP_DEFAULT_WORKERS); 0 means one per allowed PU.
#ifdef PP_DEFAULT_WORKERS
inline constexpr int build_default_workers = PP_DEFAULT_WORKERS;
#else
inline constexpr int build_default_workers = 0;
#endif

/// The environment variables read at run time.
inline constexpr const char* policy_env = "PYPARALLEL_NUMA_POLICY";
inline constexpr const char* workers_env = "PYPARALLEL_WORKERS";

/// A resolved setting and where it came from, so errors can say which to fix.
template <typename T>
struct Setting {
  T value{};
  std::string origin;  // "--numa-policy", "PYPARALLEL_NUMA_POLICY", "build default", ...
};

/// Picks the policy string: `cli` when given, else `env` (the value of
/// PYPARALLEL_NUMA_POLICY, or null), else `built_in`. An empty value counts as
/// unset, so `PYPARALLEL_NUMA_POLICY= cmd` falls through. `cli_name` names the
/// flag in `origin`. Pure: callers pass std::getenv(policy_env).
Setting<std::string> resolve_policy(std::optional<std::string_view> cli, const char* env,
                                    std::string_view built_in = build_default_policy,
                                    std::string_view cli_name = "--numa-policy");

/// The same precedence for the worker count (PYPARALLEL_WORKERS). A value that is
/// not a whole number >= 0 is an error naming where it came from, rather than
/// silently falling through to the next source.
std::optional<Setting<int>> resolve_workers(std::optional<std::string_view> cli, const char* env,
                                            std::string& error,
                                            int built_in = build_default_workers,
                                            std::string_view cli_name = "--workers");

}  // namespace pp::numa
