#pragma once
/// \file
/// The multi-scale architecture of RealNVP (Dinh, Sohl-Dickstein & Bengio 2017, §3.6,
/// https://arxiv.org/abs/1605.08803) with Glow's learned prior for the factored-out
/// channels (Kingma & Dhariwal 2018, §3 and their code's split2d,
/// https://arxiv.org/abs/1807.03039). Level i runs its transform (typically squeeze, then flow
/// steps); after every level but the last, half of the channels are factored out: the first ⌊C/2⌋
/// channels h go on to the next level, the other ones y are modelled by N(μ(h), σ(h)²) with μ and
/// log σ from a zero-initialised 3×3 convolution of h.
///
/// To keep "transform + standard normal base" exact, the learned Gaussian is written as a
/// conditional affine map of y, ε = (y − μ(h)) / σ(h), whose log|det J| = −Σ log σ is
/// counted with the layers': then ε ~ N(0, I) is the same model. Temperature sampling
/// (ε ~ N(0, T²I)) gives y = μ + T·σ·ε' exactly as Glow's.
///
/// The output z has the inputs' shape: the factored-out parts of levels 0, 1, …, then the
/// last level's output, each flattened and concatenated, viewed as [B, C, H, W].
/// split_latent() returns the parts in their own shapes and join_latent() reassembles
/// them, so encode → edit parts → decode is exact.
///
/// Class-conditional prior (Kingma & Dhariwal 2018, their code's `prior` with `learntop`
/// and `ycond`): with context_features K > 0 the context c [B, K] (the one-hot
/// class y for a class-conditional image model) sets the Gaussian of the last level's
/// output h_L, per channel,
///
///     (μ(c), ŝ(c)) = W c + b,   log σ(c) = b_s·tanh(ŝ(c)/b_s),   ε = (h_L − μ(c)) / σ(c),
///
/// with log|det| = −H_L·W_L·Σ_channels log σ(c), W and b zero-initialised, so that the
/// model starts as with N(0, I). With one-hot c, column y of W (plus b) holds class y's
/// mean and log-scale: log p(x | y) is the density of a flow whose top latent is
/// N(μ_y, σ_y²), and p(y | x) ∝ p(x | y) p(y) classifies. With `split_context` the learned
/// priors of the factored-out parts get the same per-channel term added to their
/// convolution's output, (μ, ŝ) = conv(h) + W_i c + b_i. Without a context (K = 0) nothing
/// changes: the last level's output is the latent as it is.

/// Example:
///
///     std::vector<zflow::TransformPtr> levels = {
///         zflow::make_transform({{"type", "squeeze"}}),   // [1, 8, 8] → [4, 4, 4]
///         zflow::make_transform({{"type", "squeeze"}})};  // [2, 4, 4] → [8, 2, 2]
///     auto ms = zflow::Multiscale(zflow::MultiscaleOptions({1, 8, 8}, levels));
///     auto [z, logabsdet] = ms->forward(at::rand({5, 1, 8, 8}));  // z [5, 1, 8, 8]
///     auto parts = ms->split_latent(z);  // [5, 2, 4, 4] and [5, 8, 2, 2]

#include <cstdint>
#include <vector>

#include "zflow/core/transform.h"
#include "zflow/nn/conv.h"
#include "zflow/transforms/transformer.h"

namespace zflow {

/// Options of Multiscale ("multiscale").
struct MultiscaleOptions {
  MultiscaleOptions(std::vector<int64_t> shape, std::vector<TransformPtr> levels)
      : shape_(std::move(shape)), levels_(std::move(levels)) {}
  /// The event shape [C, H, W] of the inputs.
  TORCH_ARG(std::vector<int64_t>, shape);
  /// The levels, applied in order (at least one); each but the last must output at least 2
  /// channels.
  TORCH_ARG(std::vector<TransformPtr>, levels);
  /// Bound b of the learned priors' log σ, log σ = b·tanh(ŝ/b) (AffineTransformerOptions).
  TORCH_ARG(double, scale_bound) = AffineTransformerOptions().scale_bound();
  /// Size K of the context (0: none): a linear map of it sets the last level's Gaussian.
  TORCH_ARG(int64_t, context_features) = 0;
  /// With a context, whether the factored-out parts' priors get a linear term of it too.
  TORCH_ARG(bool, split_context) = false;
};

class MultiscaleImpl : public TransformImpl {
 public:
  explicit MultiscaleImpl(const MultiscaleOptions& options);

  Json spec() const override;
  std::string describe() const override;
  bool has_inverse() const override;

  /// Number of levels.
  size_t levels() const { return levels_.size(); }
  /// The event shapes of the latent parts: factored-out parts of levels 0 … L−2, then the
  /// last level's output.
  const std::vector<std::vector<int64_t>>& latent_shapes() const { return latent_shapes_; }
  /// Size K of the context (0: unconditional).
  int64_t context_features() const { return context_features_; }
  /// z [B, C, H, W] → its parts [B, latent_shapes()[i]...].
  std::vector<Tensor> split_latent(const Tensor& z) const;
  /// The converse of split_latent.
  Tensor join_latent(const std::vector<Tensor>& parts) const;

 protected:
  TransformOutput forward_impl(const Tensor& inputs, const Tensor& context) override;
  TransformOutput inverse_impl(const Tensor& inputs, const Tensor& context) override;

 private:
  void check(const Tensor& inputs) const;
  void check_context(const Tensor& context) const;
  /// The context's term of the Gaussian of latent part i, [B, 2·C_i, 1, 1] (undefined when
  /// that part has none).
  Tensor context_term(size_t i, const Tensor& context) const;
  /// Prior i's parameters [B, 2·C_i, H_i, W_i] from the kept channels h (split priors; h
  /// undefined for the last level's output).
  Tensor prior_params(size_t i, const Tensor& h, const Tensor& context, int64_t batch);
  std::vector<int64_t> shape_;
  std::vector<TransformPtr> levels_;
  std::vector<nn::ZeroConv> priors_;
  int64_t context_features_ = 0;
  bool split_context_ = false;
  /// Per latent part: the weight [2·C_i, K] and bias [2·C_i] of its context term, or
  /// undefined tensors where it has none.
  std::vector<Tensor> context_weights_;
  std::vector<Tensor> context_biases_;
  /// The learned priors as affine maps of the factored-out channels.
  AffineTransformer prior_;
  std::vector<std::vector<int64_t>> latent_shapes_;
};
TORCH_MODULE(Multiscale);

}  // namespace zflow
