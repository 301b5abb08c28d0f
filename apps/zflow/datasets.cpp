// zflow datasets: the built-in 2-D toy datasets.

#include <cstdio>
#include <iostream>
#include <memory>

#include "common.h"
#include "zflow/data/toy.h"

namespace zflow::cli {

void add_datasets(CLI::App& app) {
  auto json = std::make_shared<bool>(false);
  CLI::App* sub = app.add_subcommand(
      "datasets", "List the built-in 2-D datasets with their entropy (the best achievable NLL)");
  set_example(sub, "zflow datasets\n  zflow train --data moons --out moons.safetensors");
  sub->add_flag("--json", *json, "Print a JSON array instead of a table");
  sub->callback([json] {
    const auto& datasets = data::toy_datasets();
    if (*json) {
      Json out = Json::array();
      for (const auto& d : datasets) {
        out.push_back({{"name", d.name},
                       {"features", 2},
                       {"entropy", d.entropy},
                       {"description", d.description}});
      }
      std::cout << out.dump(2) << std::endl;
      return;
    }
    std::printf("%-14s %9s  %s\n", "name", "entropy", "description");
    for (const auto& d : datasets) {
      std::printf("%-14s %9.4f  %s\n", d.name.c_str(), d.entropy, d.description.c_str());
    }
    std::printf("\nEntropy in nats: the lowest expected test NLL a model can reach.\n");
    std::fflush(stdout);
  });
}

}  // namespace zflow::cli
