#pragma once
/// \file
/// The seam between one training process and others: after every backward pass the trainer
/// hands the flat gradient buffer to a GradientSync, and every decision that must agree
/// across processes (a non-finite step, the validation score, a stop request) goes through
/// it too. In one process all of it is the identity (LocalGradientSync). Data-parallel
/// training implements it with one all-reduce of the flat buffer, which turns each
/// process's mean gradient over its shard of the global batch into the mean over the
/// whole batch (Goyal et al. 2017, "Accurate, Large Minibatch SGD",
/// https://arxiv.org/abs/1706.02677, §2), and a broadcast of the parameters from rank 0.
///
/// Example:
///
///     struct Averaging : zflow::train::GradientSync {  // what an all-reduce does
///       void synchronize_gradients(at::Tensor& flat) override { /* all_reduce(flat) / world */ }
///     };
///     zflow::train::Trainer trainer(*flow, options);
///     trainer.set_gradient_sync(std::make_shared<Averaging>());

#include <cstdint>

#include <ATen/core/Tensor.h>

namespace zflow {
class FlowImpl;
}

namespace zflow::train {

/// Synchronisation of the processes of one training run.
class GradientSync {
 public:
  virtual ~GradientSync() = default;
  /// This process's rank and the number of processes.
  virtual int rank() const { return 0; }
  virtual int world_size() const { return 1; }
  /// Called once before the first step and after a resume: every process must start from
  /// the same parameters (rank 0's).
  virtual void broadcast_parameters(FlowImpl& flow) {}
  /// Called once at the start of fit, after the broadcast, with the flow being trained and
  /// at the end (also when fit throws) with `attach = false`: a sync that starts reducing
  /// during the backward pass registers its gradient hooks here and removes them again.
  virtual void attach(FlowImpl& flow, bool attach) {}
  /// Replaces this process's gradients, one flat buffer, by their mean over the processes.
  virtual void synchronize_gradients(at::Tensor& flat_gradients) {}
  /// The mean of a per-process number over the processes (losses, validation scores).
  virtual double mean(double value) { return value; }
  /// Whether any process says true (a non-finite step, a stop request).
  virtual bool any(bool value) { return value; }
};

/// One process: nothing to synchronise.
class LocalGradientSync : public GradientSync {};

}  // namespace zflow::train
