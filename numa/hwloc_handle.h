// numa/hwloc_handle.h -- owning wrappers for hwloc's C handles. Private to the
// hwloc build of numa/ (topology_hwloc.cpp, bind_hwloc.cpp); not installed.
#pragma once

#include <memory>

#include <hwloc.h>

namespace pp::numa::detail {

struct TopologyDeleter {
  void operator()(hwloc_topology* t) const { hwloc_topology_destroy(t); }
};
/// An hwloc topology destroyed with its owner.
using TopologyPtr = std::unique_ptr<hwloc_topology, TopologyDeleter>;

struct BitmapDeleter {
  void operator()(hwloc_bitmap_s* b) const { hwloc_bitmap_free(b); }
};
/// An hwloc cpuset or nodeset freed with its owner.
using Bitmap = std::unique_ptr<hwloc_bitmap_s, BitmapDeleter>;

/// A new empty bitmap.
inline Bitmap make_bitmap() {
  return Bitmap(hwloc_bitmap_alloc());
}

/// A bitmap holding only `index` (a PU or node OS index).
inline Bitmap single_bit(int index) {
  Bitmap set = make_bitmap();
  hwloc_bitmap_only(set.get(), static_cast<unsigned>(index));
  return set;
}

}  // namespace pp::numa::detail
