// Micro-benchmarks of the stateless element-wise transformers (zflow::functional): the
// rational-quadratic spline and the affine transformer, float32 on the CPU, on
// [rows, 4] inputs (the 4 transformed features of a coupling on 8-dimensional data).
// Items per second count elements (rows × 4). Each spline benchmark comes twice: the public
// function (the fused CPU kernel) and BM_spline_reference_* for the plain-ATen reference it
// replaced (rational_quadratic_spline_reference), so that one run measures both. The
// forward + backward variants time the forward pass with autograd recording, then the
// backward pass of sum(outputs) + sum(logabsdet) down to the inputs and the parameters: the
// element-wise work of one training step.
// Inputs and parameters are made before the timed loop, and one untimed call precedes it:
// the first call grows the heap and faults its pages in (main.cpp keeps freed memory).

#include <ATen/ATen.h>
#include <benchmark/benchmark.h>

#include "zflow/functional/affine.h"
#include "zflow/functional/rational_quadratic.h"

namespace {

constexpr int64_t kFeatures = 4;
constexpr int64_t kBins = 8;
constexpr double kScaleBound = 3.0;

const zflow::functional::SplineOptions& spline_options() {
  static const zflow::functional::SplineOptions options = [] {
    zflow::functional::SplineOptions o;
    o.tail_bound = 3.0;
    return o;
  }();
  return options;
}

// Random raw spline parameters [rows, 4, 3K − 1] and inputs [rows, 4], N(0, 1) inputs
// (about 0.3 % of them beyond the tail bound of 3, on the identity tails).
struct SplineData {
  at::Tensor inputs;
  at::Tensor params;
};

SplineData make_spline_data(int64_t rows, bool requires_grad) {
  at::manual_seed(0);
  SplineData d;
  d.inputs = at::randn({rows, kFeatures});
  d.params = at::randn({rows, kFeatures, zflow::functional::spline_param_count(kBins)}) * 0.5;
  d.inputs.requires_grad_(requires_grad);
  d.params.requires_grad_(requires_grad);
  return d;
}

void set_items(benchmark::State& state, int64_t rows) {
  state.SetItemsProcessed(state.iterations() * rows * kFeatures);
}

// Leaf gradients are dropped after each backward pass so that the next one writes fresh
// ones instead of accumulating (the set_to_none of an optimizer's zero_grad).
void clear_grad(const at::Tensor& leaf) { leaf.mutable_grad() = at::Tensor(); }

using SplineFunction = zflow::functional::SplineResult (*)(const at::Tensor&, const at::Tensor&,
                                                           bool,
                                                           const zflow::functional::SplineOptions&);

void spline_values(benchmark::State& state, SplineFunction spline, bool inverse) {
  const int64_t rows = state.range(0);
  const SplineData d = make_spline_data(rows, false);
  at::NoGradGuard no_grad;
  auto step = [&] {
    auto r = spline(d.inputs, d.params, inverse, spline_options());
    benchmark::DoNotOptimize(r.outputs.data_ptr());
    benchmark::DoNotOptimize(r.logabsdet.data_ptr());
  };
  step();  // warm-up, untimed
  for (auto _ : state) step();
  set_items(state, rows);
}

void spline_forward_backward(benchmark::State& state, SplineFunction spline) {
  const int64_t rows = state.range(0);
  const SplineData d = make_spline_data(rows, true);
  auto step = [&] {
    auto r = spline(d.inputs, d.params, false, spline_options());
    (r.outputs.sum() + r.logabsdet.sum()).backward();
    benchmark::DoNotOptimize(d.inputs.grad().data_ptr());
    benchmark::DoNotOptimize(d.params.grad().data_ptr());
    clear_grad(d.inputs);
    clear_grad(d.params);
  };
  step();  // warm-up, untimed
  for (auto _ : state) step();
  set_items(state, rows);
}

constexpr SplineFunction kFused = zflow::functional::rational_quadratic_spline;
constexpr SplineFunction kReference = zflow::functional::rational_quadratic_spline_reference;

void BM_spline_forward(benchmark::State& state) { spline_values(state, kFused, false); }
void BM_spline_reference_forward(benchmark::State& state) {
  spline_values(state, kReference, false);
}
void BM_spline_inverse(benchmark::State& state) { spline_values(state, kFused, true); }
void BM_spline_reference_inverse(benchmark::State& state) {
  spline_values(state, kReference, true);
}
void BM_spline_forward_backward(benchmark::State& state) { spline_forward_backward(state, kFused); }
void BM_spline_reference_forward_backward(benchmark::State& state) {
  spline_forward_backward(state, kReference);
}

// Affine transformer: inputs, shift and raw log-scale, each [rows, 4].
struct AffineData {
  at::Tensor inputs;
  at::Tensor shift;
  at::Tensor raw_log_scale;
};

AffineData make_affine_data(int64_t rows, bool requires_grad) {
  at::manual_seed(0);
  AffineData d;
  d.inputs = at::randn({rows, kFeatures});
  d.shift = at::randn({rows, kFeatures}) * 0.5;
  d.raw_log_scale = at::randn({rows, kFeatures}) * 0.5;
  for (const at::Tensor* t : {&d.inputs, &d.shift, &d.raw_log_scale}) {
    t->requires_grad_(requires_grad);
  }
  return d;
}

void BM_affine_forward(benchmark::State& state) {
  const int64_t rows = state.range(0);
  const AffineData d = make_affine_data(rows, false);
  at::NoGradGuard no_grad;
  auto step = [&] {
    auto r = zflow::functional::affine(d.inputs, d.shift, d.raw_log_scale, kScaleBound, false);
    benchmark::DoNotOptimize(r.outputs.data_ptr());
    benchmark::DoNotOptimize(r.logabsdet.data_ptr());
  };
  step();  // warm-up, untimed
  for (auto _ : state) step();
  set_items(state, rows);
}

void BM_affine_forward_backward(benchmark::State& state) {
  const int64_t rows = state.range(0);
  const AffineData d = make_affine_data(rows, true);
  auto step = [&] {
    auto r = zflow::functional::affine(d.inputs, d.shift, d.raw_log_scale, kScaleBound, false);
    (r.outputs.sum() + r.logabsdet.sum()).backward();
    for (const at::Tensor* t : {&d.inputs, &d.shift, &d.raw_log_scale}) {
      benchmark::DoNotOptimize(t->grad().data_ptr());
      clear_grad(*t);
    }
  };
  step();  // warm-up, untimed
  for (auto _ : state) step();
  set_items(state, rows);
}

// The packed form of couplings and MAF: inputs [rows, 4], params [rows, 4, 2] (shift, raw
// log-scale), logabsdet summed per row; the fused pass (affine_packed) against its
// reference (affine_packed_reference).
void affine_packed_case(benchmark::State& state, bool fused, bool backward) {
  const int64_t rows = state.range(0);
  at::manual_seed(0);
  const at::Tensor x = at::randn({rows, kFeatures}).requires_grad_(backward);
  const at::Tensor params = (at::randn({rows, kFeatures, 2}) * 0.5).requires_grad_(backward);
  auto run = [&] {
    return fused ? zflow::functional::affine_packed(x, params, kScaleBound, false)
                 : zflow::functional::affine_packed_reference(x, params, kScaleBound, false);
  };
  auto step = [&] {
    if (!backward) {
      at::NoGradGuard no_grad;
      auto r = run();
      benchmark::DoNotOptimize(r.outputs.data_ptr());
      return;
    }
    auto r = run();
    (r.outputs.sum() + r.logabsdet.sum()).backward();
    benchmark::DoNotOptimize(params.grad().data_ptr());
    clear_grad(x);
    clear_grad(params);
  };
  step();  // warm-up, untimed
  for (auto _ : state) step();
  set_items(state, rows);
}

void BM_affine_packed_forward(benchmark::State& state) { affine_packed_case(state, true, false); }
void BM_affine_packed_reference_forward(benchmark::State& state) {
  affine_packed_case(state, false, false);
}
void BM_affine_packed_forward_backward(benchmark::State& state) {
  affine_packed_case(state, true, true);
}
void BM_affine_packed_reference_forward_backward(benchmark::State& state) {
  affine_packed_case(state, false, true);
}

// Rows: a training batch, and a batch large enough that the per-operation overhead of
// LibTorch no longer dominates.
void rows_args(benchmark::internal::Benchmark* b) {
  b->ArgName("rows")->Arg(512)->Arg(65536)->Unit(benchmark::kMicrosecond);
}

}  // namespace

BENCHMARK(BM_spline_forward)->Apply(rows_args);
BENCHMARK(BM_spline_reference_forward)->Apply(rows_args);
BENCHMARK(BM_spline_inverse)->Apply(rows_args);
BENCHMARK(BM_spline_reference_inverse)->Apply(rows_args);
BENCHMARK(BM_spline_forward_backward)->Apply(rows_args);
BENCHMARK(BM_spline_reference_forward_backward)->Apply(rows_args);
BENCHMARK(BM_affine_forward)->Apply(rows_args);
BENCHMARK(BM_affine_forward_backward)->Apply(rows_args);
BENCHMARK(BM_affine_packed_forward)->Apply(rows_args);
BENCHMARK(BM_affine_packed_reference_forward)->Apply(rows_args);
BENCHMARK(BM_affine_packed_forward_backward)->Apply(rows_args);
BENCHMARK(BM_affine_packed_reference_forward_backward)->Apply(rows_args);
