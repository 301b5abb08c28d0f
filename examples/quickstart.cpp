// Build a flow, train it for a few steps, sample from it: the README's C++ example.
#include <ATen/ATen.h>
#include <torch/optim/adam.h>

#include <iostream>

#include "zflow/data/toy.h"
#include "zflow/flows/builders.h"
#include "zflow/flows/registry.h"

int main() {
  auto flow = zflow::make_flow(zflow::build_flow_spec("realnvp", 2, {}));  // 8 affine couplings
  torch::optim::Adam adam(flow->parameters(), torch::optim::AdamOptions(1e-3));
  at::Tensor x = zflow::data::sample_toy("moons", 4096, /*seed=*/0).to(at::kFloat);
  for (int step = 0; step < 200; ++step) {
    adam.zero_grad();
    at::Tensor loss = -flow->log_prob(x).mean();  // NLL in nats
    loss.backward();
    adam.step();
  }
  at::Tensor samples = flow->sample(5);  // noise → data
  std::cout << "NLL " << -flow->log_prob(x).mean().item<double>() << "\n" << samples << "\n";
}
