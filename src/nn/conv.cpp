#include "zflow/nn/conv.h"

#include <cmath>

#include <ATen/ATen.h>

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
  Tensor h = at::relu(at::conv2d(inputs, weight1_, bias1_, 1, 1));
  h = at::relu(at::conv2d(h, weight2_, bias2_));
  return at::conv2d(h, weight3_, bias3_, 1, 1);
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
