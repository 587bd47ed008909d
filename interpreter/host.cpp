// interpreter/host.cpp -- `pyparallel`: CPython with the parallel runtime built in.
//
// It behaves like `python` (script, -c, -m, -, the REPL, every Python flag, exit codes,
// tracebacks) because it hands Python's own argument parser the command line (PyConfig with
// parse_argv) and runs it with Py_RunMain. Before that it takes the runtime's flags
// (--workers, --backend, --numa-policy, --topology, --help) off the front of the command
// line. sys.executable is this program; since it accepts Python's flags, subprocess and
// multiprocessing can run it as they would run python.
#include "interpreter/parallel_module.h"  // Python.h first

#include <fmt/format.h>

#include <cstdio>
#include <string>
#include <vector>

#include "interpreter/runtime_options.h"
#include "interpreter/topology.h"

namespace {

// Exit status for command-line mistakes, as Python uses for its own.
constexpr int usage_exit = 2;

std::string program_name(const char* argv0) {
  std::string_view name = argv0 ? argv0 : "pyparallel";
  auto slash = name.find_last_of("/\\");
  return std::string(slash == std::string_view::npos ? name : name.substr(slash + 1));
}

}  // namespace

int main(int argc, char** argv) {
  const std::string program = program_name(argc > 0 ? argv[0] : nullptr);

  pp::RuntimeOptions options = pp::default_runtime_options();
  std::string error;
  std::vector<std::string> python_args;
  if (!pp::apply_environment(options, error) ||
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
