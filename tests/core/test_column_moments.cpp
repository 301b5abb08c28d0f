// Column moments in chunks: the same numbers as the whole-table ATen reductions, for any
// chunk size and over a subset of rows.

#include "zflow/core/column_moments.h"

#include <ATen/ATen.h>
#include <gtest/gtest.h>

namespace {

TEST(ColumnMoments, OneChunkIsExactlyTheWholeTableReduction) {
  at::manual_seed(3);
  const at::Tensor x = at::randn({1000, 4}, at::kDouble) * 3 + 1;
  const zflow::ColumnMoments m = zflow::column_moments(x);
  EXPECT_EQ(m.count, 1000);
  EXPECT_TRUE(at::equal(m.mean, x.mean(0)));
  EXPECT_TRUE(at::equal(m.std, x.std(0, /*unbiased=*/false)));
  EXPECT_TRUE(at::equal(m.min, std::get<0>(x.min(0))));
  EXPECT_TRUE(at::equal(m.max, std::get<0>(x.max(0))));
}

TEST(ColumnMoments, ChunksMergeToTheSameMoments) {
  at::manual_seed(4);
  // A large offset: the naive sum of squares would lose the spread, the pairwise merge not.
  const at::Tensor x = at::randn({1001, 3}, at::kDouble) * 0.01 + 1e6;
  for (int64_t chunk : {1, 7, 100, 1000, 5000}) {
    const zflow::ColumnMoments m = zflow::column_moments(x, {}, chunk);
    EXPECT_LT((m.mean - x.mean(0)).abs().max().item<double>(), 1e-9) << chunk;
    EXPECT_LT(((m.std - x.std(0, false)) / x.std(0, false)).abs().max().item<double>(), 1e-7)
        << chunk;
    EXPECT_TRUE(at::equal(m.min, std::get<0>(x.min(0))));
  }
}

TEST(ColumnMoments, RowsAndFloat32) {
  at::manual_seed(5);
  const at::Tensor x = at::randn({300, 2}, at::kFloat);
  const at::Tensor rows = at::randperm(300, at::kLong).narrow(0, 0, 120);
  const at::Tensor subset = x.index_select(0, rows).to(at::kDouble);
  const zflow::ColumnMoments m = zflow::column_moments(x, rows, 50);
  EXPECT_EQ(m.count, 120);
  EXPECT_EQ(m.mean.scalar_type(), at::kDouble);
  EXPECT_LT((m.mean - subset.mean(0)).abs().max().item<double>(), 1e-12);
  EXPECT_LT((m.std - subset.std(0, false)).abs().max().item<double>(), 1e-12);
  EXPECT_TRUE(at::equal(m.max, std::get<0>(subset.max(0))));
  EXPECT_TRUE(
      at::equal(zflow::gather_rows(x, rows, 10, 5), x.index_select(0, rows.narrow(0, 10, 5))));
}

TEST(ColumnMoments, Errors) {
  EXPECT_THROW(zflow::column_moments(at::zeros({0, 2})), c10::Error);
  EXPECT_THROW(zflow::column_moments(at::zeros({4})), c10::Error);
}

}  // namespace
