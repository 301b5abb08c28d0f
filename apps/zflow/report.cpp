// zflow report: one self-contained HTML page for a training run.

#include "report.h"

#include <cmath>
#include <ctime>
#include <iostream>
#include <memory>
#include <sstream>

#include <c10/core/GradMode.h>

#include "figures.h"
#include "ode_options.h"
#include "outputs.h"
#include "target_options.h"
#include "zflow/core/error.h"
#include "zflow/io/atomic_file.h"
#include "zflow/plot/svg.h"
#include "zflow/train/trainer.h"
#include "zflow/transforms/continuous.h"
#include "zflow/version.h"

namespace zflow::cli {

namespace {

std::string escape(const std::string& s) { return plot::xml_escape(s); }

/// An SVG document without its XML declaration, to inline in HTML.
std::string inline_svg(const std::string& svg) {
  const auto start = svg.find("<svg");
  return start == std::string::npos ? svg : svg.substr(start);
}

std::string png_img(const io::Image& image, const std::string& alt) {
  return "<img alt=\"" + escape(alt) + "\" width=\"" + std::to_string(image.width) +
         "\" height=\"" + std::to_string(image.height) + "\" src=\"data:image/png;base64," +
         plot::base64(io::encode_png(image)) + "\">";
}

std::string figure(const std::string& content, const std::string& caption) {
  return "<figure>" + content + "<figcaption>" + escape(caption) + "</figcaption></figure>\n";
}

std::string row(const std::string& key, const std::string& value) {
  return "<tr><th>" + escape(key) + "</th><td>" + escape(value) + "</td></tr>\n";
}

std::string value_text(const Json& v) {
  if (v.is_string()) return v.get<std::string>();
  if (v.is_number_float()) return fmt(v.get<double>());
  return v.dump();
}

const char* kStyle = R"(
body { font-family: sans-serif; margin: 2em auto; max-width: 1400px; padding: 0 1em; color: #222; }
h1 { margin-bottom: 0.1em; } .sub { color: #666; margin-top: 0; }
table { border-collapse: collapse; margin: 0.5em 0 1.5em; }
th, td { text-align: left; padding: 0.25em 1em 0.25em 0; border-bottom: 1px solid #eee; vertical-align: top; }
th { font-weight: 600; white-space: nowrap; }
figure { margin: 0 0 1.5em; overflow-x: auto; } figcaption { color: #555; font-size: 0.9em; }
img { image-rendering: pixelated; } .note { color: #a33; }
ol { font-family: monospace; font-size: 0.9em; }
)";

/// "1.877 ± 0.032", or the value alone where the error is not a finite number (one sample).
std::string with_error(const Json& object, const std::string& key, const std::string& se_key) {
  const double se = json_number(object, se_key);
  return fmt(json_number(object, key), 5) + (std::isfinite(se) ? " ± " + fmt(se, 2) : "");
}

/// The rows of a model written by zflow fit-target: the target, the objective, the best
/// validation loss and the importance-sampling estimate against the exact log Z.
void target_result_rows(std::ostream& html, const Json& train) {
  const Json& t = train["target"];
  const Json r = train.value("result", Json::object());
  const Json o = train.value("options", Json::object());
  const Json e = train.value("estimate", Json());
  const Json known = t.value("log_z", Json());
  html << row("target", t.value("name", std::string("?")) +
                            " (D = " + std::to_string(t.value("dim", int64_t{0})) +
                            (t.value("domain", Json()).is_object() ? ", bounded)" : ")"))
       << row("objective", o.value("objective", std::string("?")))
       << row("steps", value_text(r.value("steps", Json(0))))
       << row("best validation loss", fmt(json_number(r, "best_val_loss")) + " nats (" +
                                          r.value("validation", std::string()) + ")")
       << row("at step", value_text(r.value("best_step", Json(0))))
       << row("training time", fmt(r.value("seconds", 0.0), 3) + " s")
       << row("skipped steps", value_text(r.value("skipped_steps", Json(0))))
       << row("interrupted", value_text(r.value("interrupted", Json(false))));
  if (e.is_object()) {
    html << row("log Z (importance sampling)", with_error(e, "log_z", "log_z_stderr") + " from " +
                                                   value_text(e.value("samples", Json(0))) +
                                                   " samples of the flow")
         << row("ESS", fmt(100 * json_number(e, "ess"), 3) + " %")
         << row("unweighting efficiency",
                fmt(100 * json_number(e, "unweighting_efficiency"), 3) + " % (" +
                    fmt(100 * json_number(e, "unweighting_efficiency_plain_max"), 3) +
                    " % with the largest weight)");
  } else {
    html << row("log Z (importance sampling)", "none (fitted with --final-samples 0)");
  }
  if (known.is_number()) {
    html << row("exact log Z", fmt(known.get<double>(), 5));
    if (e.is_object()) {
      const double error = json_number(e, "log_z") - known.get<double>();
      const double se = json_number(e, "log_z_stderr");
      html << row("error of log Z",
                  fmt(error, 3) + (se > 0 && std::isfinite(se)
                                       ? " (" + fmt(error / se, 2) + " standard errors)"
                                       : std::string()));
    }
  }
}

void result_section(std::ostream& html, const Model& model) {
  const Json& train = model.card.train;
  const Json result = train.is_object() ? train.value("result", Json::object()) : Json::object();
  html << "<h2>Result</h2><table>\n";
  if (fitted_to_target(model)) {
    target_result_rows(html, train);
  } else if (result.is_object() && result.contains("best_val_loss")) {
    // Flow matching: its score is the regression loss; the NLL comes from 'zflow eval'.
    html << row("best validation flow-matching loss", fmt(json_number(result, "best_val_loss")))
         << row("at step", value_text(result.value("best_step", Json(0))))
         << row("steps", value_text(result.value("steps", Json(0))));
  } else if (result.is_object() && result.contains("best_val_nll")) {
    const double best = json_number(result, "best_val_nll");
    const bool held_out = result.value("validation", std::string()) == "held-out";
    html << row(std::string("best ") + (held_out ? "validation" : "training-subset") + " NLL",
                fmt(best) + " nats" +
                    (model.image()
                         ? " (" + fmt(train::bits_per_dim(best, model.features)) + " bits/dim)"
                         : std::string()))
         << row("at step", value_text(result.value("best_step", Json(0))))
         << row("steps", value_text(result.value("steps", Json(0))))
         << row("final training NLL (running mean)",
                value_text(result.value("final_train_nll", Json(0.0))))
         << row("training time", fmt(result.value("seconds", 0.0), 3) + " s")
         << row("skipped steps", value_text(result.value("skipped_steps", Json(0))))
         << row("stopped early", value_text(result.value("stopped_early", Json(false))));
  } else {
    html << row("training", "no training record in this model file");
  }
  html << row("parameters", std::to_string(count_parameters(*model.flow)))
       << row("data", model.image() ? "images " + shape_string(model.image_shape)
                                    : std::to_string(model.features) + " features")
       << "</table>\n";
}

void curves_section(std::ostream& html, const Model& model, const ReportOptions& o) {
  html << "<h2>Training curves</h2>\n";
  const bool target = fitted_to_target(model);
  if (!o.metrics.empty()) {
    try {
      html << figure(inline_svg(curves_figure(o.metrics, "Training curves")),
                     target ? "Running mean of the training loss and the validation loss (the "
                              "objective on fresh samples of the flow) at each validation; "
                              "below, the ESS of each validation's samples."
                            : "Running mean of the training loss and the validation NLL at "
                              "each validation.");
    } catch (const ConfigError& e) {
      html << "<p class=\"note\">" << escape(e.what()) << "</p>\n";
    }
  } else {
    html << "<p class=\"note\">No metrics: "
         << (target ? "fit with --metrics FILE and give zflow report --metrics FILE"
                    : "train with --metrics FILE (or --report)")
         << " to get curves.</p>\n";
  }
}

/// A model fitted to a target: the target's density beside the flow's (2-D) and the
/// distribution of the importance weights (any D).
void target_pictures(std::ostream& html, const Model& model, const ReportOptions& o) {
  const TargetPtr target = load_target({o.target, o.target_dim}, &model);
  if (model.features == 2 && !model.conditional()) {
    FigureOptions f;
    f.seed = o.seed;
    html << figure(inline_svg(target_density_figure(model, *target, f)),
                   "The target's density, normalised, beside the flow's, on the same axes and "
                   "colour scale: where they differ, the flow misses or invents mass.");
  }
  WeightsOptions w;
  w.samples = o.weight_samples;
  w.seed = o.seed;
  html << figure(inline_svg(weights_figure(model, *target, w)),
                 "Log importance weights of " + std::to_string(w.samples) +
                     " fresh samples of the flow, relative to their mean. A perfect flow puts "
                     "them all at 0; a wide spread lowers the ESS, a long right tail the "
                     "unweighting efficiency.");
}

void pictures_section(std::ostream& html, const Model& model, const ReportOptions& o) {
  html << "<h2>Pictures</h2>\n";
  try {
    if ((fitted_to_target(model) || !o.target.empty()) && o.data.empty()) {
      target_pictures(html, model, o);
    } else if (model.image()) {
      const std::string data = o.data.empty() ? "fashion-mnist" : o.data;
      const std::string rows = model.class_conditional() ? ", one row per class" : "";
      html << figure(png_img(sample_grid(model, 8, 8, 0.7, 2, o.seed), "samples"),
                     "Samples at temperature 0.7" + rows + ".")
           << figure(png_img(sample_grid(model, 4, 8, 1.0, 2, o.seed + 1), "samples T=1"),
                     "Samples at temperature 1" + rows + ".");
      const PickedImages x = pick_images(model, data, 16, o.seed);
      double error = 0;
      html << figure(png_img(reconstruction_grid(model, x, 2, 8, 2, &error), "reconstructions"),
                     "Images of " + data +
                         ", each row followed by decode(encode(x)); largest "
                         "pixel error " +
                         fmt(error) + ".")
           << figure(png_img(interpolation_grid(model, pick_images(model, data, 8, o.seed + 1), 4,
                                                9, 2),
                             "interpolations"),
                     "Linear paths between pairs of images in the latent space.");
    } else if (model.features == 2 && !model.conditional()) {
      const at::Tensor data = figure_data(model, o.data, 20000, o.seed + 1000000);
      FigureOptions f;
      f.seed = o.seed;
      html << figure(inline_svg(steps_figure(model, data, f)),
                     "Top: noise bent into data by each layer's inverse. Bottom: data "
                     "straightened into noise by each layer's forward.")
           << figure(inline_svg(density_figure(model, data, f)),
                     "The model's density beside a histogram of the data.")
           << figure(inline_svg(latent_figure(model, data, f)),
                     "The data in the latent space; a good flow makes them look like N(0, I).");
    } else {
      html << "<p class=\"note\">Pictures are drawn for 2-D unconditional models, image "
              "models and models fitted to a target.</p>\n";
    }
  } catch (const Error& e) {
    html << "<p class=\"note\">No pictures: " << escape(e.what()) << "</p>\n";
  }
}

void architecture_section(std::ostream& html, const Model& model) {
  html << "<h2>Architecture</h2><ol>\n";
  const TransformPtr t = model.flow->transform();
  if (auto composite = std::dynamic_pointer_cast<CompositeTransformImpl>(t)) {
    for (size_t i = 0; i < composite->size(); ++i) {
      html << "<li>" << escape(composite->layer(i)->describe()) << "</li>\n";
    }
  } else {
    html << "<li>" << escape(t->describe()) << "</li>\n";
  }
  html << "</ol>\n";
}

/// For a model with continuous layers: its solver and the evaluations of the velocity
/// field (NFE) that sampling and scoring 256 points take.
void continuous_section(std::ostream& html, const Model& model, const ReportOptions& o) {
  const auto layers = continuous_layers(*model.flow->transform());
  if (layers.empty()) return;
  const auto& options = layers.front()->options();
  c10::AutoGradMode no_grad(false);
  seed_torch(o.seed);
  const at::Tensor context =
      model.conditional() ? at::zeros({model.context_features}, at::TensorOptions(model.dtype))
                          : at::Tensor();
  at::Tensor x;
  const EvaluationCount sampling =
      count_evaluations(model, [&] { x = model.flow->sample(256, context); });
  const EvaluationCount density = count_evaluations(model, [&] {
    model.flow->log_prob(x, context.defined() ? context.expand({256, -1}) : context);
  });
  html << "<h2>Continuous flow</h2><table>\n"
       << row("ODE solver", solver_description(options.solver))
       << row("trace in evaluation", options.trace)
       << row("NFE per sample, sampling", fmt(sampling.per_solve(), 4))
       << row("NFE per sample, log p(x)", fmt(density.per_solve(), 4)) << "</table>\n";
}

}  // namespace

std::string report_html(const Model& model, const ReportOptions& o) {
  std::ostringstream html;
  const Json& train = model.card.train;
  const Json options = train.is_object() ? train.value("options", Json::object()) : Json::object();
  char date[32];
  const std::time_t now = std::time(nullptr);
  std::strftime(date, sizeof(date), "%Y-%m-%d %H:%M", std::localtime(&now));

  html << "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
       << "<meta name=\"viewport\" content=\"width=device-width\">"
       << "<title>zflow report: " << escape(model.path) << "</title><style>" << kStyle
       << "</style></head><body>\n"
       << "<h1>zflow report</h1><p class=\"sub\">" << escape(model.path) << " · "
       << (model.card.model.empty() ? std::string("model") : escape(model.card.model))
       << (model.card.dataset.empty() ? std::string() : " on " + escape(model.card.dataset))
       << " · written " << date << " by zflow " << kVersion << "</p>\n";
  result_section(html, model);
  continuous_section(html, model, o);
  curves_section(html, model, o);
  pictures_section(html, model, o);
  html << "<h2>Configuration</h2><table>\n";
  for (const auto& [key, value] : options.items()) html << row(key, value_text(value));
  html << "</table>\n";
  architecture_section(html, model);
  html << "</body></html>\n";
  return html.str();
}

void write_report(const std::string& path, const Model& model, const ReportOptions& options) {
  require_extension(path, ".html", "the report");
  const std::string html = report_html(model, options);
  io::write_atomically(path, [&](std::ostream& out) { out << html; });
}

namespace {

struct ReportArgs {
  std::string model;
  std::string out = "report.html";
  std::string metrics;
  std::string data;
  TargetArgs target;
  int64_t seed = 0;
  int threads = 1;
};

void run_report(const ReportArgs& a) {
  const Model model = load_model(a.model);
  apply_threads(a.threads, workload_of(model));
  ReportOptions options;
  options.data = a.data;
  options.target = a.target.target;
  options.target_dim = a.target.dim;
  options.seed = static_cast<uint64_t>(a.seed);
  std::string metrics = a.metrics;
  const Json stored = metadata_json(model, "metrics_file");
  if (metrics.empty() && stored.is_string()) metrics = stored.get<std::string>();
  check_outputs({{"--out", a.out}}, {{"--model", a.model},
                                     {"--metrics", metrics},
                                     {"--data", a.data},
                                     {"--target", a.target.target}});
  if (!metrics.empty()) {
    try {
      options.metrics = read_metrics(metrics);
    } catch (const IOError&) {
      if (!a.metrics.empty()) throw;  // the recorded file may have moved: curves are optional
      std::cerr << "zflow: warning: " << metrics << " (recorded in the model) is gone; no curves\n";
    }
  }
  write_report(a.out, model, options);
  std::cerr << "wrote " << a.out << "\n";
}

}  // namespace

void add_report(CLI::App& app) {
  auto a = std::make_shared<ReportArgs>();
  CLI::App* sub = app.add_subcommand(
      "report", "One self-contained HTML page for a run: configuration, metrics, curves, pictures");
  set_example(sub,
              "zflow report --model model.safetensors --out report.html\n"
              "  zflow report --model u1.safetensors --metrics u1.jsonl --out u1.html   "
              "(fitted by fit-target)");
  sub->add_option("--model,-m", a->model,
                  "Model file written by 'zflow train' or 'zflow fit-target'")
      ->required();
  sub->add_option("--out,-o", a->out, "The page to write (.html)")->capture_default_str();
  sub->add_option("--metrics", a->metrics,
                  "Metrics file of the run (default: the one recorded in the model)");
  sub->add_option("--data", a->data,
                  "Data for the pictures (default: the model's built-in dataset; image models: "
                  "fashion-mnist; a model fitted to a target: the target)");
  add_target_options(sub, a->target, false);
  sub->add_option("--seed", a->seed, "Seed of the samples in the pictures")
      ->check(non_negative())
      ->capture_default_str();
  add_threads_option(sub, a->threads);
  sub->callback([a] { run_report(*a); });
}

}  // namespace zflow::cli
