#include "zflow/core/reference_gradients.h"

#include <c10/core/GradMode.h>
#include <torch/csrc/autograd/autograd.h>

namespace zflow {

std::vector<at::Tensor> reference_gradients(
    const std::function<std::vector<at::Tensor>()>& reference,
    const std::vector<at::Tensor>& upstream, const std::vector<at::Tensor>& inputs,
    const std::vector<bool>& wanted) {
  std::vector<at::Tensor> result(inputs.size());
  std::vector<at::Tensor> wrt;
  std::vector<size_t> position;
  for (size_t i = 0; i < inputs.size(); ++i) {
    if (wanted[i]) {
      wrt.push_back(inputs[i]);
      position.push_back(i);
    }
  }
  bool any_upstream = false;
  for (const auto& g : upstream) any_upstream = any_upstream || g.defined();
  if (wrt.empty() || !any_upstream) return result;

  c10::AutoGradMode enable_grad(true);
  const std::vector<at::Tensor> all_outputs = reference();
  std::vector<at::Tensor> outputs, used_upstream;
  for (size_t i = 0; i < upstream.size(); ++i) {
    if (upstream[i].defined()) {
      outputs.push_back(all_outputs[i]);
      used_upstream.push_back(upstream[i]);
    }
  }
  const std::vector<at::Tensor> grads =
      torch::autograd::grad(outputs, wrt, used_upstream, /*retain_graph=*/true,
                            /*create_graph=*/true, /*allow_unused=*/true);
  for (size_t i = 0; i < grads.size(); ++i) result[position[i]] = grads[i];
  return result;
}

}  // namespace zflow
