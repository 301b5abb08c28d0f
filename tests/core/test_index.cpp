// IndexList (core/index.h): the values, and their int64 tensor on the device, built once.

#include "zflow/core/index.h"

#include <gtest/gtest.h>

#include <vector>

#include <ATen/ATen.h>

namespace {

using zflow::IndexList;

TEST(IndexList, TensorHoldsTheValuesAsInt64) {
  const IndexList list(std::vector<int64_t>{3, 0, 2, 1});
  EXPECT_EQ(list.size(), 4);
  EXPECT_EQ(list.values(), (std::vector<int64_t>{3, 0, 2, 1}));
  const at::Tensor& t = list.on(at::kCPU);
  EXPECT_EQ(t.scalar_type(), at::kLong);
  EXPECT_EQ(t.sizes(), at::IntArrayRef({4}));
  EXPECT_TRUE(at::equal(t, at::tensor(std::vector<int64_t>{3, 0, 2, 1}, at::kLong)));
  // Built once: the same tensor every time.
  EXPECT_TRUE(list.on(at::kCPU).is_same(t));
}

TEST(IndexList, SelectsColumnsOfFloatingInputs) {
  const IndexList list(std::vector<int64_t>{2, 0});
  const at::Tensor x = at::arange(6, at::kDouble).view({2, 3});
  const at::Tensor y = x.index_select(1, list.on(x.device()));
  EXPECT_TRUE(at::equal(y, at::tensor({2.0, 0.0, 5.0, 3.0}, at::kDouble).view({2, 2})));
}

TEST(IndexList, CopiesShareTheValues) {
  const IndexList list(std::vector<int64_t>{1, 0});
  const IndexList copy = list;
  EXPECT_EQ(copy.values(), list.values());
  EXPECT_TRUE(at::equal(copy.on(at::kCPU), list.on(at::kCPU)));
  EXPECT_EQ(IndexList().size(), 0);
}

}  // namespace
