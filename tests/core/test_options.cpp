// tests/core/test_options.cpp -- the option table (core/options.h): its rows are
// consistent, each type has one parser and one wording, and the environment, the flags
// and --help are all read from it.
#include <doctest/doctest.h>

#include <cctype>
#include <map>
#include <set>
#include <string>
#include <utility>

#include "core/options.h"

using namespace pp;

namespace {

std::map<std::string, std::string> fake_env;

const char* fake_getenv(const char* name) {
  auto it = fake_env.find(name);
  return it == fake_env.end() ? nullptr : it->second.c_str();
}

constexpr OptionProgram host{user_host, {}};
constexpr OptionNote httpd_notes[] = {{OptionId::workers, "workers, httpd's way", "one per CPU"}};
constexpr OptionProgram httpd{user_httpd, httpd_notes};

// Sets `keyword` from `text` on fresh defaults; the error, or "" when it was accepted.
std::string error_of(std::string_view keyword, std::string_view text,
                     const OptionProgram* program = nullptr) {
  ServerOptions o = default_server_options();
  std::string error;
  REQUIRE(find_option_keyword(keyword));
  if (set_option(*find_option_keyword(keyword), text, OptionOrigin::keyword, o, error, program))
    return "";
  return error;
}

}  // namespace

TEST_CASE("every row is named one way: --flag-name, PYPARALLEL_FLAG_NAME, flag_name") {
  std::set<std::string> flags, variables, keywords;
  std::size_t i = 0;
  for (const OptionSpec& o : option_table()) {
    INFO(o.keyword);
    CHECK(static_cast<std::size_t>(o.id) == i++);
    std::string flag = "--", variable = "PYPARALLEL_";
    for (char c : o.keyword) {
      flag += c == '_' ? '-' : c;
      variable += static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
    }
    CHECK(o.flag == flag);
    CHECK(o.environment == variable);
    CHECK(!o.help.empty());
    CHECK(!o.metavar.empty());
    CHECK(flags.insert(std::string(o.flag)).second);
    CHECK(variables.insert(std::string(o.environment)).second);
    CHECK(keywords.insert(std::string(o.keyword)).second);
    CHECK((o.users & user_run));  // every option is a run() keyword too
  }
  CHECK(i == option_count);
}

TEST_CASE("each type has one wording: 'expects ..., got' the text") {
  CHECK(error_of("workers", "many") ==
        "expects a whole number from 0 (callbacks on the main thread) to 4096, got 'many'");
  CHECK(error_of("workers", "4097").starts_with("expects a whole number"));
  CHECK(error_of("workers", "-1").starts_with("expects a whole number"));
  CHECK(error_of("workers", "4096").empty());
  CHECK(error_of("max_connections", "x") ==
        "expects a whole number from 0 (no limit) to 1000000000, got 'x'");
  CHECK(error_of("numa_policy", "3-1") ==
        "expects compact, scatter, none, node:K or a CPU list such as 0-3,8, got '3-1'");
  for (std::string_view good : {"compact", "scatter", "none", "node:1", "0-3,8", "5"})
    CHECK(error_of("numa_policy", good).empty());
  for (std::string_view bad : {"node:x", "everywhere", "", "1,,2", "0-"})
    CHECK(!error_of("numa_policy", bad).empty());
  CHECK(error_of("metrics_port", "nope").starts_with("expects PORT or HOST:PORT"));
  CHECK(error_of("metrics_port", "0.0.0.0:9180").empty());
  CHECK(error_of("share_main_data", "maybe") == "expects on or off, got 'maybe'");
  CHECK(error_of("header_timeout", "soon") == "expects seconds from 0 (off) to 604800, got 'soon'");
  CHECK(error_of("max_body", "-5").starts_with("expects a byte count from 1 to 1t"));
  CHECK(error_of("log_level", "loud") ==
        "expects trace, debug, info, warning, error or critical, got 'loud'");
  CHECK(error_of("access_log_file", "/var/log/") == "expects a file path, got '/var/log/'");
  CHECK(error_of("access_log_file", "").empty());  // stderr
  // A program's note rewords what 0 means, nothing else.
  CHECK(error_of("workers", "x", &httpd) ==
        "expects a whole number from 0 (one per CPU) to 4096, got 'x'");
}

