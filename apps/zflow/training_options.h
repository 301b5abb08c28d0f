#pragma once
// The options that `zflow train` and `zflow fit-target` share: the ready-made models'
// sizes and the optimisation, registered once so that both commands spell and document
// them alike.

#include <CLI/CLI.hpp>

#include "zflow/flows/builders.h"
#include "zflow/train/trainer.h"

namespace zflow::cli {

/// --layers, --hidden, --depth, --activation, --conditioner, --scale-bound, --bins,
/// --tail-bound and --base into `builder`.
void add_builder_options(CLI::App* sub, BuilderOptions& builder);

/// --base, --base-df, --base-learn-df and --base-components into `builder` (part of
/// add_builder_options).
void add_base_options(CLI::App* sub, BuilderOptions& builder);

/// --steps, --batch-size, --lr, --optimizer, --weight-decay, --no-cosine, --warmup, --clip,
/// --eval-every, --patience, --max-nonfinite and --seed.
void add_optimiser_options(CLI::App* sub, train::TrainOptions& options, bool& no_cosine,
                           int64_t& seed);

/// --dtype (float32 or float64).
void add_dtype_option(CLI::App* sub, std::string& dtype);

/// --threads, --metrics, --report, --log-every, --state, --resume and --quiet.
void add_run_options(CLI::App* sub, int& threads, std::string& metrics, std::string& report,
                     train::TrainOptions& options, std::string& state, bool& quiet);

}  // namespace zflow::cli
