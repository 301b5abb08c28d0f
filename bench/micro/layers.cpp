// Micro-benchmarks of whole layers with their conditioners, float32 on the CPU, with the
// sizes of the reference configurations of docs/benchmarks.md: an affine coupling on 8
// features (MLP conditioner 4 → 128 → 128 → 8, ReLU) and a MADE 8 → 128 → 128 → 16
// (ReLU). Items per second count samples (rows). Parameters are drawn N(0, 0.5²) (the
// coupling's conditioner would otherwise start at zero). The forward + backward variants
// time the forward pass with autograd recording and the backward pass of
// sum(outputs) + sum(logabsdet) (MADE: sum of its outputs) down to every parameter and to
// the inputs, as for a layer in the middle of a flow.
// Inputs and parameters are made before the timed loop, and one untimed call precedes it:
// the first call grows the heap and faults its pages in (main.cpp keeps freed memory).

#include <ATen/ATen.h>
#include <benchmark/benchmark.h>
#include <torch/nn/module.h>

#include "zflow/core/kernels.h"
#include "zflow/core/transform.h"
#include "zflow/flows/registry.h"
#include "zflow/nn/conv.h"
#include "zflow/nn/made.h"
#include "zflow/nn/mlp.h"

namespace {

constexpr int64_t kFeatures = 8;

void randomize_parameters(torch::nn::Module& module) {
  at::NoGradGuard no_grad;
  for (auto& p : module.parameters()) p.copy_(at::randn(p.sizes(), p.options()) * 0.5);
}

zflow::TransformPtr make_coupling() {
  at::manual_seed(0);
  zflow::TransformPtr layer = zflow::make_transform(zflow::Json::parse(R"({
    "type": "affine_coupling",
    "mask": [1, 1, 1, 1, 0, 0, 0, 0],
    "conditioner": {"type": "mlp", "hidden": 128, "layers": 2, "activation": "relu"}
  })"));
  randomize_parameters(*layer);
  return layer;
}

zflow::nn::MADE make_made() {
  at::manual_seed(0);
  zflow::nn::MADE made(zflow::nn::MADEOptions(kFeatures, 2).hidden({128, 128}));
  randomize_parameters(*made);
  return made;
}

at::Tensor make_inputs(int64_t rows, bool requires_grad) {
  at::manual_seed(1);
  return at::randn({rows, kFeatures}).requires_grad_(requires_grad);
}

void set_items(benchmark::State& state, int64_t rows) {
  state.SetItemsProcessed(state.iterations() * rows);
}

// The benchmark's second argument: 1 = zflow's fused kernels (hand-written conditioner
// backward, fused affine transformer), 0 = the plain-LibTorch references.
struct KernelChoice {
  explicit KernelChoice(int64_t fused) { zflow::use_fused_kernels(fused != 0); }
  ~KernelChoice() { zflow::use_fused_kernels(true); }
  KernelChoice(const KernelChoice&) = delete;
  KernelChoice& operator=(const KernelChoice&) = delete;
};

// The coupling's conditioner alone: MLP 4 → 128 → 128 → 8 (ReLU), forward and backward of
// the sum of its outputs down to the weights and the inputs.
void BM_mlp_forward_backward(benchmark::State& state) {
  const int64_t rows = state.range(0);
  const KernelChoice choice(state.range(1));
  at::manual_seed(0);
  zflow::nn::MLP mlp(zflow::nn::MLPOptions(4, 8).hidden_features(128).num_layers(2));
  randomize_parameters(*mlp);
  const at::Tensor x = at::randn({rows, 4}).requires_grad_(true);
  auto step = [&] {
    mlp->forward(x).sum().backward();
    benchmark::DoNotOptimize(x.grad().data_ptr());
    x.mutable_grad() = at::Tensor();
    mlp->zero_grad(/*set_to_none=*/true);
  };
  step();  // warm-up, untimed
  for (auto _ : state) step();
  set_items(state, rows);
}

void BM_affine_coupling_forward(benchmark::State& state) {
  const int64_t rows = state.range(0);
  const KernelChoice choice(state.range(1));
  const zflow::TransformPtr layer = make_coupling();
  const at::Tensor x = make_inputs(rows, false);
  at::NoGradGuard no_grad;
  auto step = [&] {
    auto out = layer->forward(x);
    benchmark::DoNotOptimize(out.outputs.data_ptr());
    benchmark::DoNotOptimize(out.logabsdet.data_ptr());
  };
  step();  // warm-up, untimed
  for (auto _ : state) step();
  set_items(state, rows);
}

void BM_affine_coupling_forward_backward(benchmark::State& state) {
  const int64_t rows = state.range(0);
  const KernelChoice choice(state.range(1));
  const zflow::TransformPtr layer = make_coupling();
  const at::Tensor x = make_inputs(rows, true);
  auto step = [&] {
    auto out = layer->forward(x);
    (out.outputs.sum() + out.logabsdet.sum()).backward();
    benchmark::DoNotOptimize(x.grad().data_ptr());
    x.mutable_grad() = at::Tensor();
    layer->zero_grad(/*set_to_none=*/true);
  };
  step();  // warm-up, untimed
  for (auto _ : state) step();
  set_items(state, rows);
}

void BM_made_forward(benchmark::State& state) {
  const int64_t rows = state.range(0);
  const KernelChoice choice(state.range(1));
  zflow::nn::MADE made = make_made();
  const at::Tensor x = make_inputs(rows, false);
  at::NoGradGuard no_grad;
  auto step = [&] {
    at::Tensor params = made->forward(x);
    benchmark::DoNotOptimize(params.data_ptr());
  };
  step();  // warm-up, untimed
  for (auto _ : state) step();
  set_items(state, rows);
}

void BM_made_forward_backward(benchmark::State& state) {
  const int64_t rows = state.range(0);
  const KernelChoice choice(state.range(1));
  zflow::nn::MADE made = make_made();
  const at::Tensor x = make_inputs(rows, true);
  auto step = [&] {
    made->forward(x).sum().backward();
    benchmark::DoNotOptimize(x.grad().data_ptr());
    x.mutable_grad() = at::Tensor();
    made->zero_grad(/*set_to_none=*/true);
  };
  step();  // warm-up, untimed
  for (auto _ : state) step();
  set_items(state, rows);
}

// One float32 product [M, K] · [K, N] (at::mm_out into a preallocated result), reported as
// FLOP/s (2·M·K·N per product): the conditioners' products at their own small shapes, to
// compare with the 1024³ rate that defines zflow bench's floor.
void BM_matmul(benchmark::State& state) {
  const int64_t m = state.range(0), k = state.range(1), n = state.range(2);
  at::manual_seed(0);
  const at::Tensor a = at::randn({m, k});
  const at::Tensor b = at::randn({k, n});
  at::Tensor c = at::empty({m, n});
  at::mm_out(c, a, b);  // warm-up, untimed
  for (auto _ : state) {
    at::mm_out(c, a, b);
    benchmark::DoNotOptimize(c.data_ptr());
  }
  state.counters["FLOP/s"] = benchmark::Counter(
      2.0 * static_cast<double>(m * k * n) * static_cast<double>(state.iterations()),
      benchmark::Counter::kIsRate);
}

// One 3×3 or 1×1 convolution of the Glow benchmark's conditioners (zflow bench --config
// glow: batch 64, 14×14 or 7×7 images) in channels-last layout, as the fused conv conditioner
// runs it: the forward and the backward to the input and the weights, through the
// convolution that LibTorch picks (oneDNN here). Reported as FLOP/s at 6 per multiply-add,
// the count of the glow floor.
void BM_conv2d_forward_backward(benchmark::State& state) {
  const int64_t in = state.range(0), out = state.range(1), k = state.range(2);
  const int64_t side = state.range(3), batch = 64;
  at::manual_seed(0);
  const auto channels_last = at::MemoryFormat::ChannelsLast;
  const at::Tensor x = at::randn({batch, in, side, side}).contiguous(channels_last);
  const at::Tensor w = at::randn({out, in, k, k}).contiguous(channels_last);
  const at::Tensor g = at::randn({batch, out, side, side}).contiguous(channels_last);
  const std::vector<int64_t> stride{1, 1}, padding{k / 2, k / 2}, dilation{1, 1}, none{0, 0};
  auto step = [&] {
    const at::Tensor y = at::convolution(x, w, {}, stride, padding, dilation, false, none, 1);
    const auto grads = at::convolution_backward(g, x, w, c10::nullopt, stride, padding, dilation,
                                                false, none, 1, {true, true, false});
    benchmark::DoNotOptimize(y.data_ptr());
    benchmark::DoNotOptimize(std::get<0>(grads).data_ptr());
  };
  step();  // warm-up, untimed
  for (auto _ : state) step();
  const double macs = static_cast<double>(batch * side * side * out * in * k * k);
  state.counters["FLOP/s"] = benchmark::Counter(
      6.0 * macs * static_cast<double>(state.iterations()), benchmark::Counter::kIsRate);
}

// The Glow benchmark's level-1 conditioner (nn::ConvNet 2 → 64 → 64 → 4 on 14×14 images,
// batch 64), forward and backward to the inputs and the parameters: the fused node (1) or
// the reference, autograd through NCHW convolutions (0). FLOP/s at 6 per multiply-add.
void BM_convnet_forward_backward(benchmark::State& state) {
  const KernelChoice kernels(state.range(0));
  at::manual_seed(0);
  zflow::nn::ConvNet net(2, 4, 64, /*zero_init_last=*/false);
  const at::Tensor x = at::randn({64, 2, 14, 14}).requires_grad_(true);
  auto step = [&] {
    net->forward(x).sum().backward();
    benchmark::DoNotOptimize(x.grad().data_ptr());
    x.mutable_grad() = at::Tensor();
    net->zero_grad(/*set_to_none=*/true);
  };
  step();  // warm-up, untimed
  for (auto _ : state) step();
  const double macs = 64.0 * 196.0 * (2 * 64 * 9 + 64 * 64 + 64 * 4 * 9);
  state.counters["FLOP/s"] = benchmark::Counter(
      6.0 * macs * static_cast<double>(state.iterations()), benchmark::Counter::kIsRate);
}

}  // namespace