TEST_CASE("the backends are the build's, for this OS") {
  std::string expected = "auto";
  for (BackendKind kind : built_backends()) expected += ", " + std::string(to_string(kind));
  CHECK(backend_choices() == expected);
  REQUIRE(!built_backends().empty());
  CHECK(error_of("backend", "auto").empty());
  for (BackendKind kind : built_backends()) CHECK(error_of("backend", to_string(kind)).empty());
  // Every other system's backend is refused by name, with the choices.
  for (BackendKind kind : {BackendKind::io_uring, BackendKind::libaio, BackendKind::epoll,
                           BackendKind::iocp, BackendKind::kqueue}) {
    bool built = false;
    for (BackendKind b : built_backends()) built = built || b == kind;
    if (built) continue;
    std::string error = error_of("backend", to_string(kind));
    CHECK(error.starts_with("expects one of " + expected + ", got '" +
                            std::string(to_string(kind)) + "'; "));
    CHECK(error.find("does not exist") != std::string::npos);
  }
  CHECK(error_of("backend", "carrier-pigeon") ==
        "expects one of " + expected + ", got 'carrier-pigeon'");
#if defined(__linux__)
  CHECK(expected == "auto, io_uring, libaio, epoll");
#endif
}

TEST_CASE("a value's text reads back to the same value") {
  ServerOptions o = default_server_options();
  std::string error;
  const std::pair<const char*, const char*> values[] = {
      {"workers", "3"},         {"backend", "auto"},       {"numa_policy", "0-1"},
      {"metrics_port", "9180"}, {"share_main_data", "no"}, {"header_timeout", "0.5"},
      {"max_body", "2k"},       {"max_connections", "9"}};
  for (auto [keyword, text] : values) {
    REQUIRE(set_option(*find_option_keyword(keyword), text, OptionOrigin::keyword, o, error));
  }
  CHECK(option_text(option_spec(OptionId::metrics_port), o) == "127.0.0.1:9180");
  CHECK(option_text(option_spec(OptionId::share_main_data), o) == "off");
  CHECK(option_text(option_spec(OptionId::header_timeout), o) == "0.5");
  CHECK(option_text(option_spec(OptionId::max_body), o) == "2048");
  for (const OptionSpec& spec : option_table()) {
    INFO(spec.keyword);
    ServerOptions copy = default_server_options();
    REQUIRE(set_option(spec, option_text(spec, o), OptionOrigin::keyword, copy, error));
    CHECK(option_text(spec, copy) == option_text(spec, o));
  }
  CHECK(o.origin(OptionId::workers) == OptionOrigin::keyword);
  CHECK(default_server_options().origin(OptionId::workers) == OptionOrigin::built_in);
  CHECK(option_text(option_spec(OptionId::metrics_port), default_server_options()).empty());
}

TEST_CASE("the environment: set and non-empty applies, a bad one names the variable") {
  fake_env = {
      {"PYPARALLEL_WORKERS", "5"}, {"PYPARALLEL_MAX_BODY", "1k"}, {"PYPARALLEL_BACKEND", ""}};
  ServerOptions o = default_server_options();
  std::string error;
  REQUIRE(apply_option_environment(o, host, error, fake_getenv));
  CHECK(o.workers == 5);
  CHECK(o.origin(OptionId::workers) == OptionOrigin::environment);
  CHECK(o.limits.max_body == 1024);
  CHECK(!o.given(OptionId::backend));  // empty means unset
  fake_env = {{"PYPARALLEL_NUMA_POLICY", "everywhere"}};
  CHECK(!apply_option_environment(o, httpd, error, fake_getenv));
  CHECK(error ==
        "PYPARALLEL_NUMA_POLICY expects compact, scatter, none, node:K or a CPU list such as "
        "0-3,8, got 'everywhere'");
  // pyparallel-httpd does not read what it has no use for.
  fake_env = {{"PYPARALLEL_SHARE_MAIN_DATA", "maybe"}};
  CHECK(apply_option_environment(o, httpd, error, fake_getenv));
  CHECK(!apply_option_environment(o, host, error, fake_getenv));
  fake_env.clear();
}

