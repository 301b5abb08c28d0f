// random_permutation (core/random.h): a permutation, drawn uniformly, and the same for a
// given seed on every machine (models with a random ordering rebuild from the seed alone).

#include "zflow/core/random.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <map>
#include <numeric>
#include <vector>

namespace {

using zflow::random_permutation;

TEST(RandomPermutation, IsAPermutationOfEverySize) {
  for (int64_t n : {0, 1, 2, 3, 7, 64, 1000}) {
    std::vector<int64_t> p = random_permutation(n, 42);
    ASSERT_EQ(static_cast<int64_t>(p.size()), n);
    std::sort(p.begin(), p.end());
    std::vector<int64_t> expected(static_cast<size_t>(n));
    std::iota(expected.begin(), expected.end(), 0);
    EXPECT_EQ(p, expected) << n;
  }
}

TEST(RandomPermutation, SameSeedSameOrderOtherSeedOtherOrder) {
  EXPECT_EQ(random_permutation(50, 7), random_permutation(50, 7));
  EXPECT_NE(random_permutation(50, 7), random_permutation(50, 8));
  std::vector<int64_t> identity(50);
  std::iota(identity.begin(), identity.end(), 0);
  EXPECT_NE(random_permutation(50, 7), identity);
}

// The draws are fixed by mt19937_64 and the rejection sampling, not by the standard
// library's distributions: these values hold for every compiler and platform.
TEST(RandomPermutation, ValuesArePortable) {
  EXPECT_EQ(random_permutation(8, 0), (std::vector<int64_t>{4, 5, 2, 0, 7, 1, 3, 6}));
  EXPECT_EQ(random_permutation(10, 12345), (std::vector<int64_t>{3, 1, 7, 4, 9, 2, 0, 8, 5, 6}));
}

// Each of the 3! orders of three items comes up about equally often over many seeds.
TEST(RandomPermutation, EveryOrderEquallyLikely) {
  std::map<std::vector<int64_t>, int> counts;
  const int draws = 6000;
  for (int seed = 1; seed <= draws; ++seed) ++counts[random_permutation(3, seed)];
  ASSERT_EQ(counts.size(), 6u);
  // Expected 1000 each, standard deviation about 29: 850..1150 is more than 5 of them.
  for (const auto& [order, count] : counts) {
    EXPECT_GT(count, 850) << order[0] << order[1] << order[2];
    EXPECT_LT(count, 1150) << order[0] << order[1] << order[2];
  }
  // The first position is uniform for a longer permutation too.
  std::vector<int> first(10, 0);
  for (int seed = 1; seed <= 10000; ++seed) ++first[random_permutation(10, seed)[0]];
  for (int v = 0; v < 10; ++v) {
    EXPECT_GT(first[v], 850) << v;
    EXPECT_LT(first[v], 1150) << v;
  }
}

}  // namespace
