#include "zflow/nn/conv.h"

#include <cmath>

#include <array>
#include <utility>
#include <vector>

#include <ATen/ATen.h>
#include <torch/csrc/autograd/custom_function.h>

#include "zflow/core/kernels.h"
#include "zflow/core/reference_gradients.h"
#include "zflow/core/spec.h"

namespace zflow::nn {

namespace {

// PyTorch's default convolution initialisation: U(−1/√fan_in, 1/√fan_in) for the weights
// and the bias (kaiming_uniform with a = √5 reduces to this bound).
std::pair<Tensor, Tensor> default_init(int64_t out, int64_t in, int64_t kernel) {
  const double bound = 1.0 / std::sqrt(static_cast<double>(in * kernel * kernel));
  return {at::empty({out, in, kernel, kernel}).uniform_(-bound, bound),
          at::empty({out}).uniform_(-bound, bound)};
}

using torch::autograd::AutogradContext;
using torch::autograd::variable_list;

constexpr auto kChannelsLast = at::MemoryFormat::ChannelsLast;

/// The reference: plain ATen convolutions and ReLUs in the inputs' layout, differentiated by
/// autograd.
Tensor conv_net_reference(const Tensor& x, const std::array<Tensor, 6>& p) {
  Tensor h = at::relu(at::conv2d(x, p[0], p[1], 1, 1));
  h = at::relu(at::conv2d(h, p[2], p[3]));
  return at::conv2d(h, p[4], p[5], 1, 1);
}

/// ∂L/∂(input, weight, bias) of y = conv2d(input, weight, bias) with stride 1 and the
/// given padding, from ∂L/∂y; the input's gradient only when `input_grad`.
std::tuple<Tensor, Tensor, Tensor> conv_backward(const Tensor& grad, const Tensor& input,
                                                 const Tensor& weight, int64_t padding,
                                                 bool input_grad) {
  return at::convolution_backward(grad, input, weight, std::vector<int64_t>{weight.size(0)}, {1, 1},
                                  {padding, padding}, {1, 1}, false, {0, 0}, 1,
                                  {input_grad, true, true});
}

// The whole conditioner as one autograd node whose activations and gradients all stay
// channels-last (NHWC). oneDNN's convolutions and their backward passes run up to twice as
// fast on NHWC as on NCHW, but only when every operand has that layout: left to autograd,
// the gradient arriving from the NCHW couplings reaches the ReLUs' backward in the other
// layout than their saved outputs, and that mixed-layout element-wise pass alone was 20% of
// a Glow training step (docs/benchmarks.md, "Glow's convolutions"). The ReLUs run in place
// on the convolutions' outputs, and their backward reads the saved outputs (relu(z) > 0 iff
// z > 0), so nothing else is kept.
// Saved: the inputs as given (for second derivatives), x, h₁, h₂ (NHWC), then the six
// parameters.
struct ConvNetFunction : public torch::autograd::Function<ConvNetFunction> {
  static Tensor forward(AutogradContext* ctx, const Tensor& inputs, const Tensor& w1,
                        const Tensor& b1, const Tensor& w2, const Tensor& b2, const Tensor& w3,
                        const Tensor& b3) {
    const Tensor x = inputs.contiguous(kChannelsLast);
    Tensor h1 = at::conv2d(x, w1, b1, 1, 1);
    h1.relu_();
    Tensor h2 = at::conv2d(h1, w2, b2);
    h2.relu_();
    // The couplings split the parameters by channel and combine them with NCHW inputs.
    Tensor out = at::conv2d(h2, w3, b3, 1, 1).contiguous();
    ctx->save_for_backward({inputs, x, h1, h2, w1, b1, w2, b2, w3, b3});
    return out;
  }

