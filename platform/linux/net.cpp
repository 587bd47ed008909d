// platform/linux/net.cpp -- placeholder until the socket helpers land.
#include "core/net.h"