// The products of one training step of an MLP conditioner 4 → 128 → 128 → 8 at batch 512:
// forward h·Wᵀ, backward gᵀ·h (weight gradients, K = 512) and g·W (input gradients); then
// the 1024³ product of the floor.
BENCHMARK(BM_matmul)
    ->ArgNames({"M", "K", "N"})
    ->Args({512, 4, 128})
    ->Args({512, 128, 128})
    ->Args({512, 128, 8})
    ->Args({128, 512, 4})
    ->Args({128, 512, 128})
    ->Args({8, 512, 128})
    ->Args({512, 128, 4})
    ->Args({512, 8, 128})
    ->Args({1024, 1024, 1024})
    ->Unit(benchmark::kMicrosecond);

// The products a convolution of the glow benchmark becomes when written as matrix
// products (P = 64·14·14 = 12544 pixels): a 3×3 convolution 2 → 64 by im2col (forward
// [P, 18]·[18, 64], weight gradient [18, P]·[P, 64], input gradient [P, 64]·[64, 18]); the
// 64 → 64 1×1 ([P, 64]·[64, 64] and [64, P]·[P, 64]); a 3×3 convolution 64 → 4 as one
// product into the 9 taps' outputs followed by shifted sums ([P, 64]·[64, 36], input
// gradient [P, 36]·[36, 64], weight gradient [36, P]·[P, 64]). They bound what any
// convolution built on the BLAS can reach at these shapes (docs/benchmarks.md).
BENCHMARK(BM_matmul)
    ->Name("BM_matmul_glow_shapes")
    ->ArgNames({"M", "K", "N"})
    ->Args({12544, 18, 64})
    ->Args({18, 12544, 64})
    ->Args({12544, 64, 18})
    ->Args({12544, 64, 64})
    ->Args({64, 12544, 64})
    ->Args({12544, 64, 36})
    ->Args({12544, 36, 64})
    ->Args({36, 12544, 64})
    ->Unit(benchmark::kMicrosecond);

