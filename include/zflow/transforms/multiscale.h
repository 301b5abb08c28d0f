#pragma once
/// \file
/// The multi-scale architecture of RealNVP (Dinh et al. 2017, §3.6) with Glow's learned
/// prior for the factored-out channels (Kingma & Dhariwal 2018, §3 and their code's
/// split2d). Level i runs its transform (typically squeeze, then flow steps); after every
/// level but the last, half of the channels are factored out: the first ⌊C/2⌋ channels h
/// go on to the next level, the other ones y are modelled by N(μ(h), σ(h)²) with μ and
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

#include <cstdint>
#include <vector>

#include "zflow/core/transform.h"
#include "zflow/nn/conv.h"

namespace zflow {

class MultiscaleImpl : public TransformImpl {
 public:
  /// `shape` is the event shape [C, H, W] of the inputs; `levels` are applied in order;
  /// `scale_bound` b bounds the learned priors' log σ softly, log σ = b·tanh(ŝ/b).
  MultiscaleImpl(std::vector<int64_t> shape, std::vector<TransformPtr> levels,
                 double scale_bound = 3.0);

  Json spec() const override;
  std::string describe() const override;
  bool has_inverse() const override;

  /// Number of levels.
  size_t levels() const { return levels_.size(); }
  /// The event shapes of the latent parts: factored-out parts of levels 0 … L−2, then the
  /// last level's output.
  const std::vector<std::vector<int64_t>>& latent_shapes() const { return latent_shapes_; }
  /// z [B, C, H, W] → its parts [B, latent_shapes()[i]...].
  std::vector<Tensor> split_latent(const Tensor& z) const;
  /// The converse of split_latent.
  Tensor join_latent(const std::vector<Tensor>& parts) const;

 protected:
  TransformOutput forward_impl(const Tensor& inputs, const Tensor& context) override;
  TransformOutput inverse_impl(const Tensor& inputs, const Tensor& context) override;

 private:
  void check(const Tensor& inputs) const;
  std::vector<int64_t> shape_;
  std::vector<TransformPtr> levels_;
  std::vector<nn::ZeroConv> priors_;
  double scale_bound_;
  std::vector<std::vector<int64_t>> latent_shapes_;
};
TORCH_MODULE(Multiscale);

}  // namespace zflow
