// interpreter/runtime_options.cpp -- parsing and validating the runtime's options.
#include "interpreter/runtime_options.h"

#include <fmt/format.h>

#include "core/limit_options.h"
#include "core/metrics.h"

#include <array>
#include <charconv>
#include <cstdlib>
#include <mutex>
#include <thread>

#if defined(__linux__)
#include <sched.h>
#endif

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

// Parses a whole decimal unsigned number (no sign, no spaces, no trailing text).
bool parse_uint(std::string_view text, unsigned long& out) {
  if (text.empty()) return false;
  const char* end = text.data() + text.size();
  auto [ptr, ec] = std::from_chars(text.data(), end, out);
  return ec == std::errc{} && ptr == end;
}

// Python's own long options, passed through untouched; the bool says whether the option
// takes the next argument as its value when written without '='.
struct PythonLongOption {
  std::string_view name;
  bool takes_value;
};
constexpr std::array python_long_options{
    PythonLongOption{"--help", false},        PythonLongOption{"--version", false},
    PythonLongOption{"--help-env", false},    PythonLongOption{"--help-xoptions", false},
    PythonLongOption{"--help-all", false},    PythonLongOption{"--check-hash-based-pycs", true},
};

}  // namespace

std::string_view to_string(OptionOrigin origin) {
  switch (origin) {
    case OptionOrigin::built_in: return "default";
    case OptionOrigin::environment: return "environment";
    case OptionOrigin::command_line: return "command line";
  }
  return "?";
}

std::string_view backend_choices() {
#if defined(__linux__)
  return "auto, io_uring, libaio, epoll";
#elif defined(_WIN32)
  return "auto, iocp";
#else
  return "auto, kqueue";
#endif
}

bool parse_workers(std::string_view text, unsigned& out, std::string& error) {
  unsigned long value = 0;
  if (!parse_uint(text, value) || value > max_workers) {
    error =
        fmt::format("expects a whole number from 0 (callbacks on the main thread) to {}, got '{}'",
                    max_workers, text);
    return false;
  }
  out = static_cast<unsigned>(value);
  return true;
}

bool parse_switch(std::string_view text, bool& out, std::string& error) {
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
  error = fmt::format("expects on or off, got '{}'", text);
  return false;
}

bool parse_backend(std::string_view text, BackendKind& out, std::string& error) {
  BackendKind kind{};
  // Only this OS's backends: "--backend iocp" on Linux is a mistake worth naming now rather
  // than when the engine starts.
  bool ok = parse_backend_kind(text, kind);
  if (ok && kind != BackendKind::automatic) {
#if defined(__linux__)
    ok = kind == BackendKind::io_uring || kind == BackendKind::libaio ||
         kind == BackendKind::epoll;
#elif defined(_WIN32)
    ok = kind == BackendKind::iocp;
#else
    ok = kind == BackendKind::kqueue;
#endif
  }
  if (!ok) {
    error = fmt::format("expects one of {}, got '{}'", backend_choices(), text);
    return false;
  }
  out = kind;
  return true;
}

bool valid_numa_policy(std::string_view text, std::string& error) {
  error = fmt::format(
      "expects compact, scatter, none, node:K or a CPU list such as 0-3,8; got '{}'", text);
  if (text == "compact" || text == "scatter" || text == "none") return true;
  if (text.starts_with("node:")) {
    unsigned long node = 0;
    return parse_uint(text.substr(5), node);
  }
  // A CPU list: comma-separated N or N-M with N <= M.
  if (text.empty()) return false;
  std::string_view rest = text;
  while (true) {
    auto comma = rest.find(',');
    std::string_view item = rest.substr(0, comma);
    auto dash = item.find('-');
    unsigned long lo = 0, hi = 0;
    if (dash == std::string_view::npos) {
      if (!parse_uint(item, lo)) return false;
    } else if (!parse_uint(item.substr(0, dash), lo) || !parse_uint(item.substr(dash + 1), hi) ||
               lo > hi) {
      return false;
    }
    if (comma == std::string_view::npos) break;
    rest = rest.substr(comma + 1);
  }
  error.clear();
  return true;
}

RuntimeOptions default_runtime_options() {
  RuntimeOptions options;
  options.workers = PP_DEFAULT_WORKERS;
  // The meson options are validated by meson itself (combo) or here at start-up (string):
  // a bad build default falls back to the safe choice rather than making every run fail.
  std::string ignored;
  if (!parse_backend(PP_DEFAULT_BACKEND, options.backend, ignored)) {
    options.backend = BackendKind::automatic;
  }
  if (valid_numa_policy(PP_DEFAULT_NUMA_POLICY, ignored)) options.numa_policy = PP_DEFAULT_NUMA_POLICY;
  return options;
}

