// interpreter/parallel/option_keywords.h -- the option table (core/options.h) in Python:
// parallel.run()'s arguments, parallel._options() (the values in effect),
// parallel._option_table() (the table as data: parallel.serve builds its flags from it)
// and parallel._parse_option() (the table's parser, for parallel.serve's flags).
#pragma once

#include "interpreter/parallel/py_util.h"

#include "core/options.h"

namespace pp::py {

/// Applies run()'s arguments to `options` (start from the process's options): positional
/// ones in the table's order of runtime options (workers, backend, numa_policy,
/// metrics_port, share_main_data), keywords by name; None leaves an option as it is. Use
/// it for every entry of options through run(), so that a keyword is checked as its flag.
/// False with TypeError or ValueError set ("workers expects ..., got '-1'").
bool apply_run_arguments(PyObject* args, PyObject* kwargs, ServerOptions& options);

/// The module functions _options, _option_table and _parse_option (null-terminated).
extern PyMethodDef option_methods[];

}  // namespace pp::py
