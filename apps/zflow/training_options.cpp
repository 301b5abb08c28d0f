// The options shared by zflow train and zflow fit-target (training_options.h).

#include "training_options.h"

#include "common.h"

namespace zflow::cli {

void add_builder_options(CLI::App* sub, BuilderOptions& builder) {
  sub->add_option(
         "--layers", builder.layers,
         "Coupling, autoregressive, planar, radial, Sylvester or residual layers (glow: steps)")
      ->check(positive())
      ->capture_default_str();
  sub->add_option("--hidden", builder.hidden,
                  "Hidden width of the conditioners (images: hidden channels; 0: 128 for tabular "
                  "models, 64 channels for images)")
      ->check(non_negative())
      ->capture_default_str();
  sub->add_option("--depth", builder.depth, "Hidden layers per conditioner")
      ->check(non_negative())
      ->capture_default_str();
  sub->add_option("--activation", builder.activation, "Conditioner activation")
      ->capture_default_str();
  sub->add_option("--conditioner", builder.conditioner, "Conditioner network")
      ->check(CLI::IsMember({"mlp", "resmlp"}))
      ->capture_default_str();
  sub->add_option("--scale-bound", builder.scale_bound,
                  "Bound of the affine couplings' soft-clamped log-scale")
      ->capture_default_str();
  sub->add_option("--bins", builder.bins, "Spline bins (nsf-coupling, nsf-autoregressive)")
      ->check(positive())
      ->capture_default_str();
  sub->add_option("--tail-bound", builder.tail_bound,
                  "Splines act on [-B, B] (standardised units), identity outside")
      ->capture_default_str();
  add_base_options(sub, builder);
}

void add_base_options(CLI::App* sub, BuilderOptions& builder) {
  // Checked by the builder (one message for train and fit-target, and one that says why
  // box_uniform is no choice), so listed here rather than enforced with IsMember.
  std::string choices;
  for (const auto& [name, description] : base_names()) {
    choices += (choices.empty() ? "" : ", ") + name;
  }
  sub->add_option("--base", builder.base,
                  "Base distribution of the tabular models: " + choices +
                      " (conditional_diagonal_normal needs a context; image models and cnf: "
                      "standard_normal)")
      ->capture_default_str()
      ->group("Model");
  sub->add_option("--base-df", builder.base_df,
                  "student_t base: degrees of freedom, fixed or the initial value with "
                  "--base-learn-df (default 5)")
      ->check(positive())
      ->group("Model");
  sub->add_flag("--base-learn-df", builder.base_learn_df,
                "student_t base: learn the degrees of freedom, one per coordinate")
      ->group("Model");
  sub->add_option("--base-components", builder.base_components,
                  "gaussian_mixture base: mixture components (default 8)")
      ->check(positive())
      ->group("Model");
}

void add_optimiser_options(CLI::App* sub, train::TrainOptions& options, bool& no_cosine,
                           int64_t& seed) {
  sub->add_option("--steps", options.steps,
                  "Optimizer steps in all (a resumed run continues to this)")
      ->check(positive())
      ->capture_default_str();
  sub->add_option("--batch-size", options.batch_size, "Minibatch size")
      ->check(positive())
      ->capture_default_str();
  sub->add_option("--lr", options.lr, "Peak learning rate")->capture_default_str();
  sub->add_option("--optimizer", options.optimizer, "Optimizer")
      ->check(CLI::IsMember({"adam", "adamw"}))
      ->capture_default_str();
  sub->add_option("--weight-decay", options.weight_decay, "Weight decay")
      ->check(non_negative())
      ->capture_default_str();
  sub->add_flag("--no-cosine", no_cosine, "Keep the learning rate constant (no cosine decay)");
  sub->add_option("--warmup", options.warmup,
                  "Linear learning-rate warm-up steps (image models: min(500, steps/10) unless "
                  "given)")
      ->check(non_negative())
      ->capture_default_str();
  sub->add_option("--clip", options.clip_grad_norm, "Clip the gradient norm (<= 0: no clipping)")
      ->capture_default_str();
  sub->add_option("--eval-every", options.eval_every, "Validate every this many steps")
      ->check(positive())
      ->capture_default_str();
  sub->add_option("--patience", options.patience,
                  "Stop after this many validations without improvement (0: never)")
      ->check(non_negative())
      ->capture_default_str();
  sub->add_option("--max-nonfinite", options.max_nonfinite,
                  "Give up after this many non-finite steps in a row")
      ->check(positive())
      ->capture_default_str();
  sub->add_option(
         "--seed", seed,
         "Seed of the initialisation, the minibatches and the draws (and of the data split)")
      ->check(non_negative())
      ->capture_default_str();
}

void add_dtype_option(CLI::App* sub, std::string& dtype) {
  sub->add_option("--dtype", dtype, "Floating-point type of the model")
      ->check(CLI::IsMember({"float32", "float64"}))
      ->capture_default_str();
}

void add_run_options(CLI::App* sub, int& threads, std::string& metrics, std::string& report,
                     train::TrainOptions& options, std::string& state, bool& quiet) {
  add_threads_option(sub, threads);
  sub->add_option("--metrics", metrics, "Write metrics as JSON lines to this file");
  sub->add_option("--report", report,
                  "Also write an HTML report of the run (configuration, curves, pictures)");
  sub->add_option("--log-every", options.log_every,
                  "Also write a metrics record every this many steps (0: only at validations)")
      ->check(non_negative())
      ->capture_default_str();
  sub->add_option("--state", state, "Resumable training state (default: OUT.state)");
  sub->add_flag("--resume", options.resume, "Continue from the training state");
  sub->add_flag("--quiet,-q", quiet, "No progress or summary on stderr");
}

}  // namespace zflow::cli
