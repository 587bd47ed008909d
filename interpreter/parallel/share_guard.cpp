// interpreter/parallel/share_guard.cpp -- see share_guard.h.
#include "interpreter/parallel/share_guard.h"

#include <fmt/format.h>

namespace pp::py {
namespace {

// The CPython whose free-threaded object header share.cpp writes.
constexpr unsigned long header_major = 3, header_minor = 13;

unsigned long major_of(unsigned long hex) {
  return (hex >> 24) & 0xff;
}
unsigned long minor_of(unsigned long hex) {
  return (hex >> 16) & 0xff;
}

constexpr const char* what_to_do =
    "the server runs with that data mortal (workers count its references); run with "
    "--share-main-data off (PYPARALLEL_SHARE_MAIN_DATA=off, run(share_main_data=False)) to "
    "say so and silence this";

}  // namespace

std::string python_version_text(unsigned long hex) {
  std::string text = fmt::format("{}.{}.{}", major_of(hex), minor_of(hex), (hex >> 8) & 0xff);
  unsigned long level = (hex >> 4) & 0xf, serial = hex & 0xf;
  if (level == 0xa) text += fmt::format("a{}", serial);
  if (level == 0xb) text += fmt::format("b{}", serial);
  if (level == 0xc) text += fmt::format("rc{}", serial);
  return text;
}

std::string share_refusal(unsigned long built_for, unsigned long running) {
  if (major_of(built_for) != header_major || minor_of(built_for) != header_minor)
    return fmt::format(
        "this pyparallel was built for CPython {}, and sharing writes the object header of "
        "free-threaded CPython {}.{} only; {}",
        python_version_text(built_for), header_major, header_minor, what_to_do);
  if (major_of(running) != major_of(built_for) || minor_of(running) != minor_of(built_for))
    return fmt::format(
        "this pyparallel was built for CPython {} but runs on {}, whose object header may "
        "differ; {}, or rebuild pyparallel against the running interpreter",
        python_version_text(built_for), python_version_text(running), what_to_do);
  return {};
}

}  // namespace pp::py
