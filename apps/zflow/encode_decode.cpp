// zflow encode / decode: map data to noise (z = f(x)) and back (x = f⁻¹(z)); for a
// conditional model z = f(x | c) and x = f⁻¹(z | c).

#include <memory>

#include <ATen/ATen.h>

#include "common.h"
#include "ode_options.h"
#include "outputs.h"
#include "zflow/core/error.h"
#include "zflow/data/toy.h"

namespace zflow::cli {

namespace {

struct CodeArgs {
  std::string model;
  std::string data;
  std::string columns;
  std::string header = "auto";
  std::string out = "-";
  std::string context_columns;  // encode
  std::string context;          // decode
  std::string context_file;     // decode
  int64_t batch_size = 65536;
  int threads = 1;
  std::string device = "cpu";
  SolverArgs solver;
};

void run_encode(const CodeArgs& a) {
  check_outputs({{"--out", a.out}}, {{"--model", a.model}, {"--data", a.data}});
  Model model = load_model(a.model);
  use_device(model, a.device);
  apply_threads(a.threads, workload_of(model));
  apply_solver_options(model, a.solver);
  if (data::is_toy_dataset(a.data)) {
    throw ConfigError("'" + a.data + "' is a built-in dataset; encode reads a .csv or .npy file");
  }
  const ModelData data =
      load_model_data(model, a.data, a.columns, a.context_columns, a.header, 0, 0);
  const at::Tensor x = to_model_dtype(data.x.values, model);
  const at::Tensor context =
      model.conditional() ? to_model_dtype(data.context.values, model) : at::Tensor();
  const at::Tensor z = map_with_context(model, x, context, a.batch_size,
                                        [&](const at::Tensor& rows, const at::Tensor& c) {
                                          return model.flow->transform_to_noise(rows, c);
                                        });
  std::vector<std::string> header;
  for (int64_t i = 0; i < model.features; ++i) header.push_back("z" + std::to_string(i + 1));
  // Images: one row of C·H·W latent values per image (decode reshapes them back).
  warn_non_finite(z, a.out,
                  "the model maps these rows out of " + dtype_name(model.dtype) + "'s range");
  write_result(a.out, z.reshape({z.size(0), -1}), header);
  print_nfe(model);
}

void run_decode(const CodeArgs& a) {
  check_outputs({{"--out", a.out}},
                {{"--model", a.model}, {"--data", a.data}, {"--context-file", a.context_file}});
  Model model = load_model(a.model);
  use_device(model, a.device);
  apply_threads(a.threads, workload_of(model));
  apply_solver_options(model, a.solver);
  if (data::is_toy_dataset(a.data)) {
    throw ConfigError("'" + a.data + "' is a built-in dataset; decode reads a .csv or .npy file");
  }
  const at::Tensor raw_context = load_context(model, a.context, a.context_file);
  const Data data = data::load_table(a.data, a.columns, a.header, 0, 0);
  data::check_width(data, model.features);
  at::Tensor z = to_model_dtype(data.values, model);
  if (model.image()) {
    std::vector<int64_t> shape{z.size(0)};
    shape.insert(shape.end(), model.image_shape.begin(), model.image_shape.end());
    z = z.reshape(shape);
  }
  at::Tensor context;
  if (raw_context.defined()) {
    const int64_t rows = z.size(0);
    const int64_t given = raw_context.size(0);
    if (given == 1) {
      context = raw_context.expand({rows, raw_context.size(1)});
    } else if (given == rows) {
      context = raw_context;
    } else {
      throw DataError(a.context_file + " has " + std::to_string(given) +
                      " contexts; decode needs one for all rows or one per row of " + a.data +
                      " (" + std::to_string(rows) + ")");
    }
    context = to_model_dtype(context, model);
  }
  const at::Tensor x = map_with_context(
      model, z, context, a.batch_size,
      [&](const at::Tensor& rows, const at::Tensor& c) { return model.flow->decode(rows, c); });
  warn_non_finite(x, a.out, "the model is numerically unstable there");
  print_nfe(model);
  if (model.image()) {
    if (has_extension(a.out, ".png")) {
      const auto [rows, cols] = squarest_grid(x.size(0));
      write_image_grid(a.out, x, rows, cols, 1);
      return;
    }
    std::vector<std::string> header;
    for (int64_t i = 0; i < model.features; ++i) header.push_back("p" + std::to_string(i));
    write_result(a.out, x.reshape({x.size(0), -1}), header);
    return;
  }
  // A conditional model's rows start with their context, as in sample's output.
  std::vector<std::string> header;
  if (context.defined()) header = model.context_header();
  for (const auto& name : model.data_header()) header.push_back(name);
  write_result(a.out, context.defined() ? at::cat({context, x}, 1) : x, header);
}

CLI::App* add_code_command(CLI::App& app, const std::string& name, const std::string& help,
                           bool encode) {
  auto a = std::make_shared<CodeArgs>();
  CLI::App* sub = app.add_subcommand(name, help);
  sub->add_option("--model,-m", a->model, "Model file written by 'zflow train'")->required();
  sub->add_option("--data", a->data,
                  encode ? "Data to encode (.csv/.npy file; image models: fashion-mnist, IDX or "
                           "PNG folder, one row of C*H*W values per image)"
                         : "Noise to decode (.csv/.npy file)")
      ->required();
  sub->add_option("--columns", a->columns, "Columns to use (default: all)");
  if (encode) {
    add_context_columns_option(sub, a->context_columns);
  } else {
    add_context_options(sub, a->context, a->context_file);
  }
  sub->add_option("--header", a->header, "Whether the CSV has a header row")
      ->check(CLI::IsMember({"auto", "yes", "no"}))
      ->capture_default_str();
  sub->add_option("--out,-o", a->out,
                  encode ? "Output .csv or .npy ('-': CSV on stdout)"
                         : "Output .csv or .npy ('-': CSV on stdout); image models: .png grid")
      ->capture_default_str();
  sub->add_option("--batch-size", a->batch_size, "Rows transformed at a time")
      ->check(positive())
      ->capture_default_str();
  add_threads_option(sub, a->threads);
  add_device_option(sub, a->device);
  add_solver_options(sub, a->solver);
  sub->callback([a, encode] {
    if (encode) {
      run_encode(*a);
    } else {
      run_decode(*a);
    }
  });
  return sub;
}

}  // namespace

void add_encode_decode(CLI::App& app) {
  CLI::App* encode = add_code_command(
      app, "encode", "Map data to noise, z = f(x) (columns z1..zD; decode inverts it)", true);
  set_example(encode,
              "zflow encode --model model.safetensors --data data.csv --out z.csv\n"
              "  zflow encode --model cond.safetensors --data runs.csv --out z.csv");
  CLI::App* decode = add_code_command(
      app, "decode", "Map noise back to data, x = f^-1(z) (the inverse of encode)", false);
  set_example(decode,
              "zflow decode --model model.safetensors --data z.csv --out x.csv\n"
              "  zflow decode --model cond.safetensors --data z.csv --context-file runs.csv");
}

}  // namespace zflow::cli
