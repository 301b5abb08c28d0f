#include "zflow/core/random.h"

#include <random>
#include <utility>

namespace zflow {

std::vector<int64_t> random_permutation(int64_t n, uint64_t seed) {
  std::vector<int64_t> p(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) p[i] = i;
  std::mt19937_64 rng(seed);
  // Fisher-Yates with rejection sampling, so the result does not depend on the standard
  // library's distribution algorithms.
  for (int64_t i = n - 1; i > 0; --i) {
    const uint64_t range = static_cast<uint64_t>(i) + 1;
    const uint64_t limit = UINT64_MAX - UINT64_MAX % range;
    uint64_t r;
    do r = rng();
    while (r >= limit);
    std::swap(p[i], p[static_cast<int64_t>(r % range)]);
  }
  return p;
}

}  // namespace zflow
