// tests/engine/test_loop.cpp
#include <doctest/doctest.h>
