// core/http/date.cpp -- IMF-fixdate formatting and the per-thread Date cache.
//
// Why per thread rather than one atomically swapped global: every worker formats
// responses on its own core, and a shared cache line that each worker rewrites
// once a second and reads on every response would bounce between cores. A
// thread_local copy costs 29 bytes per worker, is never contended, and each
// worker's refresh (one clock read per response, one format per second) is cheap.
#include "core/http/date.h"

#include <chrono>
#include <cstring>

namespace pp::http {
namespace {

void put2(char* p, unsigned v) {
  p[0] = static_cast<char>('0' + v / 10);
  p[1] = static_cast<char>('0' + v % 10);
}

struct DateCache {
  std::int64_t second = INT64_MIN;
  // "Date: " + 29 + "\r\n"
  char line[6 + kHttpDateLength + 2] = {'D', 'a', 't', 'e', ':', ' '};
};

thread_local DateCache t_cache;

const DateCache& refreshed() {
  using namespace std::chrono;
  std::int64_t now = duration_cast<seconds>(system_clock::now().time_since_epoch()).count();
  if (now != t_cache.second) {
    char buf[kHttpDateLength];
    format_http_date(now, buf);
    std::memcpy(t_cache.line + 6, buf, kHttpDateLength);
    t_cache.line[6 + kHttpDateLength] = '\r';
    t_cache.line[6 + kHttpDateLength + 1] = '\n';
    t_cache.second = now;
  }
  return t_cache;
}

}  // namespace

void format_http_date(std::int64_t unix_seconds, char (&out)[kHttpDateLength]) {
  using namespace std::chrono;
  static constexpr char kDays[] = "SunMonTueWedThuFriSat";
  static constexpr char kMonths[] = "JanFebMarAprMayJunJulAugSepOctNovDec";
  const sys_seconds t{seconds{unix_seconds}};
  const sys_days day = floor<days>(t);
  const year_month_day ymd{day};
  const hh_mm_ss hms{t - day};
  const unsigned wd = weekday{day}.c_encoding();  // 0 = Sunday
  const unsigned mon = static_cast<unsigned>(ymd.month()) - 1;
  const int yr = static_cast<int>(ymd.year());
  std::memcpy(out, kDays + 3 * wd, 3);
  out[3] = ',';
  out[4] = ' ';
  put2(out + 5, static_cast<unsigned>(ymd.day()));
  out[7] = ' ';
  std::memcpy(out + 8, kMonths + 3 * mon, 3);
  out[11] = ' ';
  put2(out + 12, static_cast<unsigned>(yr / 100 % 100));
  put2(out + 14, static_cast<unsigned>(yr % 100));
  out[16] = ' ';
  put2(out + 17, static_cast<unsigned>(hms.hours().count()));
  out[19] = ':';
  put2(out + 20, static_cast<unsigned>(hms.minutes().count()));
  out[22] = ':';
  put2(out + 23, static_cast<unsigned>(hms.seconds().count()));
  std::memcpy(out + 25, " GMT", 4);
}

std::string_view http_date() {
  return {refreshed().line + 6, kHttpDateLength};
}

std::string_view date_header_line() {
  return {refreshed().line, sizeof(DateCache::line)};
}

}  // namespace pp::http
