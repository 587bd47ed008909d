// tests/engine/test_uring.cpp
#include <doctest/doctest.h>
