// The c10d process group as the trainer's GradientSync, with the ranks as threads of this
// process (Gloo serves several groups in one process): the reductions, the broadcast of
// the parameters, and a Trainer on two ranks reaching the parameters of one rank alone.

#include "zflow/distributed/process_group.h"

#include <chrono>
#include <functional>
#include <future>
#include <string>
#include <thread>
#include <vector>

#include <ATen/ATen.h>
#include <ATen/CPUGeneratorImpl.h>
#include <gtest/gtest.h>

#include "support/expect_error.h"
#include "support/free_port.h"
#include "zflow/core/error.h"
#include "zflow/data/toy.h"
#include "zflow/flows/builders.h"
#include "zflow/flows/registry.h"
#include "zflow/train/trainer.h"

using namespace zflow;
using zflow::testing::free_port;

namespace {

distributed::LaunchInfo rank_of(int rank, int world, int port) {
  distributed::LaunchInfo info;
  info.rank = rank;
  info.world_size = world;
  info.local_rank = rank;
  info.local_world_size = world;
  info.master_addr = "127.0.0.1";
  info.master_port = port;
  info.launcher = "test";
  return info;
}

/// Runs `work(sync)` on `world` ranks, one thread each; the results by rank.
template <typename T>
std::vector<T> on_ranks(int world, const std::function<T(distributed::ProcessGroupSync&)>& work,
                        int buckets = 1) {
  const int port = free_port();
  std::vector<std::future<T>> futures;
  for (int r = 0; r < world; ++r) {
    futures.push_back(std::async(std::launch::async, [=] {
      distributed::DistributedOptions options;
      options.timeout_seconds = 30;
      options.buckets = buckets;
      auto sync = distributed::ProcessGroupSync::connect(rank_of(r, world, port), options);
      return work(*sync);
    }));
  }
  std::vector<T> results;
  for (auto& f : futures) results.push_back(f.get());
  return results;
}

class ProcessGroup : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!distributed::distributed_available()) GTEST_SKIP() << "built without c10d";
  }
};

TEST_F(ProcessGroup, MeanAnyAndTheGradientBuffer) {
  const auto results = on_ranks<std::vector<double>>(3, [](distributed::ProcessGroupSync& s) {
    const double r = s.rank();
    at::Tensor flat = at::full({4}, r + 1.0, at::kDouble);
    s.synchronize_gradients(flat);
    return std::vector<double>{s.mean(r * 10.0),
                               s.any(s.rank() == 2) ? 1.0 : 0.0,
                               s.any(false) ? 1.0 : 0.0,
                               flat[3].item<double>(),
                               static_cast<double>(s.world_size()),
                               static_cast<double>(s.allreduce_count())};
  });
  for (const auto& r : results) {
    EXPECT_DOUBLE_EQ(r[0], 10.0);  // (0 + 10 + 20) / 3
    EXPECT_EQ(r[1], 1.0);
    EXPECT_EQ(r[2], 0.0);
    EXPECT_DOUBLE_EQ(r[3], 2.0);  // (1 + 2 + 3) / 3
    EXPECT_EQ(r[4], 3.0);
    EXPECT_EQ(r[5], 1.0);
  }
}

TEST_F(ProcessGroup, BroadcastGivesEveryRankRankZerosParametersAndBuffers) {
  const auto sums = on_ranks<std::vector<double>>(2, [](distributed::ProcessGroupSync& s) {
    BuilderOptions o;
    o.layers = 2;
    o.hidden = 8;
    FlowPtr flow = make_flow(build_flow_spec("glow", 2, o));
    {
      at::NoGradGuard no_grad;
      for (auto& p : flow->parameters()) p.fill_(s.rank() + 0.5);
      for (auto& b : flow->buffers()) {
        if (b.is_floating_point()) b.fill_(s.rank() + 0.25);
      }
    }
    s.broadcast_parameters(*flow);
    double p = 0, b = 0;
    for (auto& t : flow->parameters()) p += t.sum().item<double>() / t.numel();
    for (auto& t : flow->buffers()) {
      if (t.is_floating_point() && t.numel() > 0) b += t.sum().item<double>() / t.numel();
    }
    return std::vector<double>{p / flow->parameters().size(), b};
  });
  EXPECT_DOUBLE_EQ(sums[0][0], 0.5);
  EXPECT_DOUBLE_EQ(sums[1][0], 0.5);
  EXPECT_DOUBLE_EQ(sums[1][1], sums[0][1]);
  EXPECT_GT(sums[0][1], 0.0);  // rank 0's buffers (0.25), where there are any
}

