// numa/options.cpp -- see options.h.
#include "numa/options.h"

#include <charconv>

#include <fmt/format.h>

namespace pp::numa {

Setting<std::string> resolve_policy(std::optional<std::string_view> cli, const char* env,
                                    std::string_view built_in, std::string_view cli_name) {
  if (cli && !cli->empty()) return {std::string(*cli), std::string(cli_name)};
  if (env && *env) return {env, policy_env};
  return {std::string(built_in), "build default (meson -Dnuma_policy)"};
}

std::optional<Setting<int>> resolve_workers(std::optional<std::string_view> cli, const char* env,
                                            std::string& error, int built_in,
                                            std::string_view cli_name) {
  std::string_view text;
  std::string origin;
  if (cli && !cli->empty()) {
    text = *cli;
    origin = cli_name;
  } else if (env && *env) {
    text = env;
    origin = workers_env;
  } else {
    return Setting<int>{built_in, "build default (meson -Dworkers)"};
  }
  int value = -1;
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (ec != std::errc{} || end != text.data() + text.size() || value < 0) {
    error = fmt::format("{}={}: expected a worker count, 0 (one per allowed CPU) or more", origin,
                        text);
    return std::nullopt;
  }
  return Setting<int>{value, origin};
}

}  // namespace pp::numa
