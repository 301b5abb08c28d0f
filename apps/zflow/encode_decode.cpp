// zflow encode / decode: map data to noise (z = f(x)) and back (x = f⁻¹(z)).

#include <memory>

#include "common.h"
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
  int64_t batch_size = 65536;
  int threads = 1;
};

void run_code(const CodeArgs& a, bool encode) {
  apply_threads(a.threads);
  const Model model = load_model(a.model);
  if (data::is_toy_dataset(a.data)) {
    throw ConfigError("'" + a.data + "' is a built-in dataset; " + (encode ? "encode" : "decode") +
                      " reads a .csv or .npy file");
  }
  const Data data = load_data(a.data, a.columns, a.header, 0, 0);
  check_width(data, model);
  const at::Tensor x = to_model_dtype(data.values, model);
  const at::Tensor y = map_in_chunks(x, a.batch_size, [&](const at::Tensor& chunk) {
    return encode ? model.flow->transform_to_noise(chunk) : model.flow->decode(chunk);
  });
  std::vector<std::string> header;
  if (encode) {
    for (int64_t i = 0; i < model.features; ++i) header.push_back("z" + std::to_string(i + 1));
  } else {
    header = header_or_none(model.columns);
    if (header.empty()) {
      for (int64_t i = 0; i < model.features; ++i) header.push_back("x" + std::to_string(i + 1));
    }
  }
  write_result(a.out, y, header);
}

CLI::App* add_code_command(CLI::App& app, const std::string& name, const std::string& help,
                           bool encode) {
  auto a = std::make_shared<CodeArgs>();
  CLI::App* sub = app.add_subcommand(name, help);
  sub->add_option("--model,-m", a->model, "Model file written by 'zflow train'")->required();
  sub->add_option("--data", a->data,
                  encode ? "Data to encode (.csv/.npy file)" : "Noise to decode (.csv/.npy file)")
      ->required();
  sub->add_option("--columns", a->columns, "Columns to use (default: all)");
  sub->add_option("--header", a->header, "Whether the CSV has a header row")
      ->check(CLI::IsMember({"auto", "yes", "no"}))
      ->capture_default_str();
  sub->add_option("--out,-o", a->out, "Output .csv or .npy ('-': CSV on stdout)")
      ->capture_default_str();
  sub->add_option("--batch-size", a->batch_size, "Rows transformed at a time")
      ->check(positive())
      ->capture_default_str();
  add_threads_option(sub, a->threads);
  sub->callback([a, encode] { run_code(*a, encode); });
  return sub;
}

}  // namespace

void add_encode_decode(CLI::App& app) {
  CLI::App* encode = add_code_command(
      app, "encode", "Map data to noise, z = f(x) (columns z1..zD; decode inverts it)", true);
  set_example(encode, "zflow encode --model model.safetensors --data data.csv --out z.csv");
  CLI::App* decode = add_code_command(
      app, "decode", "Map noise back to data, x = f^-1(z) (the inverse of encode)", false);
  set_example(decode, "zflow decode --model model.safetensors --data z.csv --out x.csv");
}

}  // namespace zflow::cli
