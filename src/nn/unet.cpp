#include "zflow/nn/unet.h"

#include <algorithm>
#include <memory>
#include <numeric>
#include <ostream>

#include <ATen/ATen.h>
#include <torch/nn/init.h>

#include "zflow/core/error.h"

namespace zflow::nn {

namespace {

using torch::nn::Conv2d;
using torch::nn::Conv2dOptions;
using torch::nn::GroupNorm;
using torch::nn::GroupNormOptions;
using torch::nn::Linear;

Conv2d conv3x3(int64_t in, int64_t out, int64_t stride = 1) {
  return Conv2d(Conv2dOptions(in, out, 3).stride(stride).padding(1));
}

GroupNorm group_norm(int64_t groups, int64_t channels) {
  return GroupNorm(GroupNormOptions(group_count(groups, channels), channels));
}

/// h ↦ skip(h) + conv(silu(norm(conv(silu(norm(h))) + W_e silu(e) + b_e))), channels
/// in → out; `embedding` is silu(e) [B, E].
class ResidualBlockImpl : public torch::nn::Module {
 public:
  ResidualBlockImpl(int64_t in, int64_t out, int64_t embedding, int64_t groups)
      : in_(in), out_(out) {
    norm1_ = register_module("norm1", group_norm(groups, in));
    conv1_ = register_module("conv1", conv3x3(in, out));
    time_ = register_module("time", Linear(embedding, out));
    norm2_ = register_module("norm2", group_norm(groups, out));
    conv2_ = register_module("conv2", conv3x3(out, out));
    if (in != out) {
      skip_ = register_module("skip", Conv2d(Conv2dOptions(in, out, 1)));
    }
  }

  Tensor forward(const Tensor& h, const Tensor& embedding) {
    Tensor r = conv1_->forward(at::silu(norm1_->forward(h)));
    r = r + time_->forward(embedding).unsqueeze(-1).unsqueeze(-1);
    r = conv2_->forward(at::silu(norm2_->forward(r)));
    return (skip_ ? skip_->forward(h) : h) + r;
  }

  void pretty_print(std::ostream& stream) const override {
    stream << "ResidualBlock(" << in_ << " -> " << out_ << ")";
  }

