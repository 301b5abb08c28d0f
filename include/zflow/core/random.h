#pragma once
/// \file
/// Portable random draws that give the same result on every machine for a given seed.

#include <cstdint>
#include <vector>

namespace zflow {

/// A uniformly random permutation of 0..n-1 (Fisher-Yates on mt19937_64), the same on
/// every machine for a given seed.
std::vector<int64_t> random_permutation(int64_t n, uint64_t seed);

}  // namespace zflow
