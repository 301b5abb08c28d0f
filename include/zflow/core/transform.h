#pragma once
/// \file
/// The Transform interface and its two containers.
///
/// A transform is one invertible, differentiable map of a normalizing flow. By the change
/// of variables (Papamakarios et al. 2021, "Normalizing Flows for Probabilistic Modeling
/// and Inference", https://arxiv.org/abs/1912.02762), a flow with base density π and
/// f = f_K ∘ … ∘ f_1 has
///
///     log p(x | c) = log π(f(x | c) | c) + Σ_k log|det ∂f_k/∂x_{k−1}|,   x_0 = x,
///
/// so every layer returns its own log|det J| and CompositeTransform sums them.
///
/// Direction (docs/conventions.md): `forward` maps data x to noise z = f(x) and returns
/// log|det ∂f/∂x| per sample; `inverse` maps noise to data and returns log|det ∂f⁻¹/∂z|
/// (the negative of the forward's at the corresponding point). Inputs are [B, D] or
/// [B, C, H, W]; the context is [B, K] or an undefined tensor; logabsdet is always [B], in
/// the inputs' dtype and on their device.
///
/// Example (make_transform is declared in zflow/flows/registry.h):
///
///     zflow::CompositeTransform f(std::vector<zflow::TransformPtr>{
///         zflow::make_transform({{"type", "elementwise_affine"}, {"features", 2}}),
///         zflow::make_transform({{"type", "permutation"}, {"features", 2}})});
///     auto [z, logabsdet] = f->forward(torch::randn({128, 2}));  // [128, 2], [128]
///     auto [x, inverse_logabsdet] = f->inverse(z);  // x ≈ the inputs, −logabsdet

#include <memory>
#include <string>
#include <vector>

#include <torch/nn/module.h>
#include <torch/nn/modules/container/modulelist.h>

#include "zflow/core/spec.h"

namespace zflow {

using torch::Tensor;

/// What every transform returns: its outputs and log|det J| per sample.
struct TransformOutput {
  Tensor outputs;
  Tensor logabsdet;
};

/// Base class of every invertible map.
class TransformImpl : public torch::nn::Module {
 public:
  /// `type` is the registry name, also used by pretty_print.
  explicit TransformImpl(std::string type);

  /// Data → noise. Checks the contract (batch sizes, logabsdet shape) around forward_impl.
  TransformOutput forward(const Tensor& inputs, const Tensor& context = {});
  /// Noise → data. Throws NotInvertibleError when has_inverse() is false.
  TransformOutput inverse(const Tensor& inputs, const Tensor& context = {});

  /// forward() without the log-determinant, for encoding: layers whose log-determinant
  /// costs much more than their outputs (a continuous flow's Jacobian trace at every solver
  /// step) skip it. The outputs equal forward(inputs, context).outputs.
  Tensor forward_outputs(const Tensor& inputs, const Tensor& context = {});
  /// inverse() without the log-determinant, for sampling and decoding (as forward_outputs).
  Tensor inverse_outputs(const Tensor& inputs, const Tensor& context = {});

  /// Whether inverse() is available in closed form.
  virtual bool has_inverse() const { return true; }
  /// The registry name ("affine_coupling", ...).
  const std::string& type() const { return type_; }
  /// A JSON spec from which make_transform rebuilds this transform (weights aside).
  virtual Json spec() const = 0;
  /// One-line human description used by pretty_print and `zflow info`.
  virtual std::string describe() const;
  /// The event shape (sizes after the batch) of forward's outputs for inputs of event shape
  /// `input_shape`, and the converse for inverse. Only reshaping layers (squeeze) override
  /// these; every other transform keeps the shape.
  virtual std::vector<int64_t> forward_shape(const std::vector<int64_t>& input_shape) const {
    return input_shape;
  }
  virtual std::vector<int64_t> inverse_shape(const std::vector<int64_t>& output_shape) const {
    return output_shape;
  }