bool apply_environment(RuntimeOptions& options, std::string& error,
                       const char* (*getenv_fn)(const char*)) {
  auto get = [&](const char* name) -> std::string_view {
    const char* value = getenv_fn ? getenv_fn(name) : std::getenv(name);
    return value ? std::string_view(value) : std::string_view();
  };
  std::string why;
  if (auto v = get("PYPARALLEL_WORKERS"); !v.empty()) {
    if (!parse_workers(v, options.workers, why)) {
      error = "PYPARALLEL_WORKERS " + why;
      return false;
    }
    options.workers_origin = OptionOrigin::environment;
  }
  if (auto v = get("PYPARALLEL_BACKEND"); !v.empty()) {
    if (!parse_backend(v, options.backend, why)) {
      error = "PYPARALLEL_BACKEND " + why;
      return false;
    }
    options.backend_origin = OptionOrigin::environment;
  }
  if (auto v = get("PYPARALLEL_NUMA_POLICY"); !v.empty()) {
    if (!valid_numa_policy(v, why)) {
      error = "PYPARALLEL_NUMA_POLICY " + why;
      return false;
    }
    options.numa_policy = std::string(v);
    options.numa_policy_origin = OptionOrigin::environment;
  }
  if (auto v = get("PYPARALLEL_METRICS_PORT"); !v.empty()) {
    std::string host;
    std::uint16_t port = 0;
    if (!parse_metrics_address(v, host, port, why)) {
      error = "PYPARALLEL_METRICS_PORT " + why;
      return false;
    }
    options.metrics = std::string(v);
  }
  if (auto v = get("PYPARALLEL_SHARE_MAIN_DATA"); !v.empty()) {
    if (!parse_switch(v, options.share_main_data, why)) {
      error = "PYPARALLEL_SHARE_MAIN_DATA " + why;
      return false;
    }
  }
  for (const LimitOption& limit : limit_options()) {
    auto v = get(std::string(limit.environment).c_str());
    if (v.empty()) continue;
    if (!set_limit(limit, v, options.limits, why)) {
      error = fmt::format("{} {}", limit.environment, why);
      return false;
    }
  }
  return true;
}

bool parse_runtime_args(int argc, const char* const* argv, RuntimeOptions& options,
                        std::vector<std::string>& python_argv, std::string& error) {
  python_argv.clear();
  python_argv.emplace_back(argc > 0 ? argv[0] : "pyparallel");
  int i = 1;
  // Copies everything from argv[i] on: the script (or -c/-m payload) and its arguments.
  auto pass_rest = [&] {
    for (; i < argc; ++i) python_argv.emplace_back(argv[i]);
  };
  for (; i < argc; ++i) {
    std::string_view arg = argv[i];
    if (arg == "-" || arg == "--" || !arg.starts_with('-')) {
      pass_rest();  // the script name (or stdin, or the end of options)
      break;
    }
    if (arg.starts_with("--")) {
      auto eq = arg.find('=');
      std::string_view name = arg.substr(0, eq);
      bool has_inline = eq != std::string_view::npos;
      // The value of one of our options: after '=' or the next argument.
      auto value = [&](std::string_view& out) {
        if (has_inline) {
          out = arg.substr(eq + 1);
          return true;
        }
        if (i + 1 >= argc) {
          error = fmt::format("option {} needs a value", name);
          return false;
        }
        out = argv[++i];
        return true;
      };
      std::string_view v;
      std::string why;
      if (name == "--workers") {
        if (!value(v)) return false;
        if (!parse_workers(v, options.workers, why)) {
          error = "--workers " + why;
          return false;
        }
        options.workers_origin = OptionOrigin::command_line;
      } else if (name == "--backend") {
        if (!value(v)) return false;
        if (!parse_backend(v, options.backend, why)) {
          error = "--backend " + why;
          return false;
        }
        options.backend_origin = OptionOrigin::command_line;
      } else if (name == "--numa-policy") {
        if (!value(v)) return false;
        if (!valid_numa_policy(v, why)) {
          error = "--numa-policy " + why;
          return false;
        }
        options.numa_policy = std::string(v);
        options.numa_policy_origin = OptionOrigin::command_line;
      } else if (name == "--metrics-port") {
        if (!value(v)) return false;
        std::string host;
        std::uint16_t port = 0;
        if (!parse_metrics_address(v, host, port, why)) {
          error = "--metrics-port " + why;
          return false;
        }
        options.metrics = std::string(v);
      } else if (name == "--share-main-data") {
        if (!value(v)) return false;
        if (!parse_switch(v, options.share_main_data, why)) {
          error = "--share-main-data " + why;
          return false;
        }
      } else if (const LimitOption* limit = find_limit_flag(name)) {
        if (!value(v)) return false;
        if (!set_limit(*limit, v, options.limits, why)) {
          error = fmt::format("{} {}", name, why);
          return false;
        }
      } else if (name == "--topology" && !has_inline) {
        options.show_topology = true;
      } else if (name == "--help" && !has_inline) {
        options.show_help = true;
        python_argv.emplace_back(arg);  // Python then prints its own options after ours
      } else {
        bool known = false;
        for (const auto& opt : python_long_options) {
          if (opt.name != name) continue;
          known = true;
          python_argv.emplace_back(arg);
          if (opt.takes_value && !has_inline && i + 1 < argc) python_argv.emplace_back(argv[++i]);
        }
        if (!known) {
          error = fmt::format("unknown option '{}'", name);
          return false;
        }
      }
      continue;
    }
    // A cluster of Python's short flags, e.g. "-u", "-X dev", "-Wignore", "-Sc code".
    python_argv.emplace_back(arg);
    bool script_follows = false;
    for (std::size_t j = 1; j < arg.size(); ++j) {
      char c = arg[j];
      if (c == 'h' || c == '?') options.show_help = true;
      if (c == 'c' || c == 'm') {
        // The command or module: the rest of this cluster, or the next argument; all that
        // follows belongs to it.
        if (j + 1 == arg.size() && i + 1 < argc) python_argv.emplace_back(argv[++i]);
        script_follows = true;
        break;
      }
      if (c == 'X' || c == 'W') {
        if (j + 1 == arg.size() && i + 1 < argc) python_argv.emplace_back(argv[++i]);
        break;
      }
    }
    if (script_follows) {
      ++i;
      pass_rest();
      break;
    }
  }
  return true;
}