TEST_CASE("flags: --name value and --name=value, the flag named in errors") {
  const char* argv[] = {"prog",   "--workers",     "2",        "--max-body=4m", "--numa-policy",
                        "node:x", "--script-flag", "--backend"};
  const int argc = static_cast<int>(std::size(argv));
  ServerOptions o = default_server_options();
  std::string error;
  int i = 1;
  CHECK(take_option_flag(argc, argv, i, host, o, error) == FlagResult::taken);
  CHECK(i == 2);
  CHECK(o.workers == 2);
  CHECK(o.origin(OptionId::workers) == OptionOrigin::command_line);
  i = 3;
  CHECK(take_option_flag(argc, argv, i, host, o, error) == FlagResult::taken);
  CHECK(o.limits.max_body == 4u << 20);
  i = 4;
  CHECK(take_option_flag(argc, argv, i, host, o, error) == FlagResult::error);
  CHECK(error.starts_with("--numa-policy expects compact, scatter"));
  i = 6;
  CHECK(take_option_flag(argc, argv, i, host, o, error) == FlagResult::not_ours);
  i = 7;
  CHECK(take_option_flag(argc, argv, i, host, o, error) == FlagResult::error);
  CHECK(error == "option --backend needs a value");
  // --share-main-data is the runtime's alone.
  const char* share[] = {"prog", "--share-main-data", "off"};
  i = 1;
  CHECK(take_option_flag(3, share, i, httpd, o, error) == FlagResult::not_ours);
  CHECK(take_option_flag(3, share, i, host, o, error) == FlagResult::taken);
  CHECK(!o.share_main_data);
}

TEST_CASE("an on/off flag alone is on, --no-NAME is off, and --NAME off still reads off") {
  const char* argv[] = {
      "prog",         "--no-access-log", "--access-log", "--workers", "--access-log", "off",
      "--no-workers", "--access-log=no", "--access-log", "maybe",     "--access-log"};
  const int argc = static_cast<int>(std::size(argv));
  ServerOptions o = default_server_options();
  CHECK(o.access_log);  // on by default
  std::string error;
  int i = 1;
  CHECK(take_option_flag(argc, argv, i, host, o, error) == FlagResult::taken);
  CHECK(i == 1);
  CHECK(!o.access_log);
  i = 2;  // bare, before another flag: on, and it takes nothing
  CHECK(take_option_flag(argc, argv, i, host, o, error) == FlagResult::taken);
  CHECK(i == 2);
  CHECK(o.access_log);
  i = 4;  // followed by a word: that is its value
  CHECK(take_option_flag(argc, argv, i, host, o, error) == FlagResult::taken);
  CHECK(i == 5);
  CHECK(!o.access_log);
  i = 6;  // --no- only for on/off rows
  CHECK(take_option_flag(argc, argv, i, host, o, error) == FlagResult::not_ours);
  o.access_log = true;
  i = 7;
  CHECK(take_option_flag(argc, argv, i, host, o, error) == FlagResult::taken);
  CHECK(!o.access_log);
  i = 8;  // a bad word is an error, not "on" and a script named "maybe"
  CHECK(take_option_flag(argc, argv, i, host, o, error) == FlagResult::error);
  CHECK(error == "--access-log expects on or off, got 'maybe'");
  i = 10;  // bare and last: on
  CHECK(take_option_flag(argc, argv, i, host, o, error) == FlagResult::taken);
  CHECK(o.access_log);
}

TEST_CASE("--help lists a program's rows with their variables and defaults") {
  std::string runtime = option_help(host, OptionGroup::runtime);
  std::string limits = option_help(host, OptionGroup::limit);
  for (const OptionSpec& o : option_table()) {
    INFO(o.keyword);
    const std::string& text = o.group == OptionGroup::limit ? limits : runtime;
    CHECK(text.find(std::string(o.flag) + " " + std::string(o.metavar)) != std::string::npos);
    CHECK(text.find(o.environment) != std::string::npos);
  }
  CHECK(runtime.find(backend_choices()) != std::string::npos);
  CHECK(limits.find("default 60; PYPARALLEL_HEADER_TIMEOUT") != std::string::npos);
  for (const std::string& text : {runtime, limits}) {
    std::size_t start = 0;
    while (start < text.size()) {
      std::size_t end = text.find('\n', start);
      CHECK(end - start <= 79);  // wrapped for a terminal
      start = end + 1;
    }
  }
  std::string server = option_help(httpd, OptionGroup::runtime);
  CHECK(server.find("--share-main-data") == std::string::npos);
  CHECK(server.find("workers, httpd's way") != std::string::npos);
}
