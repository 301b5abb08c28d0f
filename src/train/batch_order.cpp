#include "zflow/train/batch_order.h"

#include <algorithm>

#include <ATen/ATen.h>
#include <ATen/CPUGeneratorImpl.h>

namespace zflow::train {

namespace {

// SplitMix64 (Steele, Lea & Flood 2014): decorrelates the seeds of consecutive epochs.
uint64_t mix(uint64_t x) {
  x += 0x9E3779B97F4A7C15ULL;
  x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ULL;
  x = (x ^ (x >> 27)) * 0x94D049BB133111EBULL;
  return x ^ (x >> 31);
}

}  // namespace

BatchOrder::BatchOrder(int64_t rows, int64_t batch_size, uint64_t seed)
    : n_(rows), batch_(std::min(batch_size, rows)), seed_(seed) {
  TORCH_CHECK(rows > 0 && batch_size > 0, "BatchOrder: rows (", rows, ") and batch size (",
              batch_size, ") must be positive");
}

at::Tensor BatchOrder::rows(int64_t step) {
  TORCH_CHECK(step >= 0, "BatchOrder: step must be >= 0, got ", step);
  const int64_t per_epoch = n_ / batch_;
  const int64_t epoch = step / per_epoch;
  if (epoch != epoch_) {
    at::Generator generator =
        at::make_generator<at::CPUGeneratorImpl>(mix(seed_ ^ mix(static_cast<uint64_t>(epoch))));
    permutation_ = at::randperm(n_, generator, at::TensorOptions(at::kLong));
    epoch_ = epoch;
  }
  return permutation_.narrow(0, (step % per_epoch) * batch_, batch_);
}

std::pair<int64_t, int64_t> shard(int64_t total, int rank, int world) {
  TORCH_CHECK(world >= 1 && rank >= 0 && rank < world, "shard: rank ", rank, " outside a world of ",
              world);
  const int64_t base = total / world;
  const int64_t extra = total % world;
  const int64_t count = base + (rank < extra ? 1 : 0);
  const int64_t offset = rank * base + std::min<int64_t>(rank, extra);
  return {offset, count};
}

}  // namespace zflow::train