// Two ranks with half of each global batch end where one rank with the whole batch does.
TEST_F(ProcessGroup, TwoRanksTrainLikeOne) {
  const at::Tensor data = data::sample_toy("moons", 600, 1).to(at::kDouble);
  // The flows are built up front: torch's generator is one for the whole process, and
  // the trainers seed it as they start.
  auto build = [] {
    BuilderOptions o;
    o.layers = 2;
    o.hidden = 16;
    at::Generator generator = at::detail::getDefaultCPUGenerator();
    generator.set_current_seed(5);
    return make_flow(build_flow_spec("maf", 2, o));
  };
  std::vector<FlowPtr> flows{nullptr, nullptr, build()};
  auto train = [&](FlowPtr flow, train::GradientSync* sync) {
    flow->to(at::kDouble);
    train::TrainOptions options;
    options.steps = 30;
    options.batch_size = 100;
    options.eval_every = 30;
    options.seed = 9;
    train::Trainer trainer(*flow, options);
    if (sync != nullptr) {
      trainer.set_gradient_sync(std::shared_ptr<train::GradientSync>(sync, [](auto*) {}));
    }
    trainer.fit(data);
    return at::cat([&] {
      std::vector<at::Tensor> parts;
      for (auto& p : flow->parameters()) parts.push_back(p.detach().reshape({-1}));
      return parts;
    }());
  };
  const at::Tensor alone = train(flows[2], nullptr);
  const at::Tensor initial = at::cat([&] {
    std::vector<at::Tensor> parts;
    for (auto& p : build()->parameters()) parts.push_back(p.detach().reshape({-1}));
    return parts;
  }());
  ASSERT_GT((alone - initial).abs().max().item<double>(), 1e-3);  // it trained
  // One all-reduce after the backward pass, and 3 buckets during it.
  for (int buckets : {1, 3}) {
    std::vector<FlowPtr> fresh{build(), build()};
    const auto together = on_ranks<at::Tensor>(
        2, [&](distributed::ProcessGroupSync& s) { return train(fresh[s.rank()], &s); }, buckets);
    for (const auto& t : together) {
      const double scale = alone.abs().max().item<double>();
      EXPECT_LT((t - alone).abs().max().item<double>() / scale, 1e-10) << buckets;
    }
    EXPECT_TRUE(together[0].equal(together[1])) << buckets;
  }
}

TEST_F(ProcessGroup, AnUnreachableMasterIsAnErrorWithinTheTimeout) {
  distributed::DistributedOptions options;
  options.timeout_seconds = 1;
  const auto start = std::chrono::steady_clock::now();
  zflow::testing::expect_error<Error>(
      [&] { distributed::ProcessGroupSync::connect(rank_of(1, 2, free_port()), options); },
      {"cannot reach the master", "within 1 s"});
  EXPECT_LT(std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count(), 10.0);
}

// The NCCL path on a CUDA GPU: a world of one exercises the rendezvous, the group and every
// collective on CUDA tensors (with more GPUs, `zflow train --device cuda --nproc N` runs
// one rank per GPU). Skipped where this LibTorch has no CUDA or no NCCL.
TEST_F(ProcessGroup, NcclOnACudaGpu) {
  if (!at::hasCUDA() || distributed::available_backends().find("nccl") == std::string::npos) {
    GTEST_SKIP() << "needs a CUDA GPU and a LibTorch with NCCL (backends here: "
                 << distributed::available_backends() << ")";
  }
  distributed::DistributedOptions options;
  options.backend = "nccl";
  options.device = "cuda";
  options.timeout_seconds = 60;
  auto sync = distributed::ProcessGroupSync::connect(rank_of(0, 1, free_port()), options);
  EXPECT_EQ(sync->backend(), "nccl");
  at::Tensor flat = at::full({5}, 3.0, at::TensorOptions(at::kFloat).device(at::kCUDA));
  sync->synchronize_gradients(flat);
  EXPECT_TRUE(flat.is_cuda());
  EXPECT_DOUBLE_EQ(flat.sum().item<double>(), 15.0);
  EXPECT_DOUBLE_EQ(sync->mean(2.5), 2.5);
  EXPECT_TRUE(sync->any(true));
  FlowPtr flow = make_flow(build_flow_spec("realnvp", 2, BuilderOptions()));
  flow->to(at::kCUDA);
  sync->broadcast_parameters(*flow);
  EXPECT_TRUE(flow->parameters()[0].is_cuda());
}

TEST_F(ProcessGroup, UnknownBackend) {
  distributed::DistributedOptions options;
  options.backend = "mpi";
  zflow::testing::expect_error<ConfigError>(
      [&] { distributed::ProcessGroupSync::connect(rank_of(0, 2, free_port()), options); },
      {"unknown distributed backend 'mpi'"});
}

}  // namespace