std::string runtime_help(std::string_view program) {
  return fmt::format(
      "usage: {0} [runtime options] [python options] [-c cmd | -m mod | file | -] [arg] ...\n"
      "\n"
      "pyparallel runs Python with the parallel runtime built in (import parallel).\n"
      "Runtime options (before the script name; each also has an environment variable):\n"
      "  --workers N        worker threads (default: one per CPU); 0 runs every callback on\n"
      "                     the main thread, for pdb and tests (PYPARALLEL_WORKERS)\n"
      "  --backend B        completion backend: {1} (PYPARALLEL_BACKEND)\n"
      "  --numa-policy P    worker placement: compact, scatter, none, node:K or a CPU list\n"
      "                     such as 0-3,8 (PYPARALLEL_NUMA_POLICY)\n"
      "  --metrics-port P   Prometheus metrics at http://127.0.0.1:P/metrics (or HOST:P)\n"
      "                     while run() serves (PYPARALLEL_METRICS_PORT)\n"
      "  --share-main-data on|off\n"
      "                     on (default): what exists when run() starts becomes immortal, so\n"
      "                     workers read it without reference counting; it is never freed\n"
      "                     (PYPARALLEL_SHARE_MAIN_DATA)\n"
      "  --topology         print the machine and the placement plan, then exit\n"
      "  --help             this text, then Python's own options\n"
      "Limits of every connection (parallel.run() takes them as keywords too):\n"
      "{2}"
      "Every Python option works as with python itself.\n\n",
      program, backend_choices(), limit_help());
}

unsigned allowed_cpu_count() noexcept {
#if defined(__linux__)
  // The affinity mask, not the machine: under taskset or a cgroup cpuset, workers beyond
  // the allowed CPUs would only time-slice.
  cpu_set_t set;
  if (sched_getaffinity(0, sizeof(set), &set) == 0) {
    int n = CPU_COUNT(&set);
    if (n > 0) return static_cast<unsigned>(n);
  }
#endif
  unsigned n = std::thread::hardware_concurrency();
  return n > 0 ? n : 1;
}

namespace {
std::once_flag options_once;
RuntimeOptions process_options;
std::string process_options_error;
}  // namespace

void set_runtime_options(const RuntimeOptions& options) {
  std::call_once(options_once, [&] {
    process_options = options;
    process_options.from_host = true;
  });
}

const RuntimeOptions& runtime_options() {
  std::call_once(options_once, [] {
    RuntimeOptions options = default_runtime_options();
    if (apply_environment(options, process_options_error)) {
      process_options = options;
    } else {
      process_options = default_runtime_options();
    }
  });
  return process_options;
}

const std::string& runtime_options_error() {
  runtime_options();
  return process_options_error;
}

}  // namespace pp
