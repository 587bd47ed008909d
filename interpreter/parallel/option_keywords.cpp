// interpreter/parallel/option_keywords.cpp -- the option table in Python (see
// option_keywords.h). Values cross into Python typed as a user writes them: counts and
// byte sizes as int, seconds as float, on/off as bool, the rest as str.
#include "interpreter/parallel/option_keywords.h"

#include <string>
#include <utility>
#include <vector>

#include "interpreter/parallel/runtime_options.h"

namespace pp::py {
namespace {

PyObject* str_of(std::string_view text) {
  return PyUnicode_FromStringAndSize(text.data(), static_cast<Py_ssize_t>(text.size()));
}

// Sets d[key] = value, taking the new reference `value`. False with an exception set.
bool put(PyObject* d, std::string_view key, PyObject* value) {
  Ref v(value);
  return v && PyDict_SetItemString(d, std::string(key).c_str(), v.get()) == 0;
}

// `spec`'s value in `options` as Python sees it.
PyObject* python_value(const OptionSpec& spec, const ServerOptions& options) {
  std::string text = option_text(spec, options);
  switch (spec.type) {
    case OptionType::count:
    case OptionType::bytes:
      return PyLong_FromString(text.c_str(), nullptr, 10);
    case OptionType::seconds:
      return PyFloat_FromDouble(std::stod(text));
    case OptionType::on_off:
      return PyBool_FromLong(text == "on");
    case OptionType::address:
      if (text.empty()) Py_RETURN_NONE;
      return str_of(text);
    case OptionType::backend:
    case OptionType::numa_policy:
    case OptionType::log_level:
    case OptionType::path:
      return str_of(text);
  }
  Py_RETURN_NONE;
}

// Sets `spec` in `options` from a Python value: True/False for on/off options; an int, a
// float or a str for the others, read by the flag's parser from its str(). False with
// TypeError (a value of the wrong kind) or ValueError (a malformed one) set.
bool set_from_python(const OptionSpec& spec, PyObject* value, ServerOptions& options) {
  std::string text;
  if (spec.type == OptionType::on_off) {
    if (!PyBool_Check(value)) {
      Ref r(PyObject_Repr(value));
      const char* shown = r ? PyUnicode_AsUTF8(r.get()) : nullptr;
      if (!shown) return false;
      PyErr_Format(PyExc_TypeError, "%s expects True or False, got %s",
                   std::string(spec.keyword).c_str(), shown);
      return false;
    }
    text = value == Py_True ? "on" : "off";
  } else if (PyBool_Check(value) ||
             !(PyLong_Check(value) || PyFloat_Check(value) || PyUnicode_Check(value))) {
    PyErr_Format(PyExc_TypeError, "%s expects an int, a float or a str, got %s",
                 std::string(spec.keyword).c_str(), Py_TYPE(value)->tp_name);
    return false;
  } else {
    Ref s(PyObject_Str(value));
    const char* utf8 = s ? PyUnicode_AsUTF8(s.get()) : nullptr;
    if (!utf8) return false;
    text = utf8;
  }
  std::string why;
  if (!set_option(spec, text, OptionOrigin::keyword, options, why)) {
    PyErr_Format(PyExc_ValueError, "%s %s", std::string(spec.keyword).c_str(), why.c_str());
    return false;
  }
  return true;
}

// The rows run() takes positionally, in the table's order: the runtime's own options.
std::vector<const OptionSpec*> positional_rows() {
  std::vector<const OptionSpec*> rows;
  for (const OptionSpec& o : option_table())
    if (o.group == OptionGroup::runtime && (o.users & user_run)) rows.push_back(&o);
  return rows;
}

/// parallel._options() -> dict: the options in effect (the host's or, in a plain python,
/// the environment's), keyed by run() keyword, the limits in a "limits" dict; "origin"
/// says where workers, backend and numa_policy came from (what --topology shows).
PyObject* fn_options(PyObject*, PyObject*) {
  const RuntimeOptions& o = runtime_options();
  Ref dict(PyDict_New()), limits(PyDict_New()), origin(PyDict_New());
  if (!dict || !limits || !origin) return nullptr;
  for (const OptionSpec& spec : option_table()) {
    if (!(spec.users & (user_host | user_run))) continue;
    PyObject* into = spec.group == OptionGroup::limit ? limits.get() : dict.get();
    if (!put(into, spec.keyword, python_value(spec, o))) return nullptr;
  }
  for (OptionId id : {OptionId::workers, OptionId::backend, OptionId::numa_policy})
    if (!put(origin.get(), option_spec(id).keyword, str_of(to_string(o.origin(id)))))
      return nullptr;
#ifdef Py_GIL_DISABLED
  constexpr long free_threaded = 1;
#else
  constexpr long free_threaded = 0;
#endif
  if (!put(dict.get(), "limits", limits.release()) ||
      !put(dict.get(), "origin", origin.release()) ||
      !put(dict.get(), "host", PyBool_FromLong(o.from_host)) ||
      !put(dict.get(), "free_threaded", PyBool_FromLong(free_threaded)))
    return nullptr;
  return dict.release();
}

/// parallel._option_table() -> tuple of dicts, one per option, in --help order.
PyObject* fn_option_table(PyObject*, PyObject*) {
  const ServerOptions defaults = default_server_options();
  const RuntimeOptions& now = runtime_options();
  auto table = option_table();
  Ref rows(PyTuple_New(static_cast<Py_ssize_t>(table.size())));
  if (!rows) return nullptr;
  Py_ssize_t i = 0;
  for (const OptionSpec& spec : table) {
    Ref row(PyDict_New()), users(PyList_New(0)), choices;
    if (!row || !users) return nullptr;
    for (auto [bit, name] : {std::pair{user_host, "pyparallel"}, std::pair{user_httpd, "httpd"},
                             std::pair{user_run, "run"}}) {
      Ref n(str_of(name));
      if ((spec.users & bit) && (!n || PyList_Append(users.get(), n.get()) < 0)) return nullptr;
    }
    if (spec.type == OptionType::backend) {
      choices = Ref(PyList_New(0));
      if (!choices) return nullptr;
      std::vector<BackendKind> kinds{BackendKind::automatic};
      kinds.insert(kinds.end(), built_backends().begin(), built_backends().end());
      for (BackendKind kind : kinds) {
        Ref n(str_of(to_string(kind)));
        if (!n || PyList_Append(choices.get(), n.get()) < 0) return nullptr;
      }
    } else if (spec.type == OptionType::log_level) {
      choices = Ref(PyList_New(0));
      if (!choices) return nullptr;
      for (auto level : {LogLevel::trace, LogLevel::debug, LogLevel::info, LogLevel::warning,
                         LogLevel::error, LogLevel::critical}) {
        Ref n(str_of(to_string(level)));
        if (!n || PyList_Append(choices.get(), n.get()) < 0) return nullptr;
      }
    } else {
      choices = Ref::borrow(Py_None);
    }
    std::string shown_default =
        spec.default_note.empty() ? option_text(spec, defaults) : std::string(spec.default_note);
    if (!put(row.get(), "keyword", str_of(spec.keyword)) ||
        !put(row.get(), "flag", str_of(spec.flag)) ||
        !put(row.get(), "environment", str_of(spec.environment)) ||
        !put(row.get(), "type", str_of(to_string(spec.type))) ||
        !put(row.get(), "group", str_of(spec.group == OptionGroup::limit ? "limit" : "runtime")) ||
        !put(row.get(), "users", users.release()) ||
        !put(row.get(), "metavar", str_of(spec.metavar)) ||
        !put(row.get(), "help", str_of(spec.help)) ||
        !put(row.get(), "choices", choices.release()) ||
        !put(row.get(), "default", str_of(shown_default)) ||
        !put(row.get(), "value", python_value(spec, now)))
      return nullptr;
    PyTuple_SET_ITEM(rows.get(), i++, row.release());
  }
  return rows.release();
}

/// parallel._parse_option(keyword, text) -> the value, checked by the flag's parser.
PyObject* fn_parse_option(PyObject*, PyObject* args) {
  const char* keyword = nullptr;
  const char* text = nullptr;
  if (!PyArg_ParseTuple(args, "ss:_parse_option", &keyword, &text)) return nullptr;
  const OptionSpec* spec = find_option_keyword(keyword);
  if (!spec) {
    PyErr_Format(PyExc_KeyError, "no option '%s'", keyword);
    return nullptr;
  }
  ServerOptions options = runtime_options();
  std::string why;
  if (!set_option(*spec, text, OptionOrigin::keyword, options, why)) {
    PyErr_SetString(PyExc_ValueError, why.c_str());
    return nullptr;
  }
  return python_value(*spec, options);
}

}  // namespace

bool apply_run_arguments(PyObject* args, PyObject* kwargs, ServerOptions& options) {
  std::vector<const OptionSpec*> given;  // the rows set positionally
  if (args) {
    auto positional = positional_rows();
    Py_ssize_t n = PyTuple_GET_SIZE(args);
    if (n > static_cast<Py_ssize_t>(positional.size())) {
      PyErr_Format(PyExc_TypeError, "run() takes at most %zd positional arguments (%zd given)",
                   static_cast<Py_ssize_t>(positional.size()), n);
      return false;
    }
    for (Py_ssize_t i = 0; i < n; ++i) {
      PyObject* value = PyTuple_GET_ITEM(args, i);
      given.push_back(positional[static_cast<std::size_t>(i)]);
      if (value != Py_None && !set_from_python(*given.back(), value, options)) return false;
    }
  }
  if (!kwargs) return true;
  PyObject *key, *value;
  Py_ssize_t pos = 0;
  while (PyDict_Next(kwargs, &pos, &key, &value)) {
    const char* name = PyUnicode_AsUTF8(key);
    if (!name) return false;
    const OptionSpec* spec = find_option_keyword(name);
    if (!spec) {
      PyErr_Format(PyExc_TypeError, "run() got an unexpected keyword argument '%s'", name);
      return false;
    }
    for (const OptionSpec* g : given) {
      if (g == spec) {
        PyErr_Format(PyExc_TypeError, "run() got multiple values for argument '%s'", name);
        return false;
      }
    }
    if (value != Py_None && !set_from_python(*spec, value, options)) return false;
  }
  return true;
}

PyMethodDef option_methods[] = {
    {"_options", fn_options, METH_NOARGS,
     "_options()\n--\n\nThe options in effect, keyed by run() keyword (the limits in "
     "'limits'), where workers, backend and numa_policy came from ('origin'), and whether "
     "the pyparallel host set them ('host')."},
    {"_option_table", fn_option_table, METH_NOARGS,
     "_option_table()\n--\n\nEvery option as data, in --help order: keyword, flag, "
     "environment, type, group, users, metavar, help, choices, default (as --help shows "
     "it) and value (in effect now). parallel.serve builds its flags from it."},
    {"_parse_option", fn_parse_option, METH_VARARGS,
     "_parse_option(keyword, text, /)\n--\n\nThe value of `text` for the option `keyword`, "
     "as its flag reads it; ValueError saying what is expected otherwise."},
    {nullptr, nullptr, 0, nullptr},
};

}  // namespace pp::py
