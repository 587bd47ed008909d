// numa/cpulist.h -- the Linux CPU-list syntax ("0-3,8"), as taskset -c,
// /sys/devices/system/cpu/online and cgroup cpuset.cpus write it.
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace pp::numa {

/// Parses "0-3,8" into {0,1,2,3,8}, keeping the order written. Use it for
/// explicit CPU-list policies and test restrictions. Returns nullopt with `error`
/// set on bad syntax, a reversed range, or a CPU listed twice.
std::optional<std::vector<int>> parse_cpu_list(std::string_view text, std::string& error);

/// Formats OS indexes as a CPU list, merging runs: {0,1,2,3,8} -> "0-3,8". Use it
/// for messages and describe(); the input order is kept (runs must ascend).
std::string format_cpu_list(const std::vector<int>& cpus);

}  // namespace pp::numa