 private:
  int64_t in_, out_;
  GroupNorm norm1_{nullptr}, norm2_{nullptr};
  Conv2d conv1_{nullptr}, conv2_{nullptr}, skip_{nullptr};
  Linear time_{nullptr};
};

Tensor run_block(const torch::nn::ModuleList& list, size_t index, const Tensor& h,
                 const Tensor& embedding) {
  return list->ptr<ResidualBlockImpl>(index)->forward(h, embedding);
}

/// Throws ConfigError unless `value` is positive, naming the unet's spec field.
int64_t positive_field(const Json& spec, const std::string& key, int64_t fallback) {
  const auto value = spec_optional<int64_t>(spec, key, fallback);
  require_positive("velocity field unet: " + key, value);
  return value;
}

}  // namespace

int64_t group_count(int64_t groups, int64_t channels) {
  require_positive("group norm: groups", groups);
  require_positive("group norm: channels", channels);
  const int64_t count = std::min(groups, channels);
  return channels % count == 0 ? count : std::gcd(count, channels);
}

VelocityUNetImpl::VelocityUNetImpl(const Json& spec, const std::vector<int64_t>& shape,
                                   int64_t context_features)
    : shape_(shape), context_features_(context_features) {
  const Json s = spec.is_null() ? Json::object() : spec;
  if (!s.is_object()) throw ConfigError("velocity field unet: the spec must be a JSON object");
  reject_unknown_fields(
      s, {"hidden", "levels", "blocks", "time_embedding", "embedding_size", "groups"});
  if (spec_optional<std::string>(s, "type", "unet") != "unet") {
    throw ConfigError("velocity field unet: got a spec of type '" + spec_type(s) + "'");
  }
  if (shape.size() != 3) {
    throw ConfigError("velocity field unet is for images [C, H, W], not events of shape " +
                      shape_string(shape));
  }
  for (const int64_t size : shape) require_positive("velocity field unet: image size", size);
  if (context_features < 0) throw ConfigError("velocity field unet: negative context size");
  hidden_ = positive_field(s, "hidden", 32);
  levels_ = positive_field(s, "levels", 2);
  blocks_ = positive_field(s, "blocks", 1);
  groups_ = positive_field(s, "groups", 8);
  time_embedding_ = spec_optional<std::string>(s, "time_embedding", "sinusoidal");
  embedding_size_ = spec_optional<int64_t>(s, "embedding_size", 32);
  const int64_t time_count = time_feature_count(time_embedding_, embedding_size_);
  if (levels_ > 16) throw ConfigError("velocity field unet: levels must be at most 16");

  const int64_t embedding = 4 * hidden_;
  time_in_ = register_module("time_in", Linear(time_count, embedding));
  time_out_ = register_module("time_out", Linear(embedding, embedding));
  if (context_features_ > 0) {
    context_ = register_module("context", Linear(context_features_, embedding));
  }
  const int64_t channels = shape_[0];
  input_ = register_module("input", conv3x3(channels, hidden_));
  down_ = register_module("down", torch::nn::ModuleList());
  downsample_ = register_module("downsample", torch::nn::ModuleList());
  up_ = register_module("up", torch::nn::ModuleList());
  std::vector<int64_t> widths;
  int64_t width = hidden_;
  for (int64_t level = 0; level < levels_; ++level) {
    widths.push_back(hidden_ << level);
    if (level > 0) downsample_->push_back(conv3x3(width, width, 2));
    for (int64_t b = 0; b < blocks_; ++b) {
      down_->push_back(
          std::make_shared<ResidualBlockImpl>(width, widths.back(), embedding, groups_));
      width = widths.back();
    }
  }
  for (int64_t level = levels_ - 2; level >= 0; --level) {
    width += widths[level];  // the skip is concatenated
    for (int64_t b = 0; b < blocks_; ++b) {
      up_->push_back(std::make_shared<ResidualBlockImpl>(width, widths[level], embedding, groups_));
      width = widths[level];
    }
  }
  output_norm_ = register_module("output_norm", group_norm(groups_, hidden_));
  output_ = register_module("output", conv3x3(hidden_, channels));
  torch::NoGradGuard no_grad;
  output_->weight.zero_();
  output_->bias.zero_();
}

Tensor VelocityUNetImpl::embed(const Tensor& t, const Tensor& context, int64_t batch) {
  TORCH_CHECK(t.dim() == 1 && t.size(0) == batch, "velocity field unet: t must be [", batch,
              "], got ", t.sizes());
  Tensor e = time_out_->forward(
      at::silu(time_in_->forward(time_features(t, time_embedding_, embedding_size_))));
  if (context_features_ > 0) {
    TORCH_CHECK(context.defined(), "velocity field unet: this field needs a context of size ",
                context_features_);
    TORCH_CHECK(
        context.dim() == 2 && context.size(0) == batch && context.size(1) == context_features_,
        "velocity field unet: context must be [", batch, ", ", context_features_, "], got ",
        context.sizes());
    e = e + context_->forward(context);
  }
  return at::silu(e);
}

Tensor VelocityUNetImpl::forward(const Tensor& t, const Tensor& x, const Tensor& context) {
  TORCH_CHECK(x.dim() == 4 && x.size(1) == shape_[0], "velocity field unet: x must be [B, ",
              shape_[0], ", H, W], got ", x.sizes());
  const Tensor e = embed(t, context, x.size(0));
  Tensor h = input_->forward(x);
  std::vector<Tensor> skips;
  size_t block = 0;
  for (int64_t level = 0; level < levels_; ++level) {
    if (level > 0) {
      skips.push_back(h);
      h = downsample_->ptr<torch::nn::Conv2dImpl>(level - 1)->forward(h);
    }
    for (int64_t b = 0; b < blocks_; ++b) h = run_block(down_, block++, h, e);
  }
  block = 0;
  for (int64_t level = levels_ - 2; level >= 0; --level) {
    const Tensor& skip = skips[level];
    h = at::upsample_nearest2d(h, {skip.size(2), skip.size(3)});
    h = at::cat({h, skip}, 1);
    for (int64_t b = 0; b < blocks_; ++b) h = run_block(up_, block++, h, e);
  }
  return output_->forward(at::silu(output_norm_->forward(h)));
}

Json VelocityUNetImpl::spec() const {
  return {{"type", "unet"},
          {"hidden", hidden_},
          {"levels", levels_},
          {"blocks", blocks_},
          {"time_embedding", time_embedding_},
          {"embedding_size", embedding_size_},
          {"groups", groups_}};
}

void VelocityUNetImpl::pretty_print(std::ostream& stream) const {
  stream << "VelocityUNet(" << shape_string(shape_) << " + t";
  if (context_features_ > 0) stream << " + " << context_features_ << " context";
  stream << ", hidden " << hidden_ << ", levels " << levels_ << ", blocks " << blocks_ << ", "
         << time_embedding_ << " time)";
}

}  // namespace zflow::nn
