#pragma once
/// \file
/// Portable random draws that give the same result on every machine for a given seed.
/// std::mt19937_64's output is fixed bit for bit by the C++ standard, but the standard
/// library's distributions (std::uniform_int_distribution, std::shuffle) are not, so zflow
/// maps its draws to integers itself (rejection sampling, no modulo bias).
///
/// Example (the order of a "random" permutation layer):
///
///     std::vector<int64_t> order = zflow::random_permutation(/*n=*/5, /*seed=*/42);
///     // a shuffle of {0, 1, 2, 3, 4}, identical on every platform for seed 42

#include <cstdint>
#include <vector>

namespace zflow {

/// A uniformly random permutation of 0..n-1 (Fisher-Yates on mt19937_64), the same on
/// every machine for a given seed.
std::vector<int64_t> random_permutation(int64_t n, uint64_t seed);

}  // namespace zflow