  static variable_list backward(AutogradContext* ctx, variable_list grad_outputs) {
    const variable_list saved = ctx->get_saved_variables();
    const Tensor& x = saved[1];
    const Tensor& h1 = saved[2];
    const Tensor& h2 = saved[3];
    variable_list result(7);
    const Tensor& grad = grad_outputs[0];
    if (!grad.defined()) return result;
    if (at::GradMode::is_enabled()) {
      // create_graph: second derivatives through the reference's autograd graph.
      const std::array<Tensor, 6> p{saved[4], saved[5], saved[6], saved[7], saved[8], saved[9]};
      std::vector<Tensor> inputs{saved[0]};
      inputs.insert(inputs.end(), p.begin(), p.end());
      std::vector<bool> wanted;
      for (size_t i = 0; i < inputs.size(); ++i) wanted.push_back(ctx->needs_input_grad(i));
      const auto g =
          reference_gradients([&] { return std::vector<Tensor>{conv_net_reference(saved[0], p)}; },
                              {grad}, inputs, wanted);
      std::copy(g.begin(), g.end(), result.begin());
      return result;
    }
    auto [g2, gw3, gb3] =
        conv_backward(grad.contiguous(kChannelsLast), h2, saved[8], 1, /*input_grad=*/true);
    // ReLU's backward in place: g ← g · [h > 0].
    g2 = g2.contiguous(kChannelsLast);
    at::threshold_backward_out(g2, g2, h2, 0);
    auto [g1, gw2, gb2] = conv_backward(g2, h1, saved[6], 0, /*input_grad=*/true);
    g1 = g1.contiguous(kChannelsLast);
    at::threshold_backward_out(g1, g1, h1, 0);
    auto [gx, gw1, gb1] = conv_backward(g1, x, saved[4], 1, ctx->needs_input_grad(0));
    result = {gx.defined() ? gx.contiguous() : gx,
              std::move(gw1),
              std::move(gb1),
              std::move(gw2),
              std::move(gb2),
              std::move(gw3),
              std::move(gb3)};
    return result;
  }
};

}  // namespace

ConvNetImpl::ConvNetImpl(int64_t in_channels, int64_t out_channels, int64_t hidden_channels,
                         bool zero_init_last)
    : ConvNetImpl(ConvNetOptions(in_channels, out_channels)
                      .hidden_channels(hidden_channels)
                      .zero_init_last(zero_init_last)) {}

ConvNetImpl::ConvNetImpl(const ConvNetOptions& options)
    : in_channels_(options.in_channels()),
      out_channels_(options.out_channels()),
      hidden_channels_(options.hidden_channels()) {
  require_positive("conv conditioner: input channels", in_channels_);
  require_positive("conv conditioner: output channels", out_channels_);
  require_positive("conv conditioner: hidden channels", hidden_channels_);
  auto [w1, b1] = default_init(hidden_channels_, in_channels_, 3);
  auto [w2, b2] = default_init(hidden_channels_, hidden_channels_, 1);
  auto [w3, b3] = default_init(out_channels_, hidden_channels_, 3);
  if (options.zero_init_last()) {
    w3.zero_();
    b3.zero_();
  }
  weight1_ = register_parameter("weight1", w1);
  bias1_ = register_parameter("bias1", b1);
  weight2_ = register_parameter("weight2", w2);
  bias2_ = register_parameter("bias2", b2);
  weight3_ = register_parameter("weight3", w3);
  bias3_ = register_parameter("bias3", b3);
}

Tensor ConvNetImpl::forward(const Tensor& inputs) {
  TORCH_CHECK(inputs.dim() == 4 && inputs.size(1) == in_channels_,
              "conv conditioner: expected [B, ", in_channels_, ", H, W], got ", inputs.sizes());
  // The fused node is for float32 and float64 on the CPU and a CUDA GPU alike; the
  // reference is the same network differentiated by autograd (tests compare the two).
  if (fused_kernels()) {
    return ConvNetFunction::apply(inputs, weight1_, bias1_, weight2_, bias2_, weight3_, bias3_);
  }
  return conv_net_reference(inputs, {weight1_, bias1_, weight2_, bias2_, weight3_, bias3_});
}

Tensor ConvNetImpl::condition(const Tensor& inputs, const Tensor&) { return forward(inputs); }

void ConvNetImpl::pretty_print(std::ostream& stream) const {
  stream << "convnet(" << in_channels_ << " → " << hidden_channels_ << " → " << hidden_channels_
         << " → " << out_channels_ << ")";
}

ZeroConvImpl::ZeroConvImpl(int64_t in_channels, int64_t out_channels) {
  require_positive("zero conv: input channels", in_channels);
  require_positive("zero conv: output channels", out_channels);
  weight_ = register_parameter("weight", at::zeros({out_channels, in_channels, 3, 3}));
  bias_ = register_parameter("bias", at::zeros({out_channels}));
}

Tensor ZeroConvImpl::forward(const Tensor& inputs) {
  return at::conv2d(inputs, weight_, bias_, 1, 1);
}

ConditionerFactoryPtr conv_conditioner(const ConvNetOptions& options) {
  return conditioner_factory(
      [options](int64_t in, int64_t out, int64_t) -> ConditionerPtr {
        return std::make_shared<ConvNetImpl>(
            ConvNetOptions(options).in_channels(in).out_channels(out));
      },
      {{"hidden", options.hidden_channels()}});
}

ConditionerFactoryPtr conv_conditioner_from_spec(const Json& spec) {
  ConvNetOptions options(0, 0);
  options.hidden_channels(spec_optional<int64_t>(spec, "hidden", options.hidden_channels()));
  return conv_conditioner(options);
}

}  // namespace zflow::nn
