// The minibatch order: epochs of a permutation fixed by the seed and the step alone, and
// the slices of a global batch that the processes of a data-parallel run take.

#include "zflow/train/batch_order.h"

#include <set>

#include <ATen/ATen.h>
#include <gtest/gtest.h>

namespace {

using zflow::train::BatchOrder;
using zflow::train::shard;

TEST(BatchOrder, AnEpochVisitsEveryRowOnceAndTheNextOneReshuffles) {
  BatchOrder order(100, 10, 4);
  std::set<int64_t> seen;
  for (int64_t step = 0; step < 10; ++step) {
    const at::Tensor rows = order.rows(step);
    ASSERT_EQ(rows.numel(), 10);
    for (int64_t i = 0; i < 10; ++i) seen.insert(rows[i].item<int64_t>());
  }
  EXPECT_EQ(seen.size(), 100u);
  EXPECT_EQ(*seen.begin(), 0);
  EXPECT_EQ(*seen.rbegin(), 99);
  EXPECT_FALSE(order.rows(10).equal(order.rows(0)));  // epoch 1 starts with another order
}

TEST(BatchOrder, DependsOnlyOnTheSeedAndTheStep) {
  BatchOrder sequential(1000, 64, 7);
  std::vector<at::Tensor> rows;
  for (int64_t step = 0; step < 40; ++step) rows.push_back(sequential.rows(step).clone());
  BatchOrder resumed(1000, 64, 7);  // a resumed run asks for step 33 first
  EXPECT_TRUE(resumed.rows(33).equal(rows[33]));
  EXPECT_TRUE(resumed.rows(2).equal(rows[2]));
  BatchOrder other_seed(1000, 64, 8);
  EXPECT_FALSE(other_seed.rows(2).equal(rows[2]));
}

TEST(BatchOrder, AnEpochDropsTheIncompleteLastBatch) {
  BatchOrder order(10, 4, 1);  // two batches of 4 per epoch; 2 rows wait for the next epoch
  std::set<int64_t> first(order.rows(0).data_ptr<int64_t>(), order.rows(0).data_ptr<int64_t>() + 4);
  const at::Tensor second = order.rows(1);
  for (int64_t i = 0; i < 4; ++i) EXPECT_EQ(first.count(second[i].item<int64_t>()), 0u);
  EXPECT_EQ(BatchOrder(3, 8, 1).batch_size(), 3);  // fewer rows than a batch: all of them
}

TEST(Shard, SlicesCoverTheBatchOnceAndDifferByAtMostOne) {
  for (int64_t total : {1, 7, 64, 100}) {
    for (int world : {1, 2, 3, 8}) {
      if (total < world) continue;
      int64_t next = 0;
      for (int rank = 0; rank < world; ++rank) {
        const auto [offset, count] = shard(total, rank, world);
        EXPECT_EQ(offset, next);
        EXPECT_GE(count, total / world);
        EXPECT_LE(count, total / world + 1);
        next = offset + count;
      }
      EXPECT_EQ(next, total);
    }
  }
  EXPECT_THROW(shard(10, 2, 2), c10::Error);
}

}  // namespace
