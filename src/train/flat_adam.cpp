#include "zflow/train/flat_adam.h"

#include <algorithm>
#include <cmath>
#include <memory>
#include <vector>

#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <torch/serialize/archive.h>

#include "zflow/core/error.h"

namespace zflow::train {

namespace {

constexpr int64_t kGrain = 32768;  // elements per parallel task

// One pass of Adam (Kingma & Ba 2015, Algorithm 1) with PyTorch's arrangement of the bias
// corrections, so the result matches torch::optim::Adam / AdamW to rounding:
//   g ← g + wd·p (Adam)  or  p ← p (1 − lr·wd) (AdamW)
//   m ← β₁ m + (1 − β₁) g,   v ← β₂ v + (1 − β₂) g²
//   p ← p − (lr / c₁) · m / (√v / √c₂ + ε),   c_i = 1 − β_iᵗ
template <typename T>
void adam_kernel(T* p, const T* g, T* m, T* v, int64_t n, const FlatAdamOptions& o, double lr,
                 int64_t step) {
  const T beta1 = static_cast<T>(o.beta1), beta2 = static_cast<T>(o.beta2);
  const T one_minus_beta1 = static_cast<T>(1 - o.beta1),
          one_minus_beta2 = static_cast<T>(1 - o.beta2);
  const double c1 = 1 - std::pow(o.beta1, static_cast<double>(step));
  const double c2 = 1 - std::pow(o.beta2, static_cast<double>(step));
  const T step_size = static_cast<T>(lr / c1);
  const T inv_sqrt_c2 = static_cast<T>(1 / std::sqrt(c2));
  const T eps = static_cast<T>(o.eps);
  const T l2 = o.decoupled ? T(0) : static_cast<T>(o.weight_decay);
  const T shrink = o.decoupled ? static_cast<T>(1 - lr * o.weight_decay) : T(1);
  at::parallel_for(0, n, kGrain, [&](int64_t begin, int64_t end) {
    for (int64_t i = begin; i < end; ++i) {
      const T grad = g[i] + l2 * p[i];
      const T mi = beta1 * m[i] + one_minus_beta1 * grad;
      const T vi = beta2 * v[i] + one_minus_beta2 * grad * grad;
      m[i] = mi;
      v[i] = vi;
      p[i] = p[i] * shrink - step_size * mi / (std::sqrt(vi) * inv_sqrt_c2 + eps);
    }
  });
}

// A tensor of shape `sizes` on the storage of `flat` from `offset` on. Made with set_ rather
// than narrow/view: it is not an autograd view, so code that detaches gradients in place
// (torch::optim::Optimizer::zero_grad in LibTorch 1.13) can still do so.
at::Tensor slot(const at::Tensor& flat, int64_t offset, at::IntArrayRef sizes) {
  std::vector<int64_t> strides(sizes.size(), 1);
  for (size_t i = sizes.size(); i-- > 1;)
    strides[i - 1] = strides[i] * std::max<int64_t>(sizes[i], 1);
  return at::empty({0}, flat.options())
      .set_(flat.storage(), flat.storage_offset() + offset, sizes, strides);
}

}  // namespace

FlatAdam::FlatAdam(const std::vector<at::Tensor>& parameters, FlatAdamOptions options)
    : torch::optim::Optimizer(
          {torch::optim::OptimizerParamGroup(parameters)},
          std::make_unique<torch::optim::AdamOptions>(
              torch::optim::AdamOptions(options.lr)
                  .betas({options.beta1, options.beta2})
                  .eps(options.eps)
                  .weight_decay(options.decoupled ? 0.0 : options.weight_decay))),
      options_(options) {
  if (!(options_.lr > 0)) throw ConfigError("adam: learning rate must be positive");
  if (options_.weight_decay < 0) throw ConfigError("adam: weight decay must be >= 0");
  for (const auto& p : parameters) {
    if (p.requires_grad()) params_.push_back(p);
  }
  int64_t total = 0;
  for (const auto& p : params_) {
    if (p.scalar_type() != params_[0].scalar_type() || p.device() != params_[0].device()) {
      throw ConfigError("adam: all parameters must share one dtype and device");
    }
    total += p.numel();
  }
  const at::TensorOptions tensor_options =
      (params_.empty() ? at::TensorOptions(at::kFloat) : params_[0].options()).requires_grad(false);
  flat_params_ = at::empty({total}, tensor_options);
  flat_grads_ = at::zeros({total}, tensor_options);
  exp_avg_ = at::zeros({total}, tensor_options);
  exp_avg_sq_ = at::zeros({total}, tensor_options);
  int64_t offset = 0;
  {
    at::NoGradGuard no_grad;
    for (const auto& p : params_) {
      param_slots_.push_back(slot(flat_params_, offset, p.sizes()));
      grad_slots_.push_back(slot(flat_grads_, offset, p.sizes()));
      param_slots_.back().copy_(p);
      offset += p.numel();
    }
  }
  attach();
}

void FlatAdam::attach() {
  at::NoGradGuard no_grad;
  for (size_t i = 0; i < params_.size(); ++i) {
    at::Tensor& p = params_[i];
    if (p.data_ptr() != param_slots_[i].data_ptr()) {
      if (p.device() != flat_params_.device() || p.scalar_type() != flat_params_.scalar_type()) {
        throw Error(
            "adam: a parameter moved to another device or dtype after the optimizer "
            "was made; make the optimizer after moving the model");
      }
      param_slots_[i].copy_(p);
      p.set_data(param_slots_[i]);
    }
    const at::Tensor& grad = p.grad();
    if (!grad.defined()) {
      grad_slots_[i].zero_();
      p.mutable_grad() = grad_slots_[i];
    } else if (grad.data_ptr() != grad_slots_[i].data_ptr()) {
      grad_slots_[i].copy_(grad);
      p.mutable_grad() = grad_slots_[i];
    }
  }
}

at::Tensor FlatAdam::flat_gradients() {
  attach();
  return flat_grads_;
}

void FlatAdam::zero_grad() {
  attach();
  flat_grads_.zero_();
}

double FlatAdam::clip_grad_norm(double max_norm) {
  attach();
  const double norm = flat_grads_.norm().item<double>();
  // torch::nn::utils::clip_grad_norm_'s rule: scale by max_norm / (norm + 1e-6) when < 1.
  const double coefficient = max_norm / (norm + 1e-6);
  if (coefficient < 1) flat_grads_.mul_(coefficient);
  return norm;
}

double FlatAdam::lr() const {
  return static_cast<const torch::optim::AdamOptions&>(param_groups_[0].options()).lr();
}

void FlatAdam::set_lr(double lr) {
  static_cast<torch::optim::AdamOptions&>(param_groups_[0].options()).lr(lr);
}

at::Tensor FlatAdam::step(LossClosure closure) {
  at::Tensor loss;
  if (closure) {
    at::AutoGradMode enable_grad(true);
    loss = closure();
  }
  attach();
  ++step_;
  const double rate = lr();
  at::NoGradGuard no_grad;
  if (flat_params_.device().is_cpu()) {
    AT_DISPATCH_FLOATING_TYPES(flat_params_.scalar_type(), "flat_adam", [&] {
      adam_kernel<scalar_t>(flat_params_.data_ptr<scalar_t>(), flat_grads_.data_ptr<scalar_t>(),
                            exp_avg_.data_ptr<scalar_t>(), exp_avg_sq_.data_ptr<scalar_t>(),
                            flat_params_.numel(), options_, rate, step_);
    });
    return loss;
  }
  // Other devices: the same update in a handful of operations on the flat buffers.
  const double c1 = 1 - std::pow(options_.beta1, static_cast<double>(step_));
  const double c2 = 1 - std::pow(options_.beta2, static_cast<double>(step_));
  at::Tensor grad = flat_grads_;
  if (options_.weight_decay != 0) {
    if (options_.decoupled) {
      flat_params_.mul_(1 - rate * options_.weight_decay);
    } else {
      grad = grad.add(flat_params_, options_.weight_decay);
    }
  }
  exp_avg_.mul_(options_.beta1).add_(grad, 1 - options_.beta1);
  exp_avg_sq_.mul_(options_.beta2).addcmul_(grad, grad, 1 - options_.beta2);
  const at::Tensor denominator = (exp_avg_sq_.sqrt() / std::sqrt(c2)).add_(options_.eps);
  flat_params_.addcdiv_(exp_avg_, denominator, -rate / c1);
  return loss;
}

void FlatAdam::save(torch::serialize::OutputArchive& archive) const {
  archive.write("flat_adam/step", at::tensor({step_}, at::kLong));
  archive.write("flat_adam/exp_avg", exp_avg_.cpu());
  archive.write("flat_adam/exp_avg_sq", exp_avg_sq_.cpu());
}

void FlatAdam::load(torch::serialize::InputArchive& archive) {
  at::Tensor step, exp_avg, exp_avg_sq;
  const bool found = archive.try_read("flat_adam/step", step) &&
                     archive.try_read("flat_adam/exp_avg", exp_avg) &&
                     archive.try_read("flat_adam/exp_avg_sq", exp_avg_sq);
  if (!found || exp_avg.numel() != exp_avg_.numel() || exp_avg_sq.numel() != exp_avg_.numel() ||
      step.numel() != 1) {
    throw IOError(
        "the optimizer state does not match this model (written by another zflow version "
        "or for other parameters); start the training again");
  }
  at::NoGradGuard no_grad;
  step_ = step.item<int64_t>();
  exp_avg_.copy_(exp_avg);
  exp_avg_sq_.copy_(exp_avg_sq);
}

}  // namespace zflow::train