  void pretty_print(std::ostream& stream) const override;

 protected:
  virtual TransformOutput forward_impl(const Tensor& inputs, const Tensor& context) = 0;
  /// Default: throws NotInvertibleError.
  virtual TransformOutput inverse_impl(const Tensor& inputs, const Tensor& context);
  /// Defaults: forward_impl(...).outputs and inverse_impl(...).outputs.
  virtual Tensor forward_outputs_impl(const Tensor& inputs, const Tensor& context);
  virtual Tensor inverse_outputs_impl(const Tensor& inputs, const Tensor& context);

 private:
  std::string type_;
};

using TransformPtr = std::shared_ptr<TransformImpl>;

/// f = f_K ∘ … ∘ f_1: forward runs the layers in order and adds their logabsdets,
/// log|det ∂f/∂x| = Σ_k log|det ∂f_k/∂x_{k−1}| (the chain rule); inverse runs their inverses
/// in reverse order, x = f_1⁻¹ ∘ … ∘ f_K⁻¹(z).
class CompositeTransformImpl : public TransformImpl {
 public:
  explicit CompositeTransformImpl(std::vector<TransformPtr> layers = {});

  /// Appends a layer (it becomes the last one applied by forward).
  void push_back(TransformPtr layer);
  /// Number of layers.
  size_t size() const { return layers_.size(); }
  /// Layer i (0 = the first applied by forward).
  TransformPtr layer(size_t i) const;

  /// forward, also returning the output after every layer: element 0 is the input,
  /// element k the output of layer k (so size() + 1 tensors in all).
  std::vector<Tensor> forward_steps(const Tensor& inputs, const Tensor& context = {});
  /// inverse, also returning every intermediate: element 0 is the noise, element k the
  /// result of inverting the last k layers.
  std::vector<Tensor> inverse_steps(const Tensor& inputs, const Tensor& context = {});

  Json spec() const override;
  std::string describe() const override;
  bool has_inverse() const override;
  std::vector<int64_t> forward_shape(const std::vector<int64_t>& input_shape) const override;
  std::vector<int64_t> inverse_shape(const std::vector<int64_t>& output_shape) const override;

 protected:
  TransformOutput forward_impl(const Tensor& inputs, const Tensor& context) override;
  TransformOutput inverse_impl(const Tensor& inputs, const Tensor& context) override;
  Tensor forward_outputs_impl(const Tensor& inputs, const Tensor& context) override;
  Tensor inverse_outputs_impl(const Tensor& inputs, const Tensor& context) override;

 private:
  std::vector<TransformPtr> layers_;
};
TORCH_MODULE(CompositeTransform);

/// Swaps the directions of a transform: forward calls the wrapped inverse and vice versa,
/// so g = f⁻¹ and log|det ∂g/∂z| = −log|det ∂f/∂x| at x = f⁻¹(z).
/// Spec: {"type": "inverse", "transform": {...}}.
class InverseTransformImpl : public TransformImpl {
 public:
  explicit InverseTransformImpl(TransformPtr inner);
  Json spec() const override;
  std::string describe() const override;
  TransformPtr inner() const { return inner_; }
  std::vector<int64_t> forward_shape(const std::vector<int64_t>& input_shape) const override {
    return inner_->inverse_shape(input_shape);
  }
  std::vector<int64_t> inverse_shape(const std::vector<int64_t>& output_shape) const override {
    return inner_->forward_shape(output_shape);
  }

 protected:
  TransformOutput forward_impl(const Tensor& inputs, const Tensor& context) override;
  TransformOutput inverse_impl(const Tensor& inputs, const Tensor& context) override;

 private:
  TransformPtr inner_;
};
TORCH_MODULE(InverseTransform);

/// Sum of `values` over every dimension but the first: [B, ...] → [B].
Tensor sum_except_batch(const Tensor& values);

}  // namespace zflow