BENCHMARK(BM_convnet_forward_backward)
    ->ArgNames({"fused"})
    ->Arg(1)
    ->Arg(0)
    ->Unit(benchmark::kMicrosecond);

// The conditioner's convolutions of the glow benchmark: level 1 (14×14: 2 → 64 3×3,
// 64 → 64 1×1, 64 → 4 3×3) and level 2 (7×7: 4 → 64, 64 → 64, 64 → 8).
BENCHMARK(BM_conv2d_forward_backward)
    ->ArgNames({"in", "out", "k", "side"})
    ->Args({2, 64, 3, 14})
    ->Args({64, 64, 1, 14})
    ->Args({64, 4, 3, 14})
    ->Args({4, 64, 3, 7})
    ->Args({64, 64, 1, 7})
    ->Args({64, 8, 3, 7})
    ->Unit(benchmark::kMicrosecond);

// Rows: the training batch of the reference configurations, and the batch of their
// log_prob and sampling measurements; fused kernels (1) or the references (0).
BENCHMARK(BM_affine_coupling_forward)
    ->ArgNames({"rows", "fused"})
    ->ArgsProduct({{512, 10000}, {1, 0}})
    ->Unit(benchmark::kMicrosecond);
BENCHMARK(BM_affine_coupling_forward_backward)
    ->ArgNames({"rows", "fused"})
    ->ArgsProduct({{512}, {1, 0}})
    ->Unit(benchmark::kMicrosecond);
BENCHMARK(BM_mlp_forward_backward)
    ->ArgNames({"rows", "fused"})
    ->ArgsProduct({{512}, {1, 0}})
    ->Unit(benchmark::kMicrosecond);
BENCHMARK(BM_made_forward)
    ->ArgNames({"rows", "fused"})
    ->ArgsProduct({{512, 10000}, {1, 0}})
    ->Unit(benchmark::kMicrosecond);
BENCHMARK(BM_made_forward_backward)
    ->ArgNames({"rows", "fused"})
    ->ArgsProduct({{512}, {1, 0}})
    ->Unit(benchmark::kMicrosecond);
