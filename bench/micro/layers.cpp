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

#include "zflow/core/transform.h"
#include "zflow/flows/registry.h"
#include "zflow/nn/made.h"

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

void BM_affine_coupling_forward(benchmark::State& state) {
  const int64_t rows = state.range(0);
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

}  // namespace

// Rows: the training batch of the reference configurations, and the batch of their
// log_prob and sampling measurements.
BENCHMARK(BM_affine_coupling_forward)
    ->ArgName("rows")
    ->Arg(512)
    ->Arg(10000)
    ->Unit(benchmark::kMicrosecond);
BENCHMARK(BM_affine_coupling_forward_backward)
    ->ArgName("rows")
    ->Arg(512)
    ->Unit(benchmark::kMicrosecond);
BENCHMARK(BM_made_forward)->ArgName("rows")->Arg(512)->Arg(10000)->Unit(benchmark::kMicrosecond);
BENCHMARK(BM_made_forward_backward)->ArgName("rows")->Arg(512)->Unit(benchmark::kMicrosecond);
