// interpreter/parallel/runtime_options.cpp -- the host's command line (the option table's flags,
// --topology, --help, Python's own flags passed through) and the process-wide options.
#include "interpreter/parallel/runtime_options.h"

#include <fmt/format.h>

#include <array>
#include <cstdlib>
#include <mutex>
#include <thread>

#if defined(__linux__)
#include <sched.h>
#endif

namespace pp {
namespace {

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

RuntimeOptions default_runtime_options() {
  RuntimeOptions options;
  static_cast<ServerOptions&>(options) = default_server_options();
  return options;
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
      switch (take_option_flag(argc, argv, i, runtime_program, options, error)) {
        case FlagResult::taken:
          continue;
        case FlagResult::error:
          return false;
        case FlagResult::not_ours:
          break;
      }
      if (name == "--topology" && !has_inline) {
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
      "Runtime options (before the script name; each also has an environment variable, and\n"
      "parallel.run() a keyword of the same name):\n"
      "{1}"
      "  --topology             print the machine and the placement plan, then exit\n"
      "  --help                 this text, then Python's own options\n"
      "Limits of every connection:\n"
      "{2}"
      "Every Python option works as with python itself.\n\n",
      program, option_help(runtime_program, OptionGroup::runtime),
      option_help(runtime_program, OptionGroup::limit));
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
    set_log_level(process_options.log_level);
  });
}

const RuntimeOptions& runtime_options() {
  std::call_once(options_once, [] {
    RuntimeOptions options = default_runtime_options();
    if (apply_option_environment(options, runtime_program, process_options_error)) {
      process_options = options;
    } else {
      process_options = default_runtime_options();
    }
    set_log_level(process_options.log_level);
  });
  return process_options;
}

const std::string& runtime_options_error() {
  runtime_options();
  return process_options_error;
}

}  // namespace pp
