#pragma once
/// \file
/// A small convolutional U-Net velocity field v_θ(t, x, c) for images [B, C, H, W], the
/// network of image continuous flows and flow matching (nn/velocity.h). It is the U-Net of
/// Ronneberger, Fischer & Brox 2015 (https://arxiv.org/abs/1505.04597) with the time
/// conditioning of Ho, Jain & Abbeel 2020's DDPM (https://arxiv.org/abs/2006.11239):
///
///     e   = W₂ silu(W₁ τ(t) + b₁) + b₂ [+ W_c c + b_c]          time (and context) embedding
///     h   = conv₃ₓ₃(x)                                         C → hidden
///     per level l = 0…L−1 (width w_l = hidden·2^l, level 0 = hidden):
///       `blocks` residual blocks, then (l < L−1) keep h as the skip s_l and
///       downsample by a stride-2 3×3 conv with padding 1 (H → ⌈H/2⌉: 28 → 14, 7 → 4)
///     per level l = L−2…0:
///       h = [nearest-upsample(h) to the size of s_l, s_l]; `blocks` residual blocks → w_l
///     v   = conv₃ₓ₃(silu(GroupNorm(h)))                        hidden → C, zero at first
///
/// with the residual block (channels a → b)
///
///     r = conv₃ₓ₃(silu(GroupNorm(h))) + W_e silu(e) + b_e       (the embedding per channel)
///     r = conv₃ₓ₃(silu(GroupNorm(r)))
///     h ← skip(h) + r,   skip = 1×1 conv when a ≠ b, else the identity.
///
/// τ(t) are the time features of the spec's "time_embedding" (nn/velocity.h); the embedding
/// e has 4·hidden features. GroupNorm uses min(groups, channels) groups, or the greatest
/// common divisor of that and the channels when it does not divide them. Normalisation is
/// per sample (no batch statistics): row b of v depends on row b of x only, as the trace
/// estimators of continuous flows need. The last convolution starts at zero, so the field
/// starts at v = 0 (the flow starts as the identity). Any spatial size H, W ≥ 1 works.
///
/// Spec (defaults): {"type": "unet", "hidden": 32, "levels": 2, "blocks": 1,
///                   "time_embedding": "sinusoidal", "embedding_size": 32, "groups": 8}.
/// For 1×28×28 images (Fashion-MNIST) without context this default has 163,937 parameters
/// (28×28 at 32 channels, 14×14 at 64).
///
/// Example:
///
///     zflow::nn::VelocityUNetImpl v({{"hidden", 32}, {"levels", 2}}, {1, 28, 28}, 10);
///     at::Tensor dx = v.forward(at::rand({8}), at::randn({8, 1, 28, 28}),
///                               at::one_hot(at::randint(10, {8}), 10).to(at::kFloat));
///     // dx: [8, 1, 28, 28], zero before training

#include <cstdint>
#include <ostream>
#include <string>
#include <vector>

#include <torch/nn/modules/container/modulelist.h>
#include <torch/nn/modules/conv.h>
#include <torch/nn/modules/linear.h>
#include <torch/nn/modules/normalization.h>

#include "zflow/core/spec.h"
#include "zflow/nn/velocity.h"

namespace zflow::nn {

/// The U-Net velocity field on [B, C, H, W] (see the file comment).
class VelocityUNetImpl : public VelocityFieldImpl {
 public:
  /// `spec` as above ("type" may be absent); `shape` the event shape [C, H, W];
  /// `context_features` the size K of the context (0: none). ConfigError for a bad spec.
  VelocityUNetImpl(const Json& spec, const std::vector<int64_t>& shape, int64_t context_features);
  /// t [B], x [B, C, H, W] (any H, W ≥ 1), context [B, K] (ignored when K = 0)
  /// → [B, C, H, W].
  Tensor forward(const Tensor& t, const Tensor& x, const Tensor& context) override;
  /// The full spec, defaults included.
  Json spec() const override;
  void pretty_print(std::ostream& stream) const override;

  int64_t hidden() const { return hidden_; }
  int64_t levels() const { return levels_; }
  int64_t blocks() const { return blocks_; }

 private:
  /// The embedding e of t and the context, [B, 4·hidden].
  Tensor embed(const Tensor& t, const Tensor& context, int64_t batch);

  std::vector<int64_t> shape_;
  int64_t context_features_;
  int64_t hidden_;
  int64_t levels_;
  int64_t blocks_;
  std::string time_embedding_;
  int64_t embedding_size_;
  int64_t groups_;

  torch::nn::Linear time_in_{nullptr}, time_out_{nullptr}, context_{nullptr};
  torch::nn::Conv2d input_{nullptr}, output_{nullptr};
  torch::nn::GroupNorm output_norm_{nullptr};
  /// Residual blocks of the way down (levels·blocks, level 0 first) and up (level L−2
  /// first); the stride-2 convolutions between levels (levels − 1).
  torch::nn::ModuleList down_{nullptr}, up_{nullptr}, downsample_{nullptr};
};

/// The number of GroupNorm groups of `channels` channels: min(groups, channels), or the
/// greatest common divisor of that and `channels` when it does not divide them.
int64_t group_count(int64_t groups, int64_t channels);

}  // namespace zflow::nn
