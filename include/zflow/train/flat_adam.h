#pragma once
/// \file
/// Adam and AdamW over one flat buffer. The optimizer moves every trainable parameter, and
/// its gradient, into a view of one contiguous buffer (the modules keep working on the
/// views), so a step is one fused pass over all the weights instead of about ten
/// operations per parameter tensor, zeroing the gradients is one memset and the global
/// gradient norm one reduction. Same update as torch::optim::Adam / AdamW (Kingma & Ba
/// 2015, Algorithm 1, https://arxiv.org/abs/1412.6980; Loshchilov & Hutter 2019 for the
/// decoupled weight decay, https://arxiv.org/abs/1711.05101):
///
///     m ← β₁m + (1 − β₁)g,  v ← β₂v + (1 − β₂)g²,  θ ← θ − lr · m̂ / (√v̂ + ε),
///     m̂ = m / (1 − β₁ᵗ),  v̂ = v / (1 − β₂ᵗ).
///
/// Example:
///
///     zflow::train::FlatAdam adam(flow->parameters(), {/*lr=*/1e-3});
///     adam.zero_grad();
///     (-flow->log_prob(x).mean()).backward();
///     adam.clip_grad_norm(5.0);
///     adam.step();

#include <cstdint>
#include <vector>

#include <torch/optim/adam.h>
#include <torch/optim/optimizer.h>

namespace zflow::train {

struct FlatAdamOptions {
  double lr = 1e-3;
  double beta1 = 0.9;
  double beta2 = 0.999;
  double eps = 1e-8;
  double weight_decay = 0.0;
  /// AdamW: weight decay applied to the weights (p ← p (1 − lr·wd)) instead of the
  /// gradient (Adam's L2 term g ← g + wd·p).
  bool decoupled = false;
};

class FlatAdam : public torch::optim::Optimizer {
 public:
  /// All trainable parameters must share one dtype and device; those with
  /// requires_grad = false are left out.
  FlatAdam(const std::vector<at::Tensor>& parameters, FlatAdamOptions options);

  /// One Adam step on every parameter (closure: as torch::optim::Optimizer::step).
  at::Tensor step(LossClosure closure = nullptr) override;
  /// The flat gradient buffer (every parameter's gradient is a view of it), for an
  /// all-reduce across processes; changes to it are the gradients the step uses.
  at::Tensor flat_gradients();
  /// Zeroes all gradients in place (one fill of the flat gradient buffer).
  void zero_grad();
  /// Scales the gradients so that their global 2-norm is at most `max_norm` (the rule of
  /// torch::nn::utils::clip_grad_norm_) and returns the norm before clipping.
  double clip_grad_norm(double max_norm);

  double lr() const;
  void set_lr(double lr);
  int64_t steps_taken() const { return step_; }
  /// Number of scalars in the flat buffer.
  int64_t numel() const { return flat_params_.numel(); }

  void save(torch::serialize::OutputArchive& archive) const override;
  /// Throws IOError when the archive holds no FlatAdam state of the same size.
  void load(torch::serialize::InputArchive& archive) override;

 private:
  /// Re-points any parameter or gradient that no longer aliases its slot (a module moved,
  /// a gradient set to None by someone else) back onto the flat buffers.
  void attach();

  FlatAdamOptions options_;
  std::vector<at::Tensor> params_;
  std::vector<at::Tensor> param_slots_;
  std::vector<at::Tensor> grad_slots_;
  at::Tensor flat_params_, flat_grads_, exp_avg_, exp_avg_sq_;
  int64_t step_ = 0;
};

}  // namespace zflow::train
