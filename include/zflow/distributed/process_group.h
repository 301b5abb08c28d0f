#pragma once
/// \file
/// Data-parallel training on PyTorch's own distributed engine (c10d): a TCPStore
/// rendezvous, then ProcessGroupGloo for CPU tensors or ProcessGroupNCCL for CUDA tensors
/// (when LibTorch was built with NCCL). ProcessGroupSync is the trainer's GradientSync
/// (train/gradient_sync.h) for such a run: rank 0's parameters and buffers are broadcast
/// at the start and after a resume; after each backward pass one all-reduce of the flat
/// gradient buffer, divided by the world size, gives every process the mean gradient over
/// the global batch (Goyal et al. 2017, https://arxiv.org/abs/1706.02677, §2); the loss,
/// the validation score and every decision (a non-finite step, a stop request) are
/// reduced the same way, so that the processes always agree.
///
/// A collective that fails (a process died, the network broke) or does not finish within
/// the timeout throws zflow::Error naming the operation and the peer; the callers stop
/// rather than wait forever (docs/distributed.md, "Faults").
///
/// Example (every process runs this; torchrun or `zflow train --nproc` set the variables):
///
///     auto launch = zflow::distributed::detect_launch();
///     auto sync = zflow::distributed::ProcessGroupSync::connect(launch, {});
///     zflow::train::Trainer trainer(*flow, options);
///     trainer.set_gradient_sync(sync);
///     trainer.fit(data);  // rank 0 alone should add the printing and writing callbacks

#include <cstdint>
#include <memory>
#include <string>

#include "zflow/distributed/launch.h"
#include "zflow/train/gradient_sync.h"

namespace zflow::distributed {

/// How to connect.
struct DistributedOptions {
  /// "auto" (NCCL for CUDA when LibTorch has it, otherwise Gloo), "gloo" or "nccl".
  std::string backend = "auto";
  /// Seconds to wait for the rendezvous and for any one collective before giving up.
  double timeout_seconds = 300;
  /// Where the tensors live: "cpu" or "cuda" (then the local rank picks the GPU).
  std::string device = "cpu";
  /// Gradient buckets: 1 all-reduces the flat gradient buffer once the backward pass is
  /// done; N > 1 splits it into N buckets of about equal size (on parameter boundaries,
  /// the last parameters first, as the backward pass produces them), each all-reduced as
  /// soon as its gradients are there, overlapping communication with the rest of the
  /// backward pass (as PyTorch's DistributedDataParallel does). Buckets start in the same
  /// order in every process.
  int buckets = 1;
};

/// The CUDA device of a process with this local rank: local_rank mod the GPUs visible
/// (one GPU per process where there are enough; Gloo ranks may share one).
int cuda_device_for(int local_rank);

/// Whether this zflow was built with c10d (ZFLOW_WITH_DISTRIBUTED).
bool distributed_available();

/// The backends this build has: "gloo", and "nccl" with a CUDA LibTorch built with NCCL.
std::string available_backends();

/// The c10d process group of one training run, as the trainer's GradientSync.
class ProcessGroupSync : public train::GradientSync {
 public:
  /// Rendezvous with the other processes of `launch` and build the process group.
  /// ConfigError when this build has no c10d or the backend is unavailable; Error, within
  /// the timeout, for a port in use, an unreachable master, or processes that disagree on
  /// the world size.
  static std::shared_ptr<ProcessGroupSync> connect(const LaunchInfo& launch,
                                                   const DistributedOptions& options);
  ~ProcessGroupSync() override;

  int rank() const override;
  int world_size() const override;
  void broadcast_parameters(FlowImpl& flow) override;
  void attach(FlowImpl& flow, bool attach) override;
  void synchronize_gradients(at::Tensor& flat_gradients) override;
  double mean(double value) override;
  bool any(bool value) override;

  /// Waits until every process arrives here (or the timeout passes).
  void barrier();
  /// "gloo" or "nccl".
  std::string backend() const;
  /// Wall-clock seconds spent in gradient all-reduces so far, and how many there were.
  double allreduce_seconds() const;
  int64_t allreduce_count() const;

  struct Impl;

 private:
  explicit ProcessGroupSync(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace zflow::distributed
