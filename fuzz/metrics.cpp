// Fuzz target: the metrics (JSON Lines) reader of `zflow report` and `zflow plot curves`.

#include <cmath>

#include "fuzz_file.h"
#include "zflow/core/error.h"
#include "zflow/io/metrics.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  try {
    const auto records = zflow::io::read_metrics(zflow::fuzz::as_file(data, size));
    const zflow::io::MetricsCurves curves = zflow::io::metrics_curves(records);
    if (curves.steps.size() != curves.train.size() ||
        curves.val_steps.size() != curves.val.size()) {
      zflow::fuzz::invariant_failed();
    }
    for (const auto* series : {&curves.steps, &curves.train, &curves.val_steps, &curves.val}) {
      for (double v : *series) {
        if (!std::isfinite(v)) zflow::fuzz::invariant_failed();
      }
    }
  } catch (const zflow::Error&) {
  }
  return 0;
}
