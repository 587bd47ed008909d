// numa/topology.cpp -- lookups shared by the hwloc and fallback builds.
#include "numa/topology.h"

#include <algorithm>

namespace pp::numa {

const Pu* Topology::find_pu(int os_index) const {
  auto it =
      std::find_if(pus.begin(), pus.end(), [&](const Pu& p) { return p.os_index == os_index; });
  return it == pus.end() ? nullptr : &*it;
}

const NumaNode* Topology::find_node(int os_index) const {
  auto it = std::find_if(nodes.begin(), nodes.end(),
                         [&](const NumaNode& n) { return n.os_index == os_index; });
  return it == nodes.end() ? nullptr : &*it;
}

std::vector<int> Topology::allowed_pus() const {
  std::vector<int> out;
  for (const Pu& pu : pus)
    if (pu.allowed) out.push_back(pu.os_index);
  return out;
}

}  // namespace pp::numa
