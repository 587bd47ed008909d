// interpreter/parallel/host.cpp -- `pyparallel`: CPython with the parallel runtime built in.
//
// It behaves like `python` (script, -c, -m, -, the REPL, every Python flag, exit codes,
// tracebacks) because it hands Python's own argument parser the command line (PyConfig with
// parse_argv) and runs it with Py_RunMain. Before that it takes the runtime's flags (the
// option table's, core/options.h, and --topology, --help) off the front of the command
// line. sys.executable is this program; since it accepts Python's flags, subprocess and
// multiprocessing can run it as they would run python.
//
// Python finds its stdlib from where its executable is (lib/python3.13t/os.py in this
// folder's parent or above, else the prefix it was configured with), and it learns where its
// executable is from argv[0]. That is how the relocatable bundle (tools/make_dist.sh) works
// anywhere it is extracted. When argv[0] does not lead back to this program (exec -a, a
// different `pyparallel` earlier on PATH), the host tells Python the real path, from
// /proc/self/exe; otherwise Python would fall back to the configured prefix -- the build
// machine's interpreter cache -- or fail to start.
#include "interpreter/parallel/parallel_module.h"  // Python.h first

#include <fmt/format.h>

#include <cstdio>
#include <string>
#include <string_view>
#include <vector>

#if defined(__linux__)
#include <unistd.h>

#include <climits>
#include <cstdlib>
#endif

#include "interpreter/parallel/runtime_options.h"
#include "interpreter/parallel/topology.h"

namespace {

// Exit status for command-line mistakes, as Python uses for its own.
constexpr int usage_exit = 2;

std::string program_name(const char* argv0) {
  std::string_view name = argv0 ? argv0 : "pyparallel";
  auto slash = name.find_last_of("/\\");
  return std::string(slash == std::string_view::npos ? name : name.substr(slash + 1));
}

#if defined(__linux__)
// The canonical path of a file, or "" when it does not resolve.
std::string real_path(const std::string& path) {
  char buf[PATH_MAX];
  return !path.empty() && realpath(path.c_str(), buf) ? std::string(buf) : std::string();
}

// This program's path when argv[0] names something else (Python would then look for its
// stdlib in the wrong place), else "" and Python derives it from argv[0] as usual -- which
// keeps symlinked names and virtual environments (bin/pyparallel linking to the host) working.
// argv[0] is resolved the way Python's getpath does: as a path if it has a slash, else on PATH.
std::string executable_if_argv0_misleads(const char* argv0) {
  const std::string self = real_path("/proc/self/exe");
  if (self.empty()) return {};  // no /proc: nothing better to offer than argv[0]
  std::string_view name = argv0 ? argv0 : "";
  std::string named;
  if (name.find('/') != std::string_view::npos) {
    named = real_path(std::string(name));
  } else if (!name.empty()) {
    const char* path = std::getenv("PATH");
    std::string_view dirs = path ? path : "";
    while (named.empty() && !dirs.empty()) {
      auto colon = dirs.find(':');
      std::string_view dir = dirs.substr(0, colon);
      dirs = colon == std::string_view::npos ? std::string_view() : dirs.substr(colon + 1);
      // An empty PATH entry is the current folder.
      const std::string candidate = fmt::format("{}/{}", dir.empty() ? "." : dir, name);
      if (access(candidate.c_str(), X_OK) == 0) named = real_path(candidate);
    }
  }
  return named == self ? std::string() : self;
}
#else
// Elsewhere Python's own search stands (Windows asks the loader for the module's path).
std::string executable_if_argv0_misleads(const char*) {
  return {};
}
#endif

}  // namespace

int main(int argc, char** argv) {
  const std::string program = program_name(argc > 0 ? argv[0] : nullptr);

  pp::RuntimeOptions options = pp::default_runtime_options();
  std::string error;
  std::vector<std::string> python_args;
  if (!pp::apply_option_environment(options, pp::runtime_program, error) ||
      !pp::parse_runtime_args(argc, argv, options, python_args, error)) {
    fmt::print(stderr, "{}: error: {}\nTry '{} --help' for the options.\n", program, error,
               program);
    return usage_exit;
  }
  if (options.show_help) {
    // Ours first; Python prints its own options next (the --help/-h stays in python_args).
    fmt::print("{}", pp::runtime_help(program));
    std::fflush(stdout);
  } else if (options.show_topology) {
    return pp::print_topology(options, stdout);
  }
  pp::set_runtime_options(options);

  // Built-in, so `import parallel` never searches sys.path and always matches this host.
  if (PyImport_AppendInittab("parallel", PyInit_parallel) != 0) {
    fmt::print(stderr, "{}: error: cannot register the parallel module\n", program);
    return 1;
  }

  std::vector<char*> args;
  args.reserve(python_args.size());
  for (auto& a : python_args) args.push_back(a.data());

  PyConfig config;
  // The "python" configuration: environment variables (PYTHONPATH ...), site, the user's
  // locale, and parse_argv = 1 -- exactly what the python executable does.
  PyConfig_InitPythonConfig(&config);
  PyStatus status =
      PyConfig_SetBytesArgv(&config, static_cast<Py_ssize_t>(args.size()), args.data());
  if (const std::string self = executable_if_argv0_misleads(argc > 0 ? argv[0] : nullptr);
      !self.empty() && !PyStatus_Exception(status)) {
    status = PyConfig_SetBytesString(&config, &config.executable, self.c_str());
  }
  if (!PyStatus_Exception(status)) status = Py_InitializeFromConfig(&config);
  PyConfig_Clear(&config);
  if (PyStatus_Exception(status)) {
    // --help, --version and bad Python flags end here, with Python's own exit code.
    if (PyStatus_IsExit(status)) return status.exitcode;
    Py_ExitStatusException(status);  // prints the error and exits 1
  }
  // Runs the script/-c/-m/REPL, prints an uncaught exception's traceback, finalizes and
  // returns the exit code (1 after a traceback, SystemExit's code otherwise).
  return Py_RunMain();
}
