// numa/cpulist.cpp -- see cpulist.h.
#include "numa/cpulist.h"

#include <charconv>
#include <set>

#include <fmt/format.h>

namespace pp::numa {

namespace {

// One non-negative decimal number, the whole of `text`.
std::optional<int> parse_index(std::string_view text) {
  int value = -1;
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (ec != std::errc{} || end != text.data() + text.size() || value < 0) return std::nullopt;
  return value;
}

}  // namespace

std::optional<std::vector<int>> parse_cpu_list(std::string_view text, std::string& error) {
  std::vector<int> cpus;
  std::set<int> seen;
  if (text.empty()) {
    error = "empty CPU list";
    return std::nullopt;
  }
  while (true) {
    auto comma = text.find(',');
    std::string_view item = text.substr(0, comma);
    auto dash = item.find('-');
    auto first = parse_index(item.substr(0, dash));
    auto last = dash == std::string_view::npos ? first : parse_index(item.substr(dash + 1));
    if (!first || !last) {
      error = fmt::format("bad CPU list item '{}': expected N or N-M (e.g. 0-3,8)", item);
      return std::nullopt;
    }
    if (*last < *first) {
      error = fmt::format("bad CPU range '{}': the end is below the start", item);
      return std::nullopt;
    }
    for (int cpu = *first; cpu <= *last; ++cpu) {
      if (!seen.insert(cpu).second) {
        error = fmt::format("CPU {} is listed twice", cpu);
        return std::nullopt;
      }
      cpus.push_back(cpu);
    }
    if (comma == std::string_view::npos) break;
    text.remove_prefix(comma + 1);
  }
  return cpus;
}

std::string format_cpu_list(const std::vector<int>& cpus) {
  std::string out;
  for (std::size_t i = 0; i < cpus.size();) {
    std::size_t j = i;
    while (j + 1 < cpus.size() && cpus[j + 1] == cpus[j] + 1) ++j;
    if (!out.empty()) out += ',';
    out += j == i ? fmt::format("{}", cpus[i]) : fmt::format("{}-{}", cpus[i], cpus[j]);
    i = j + 1;
  }
  return out;
}

}  // namespace pp::numa
