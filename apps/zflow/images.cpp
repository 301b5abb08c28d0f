// zflow reconstruct / interpolate: pictures of what an image model does with real images,
// the encoder–decoder round trip and paths between two images through the latent space.

#include <iostream>
#include <memory>
#include <tuple>

#include <ATen/ATen.h>

#include "common.h"
#include "figures.h"
#include "ode_options.h"
#include "outputs.h"
#include "zflow/core/error.h"
#include "zflow/data/images.h"
#include "zflow/io/image.h"

namespace zflow::cli {

namespace {

struct PictureArgs {
  std::string model;
  std::string data = "fashion-mnist";
  std::string out;
  std::string grid = "4x8";  // reconstruct
  int64_t pairs = 4;         // interpolate
  int64_t steps = 9;         // interpolate
  int64_t scale = 2;
  int64_t seed = 0;
  int threads = 1;
  SolverArgs solver;  // continuous flows: encode and decode by this solver
};

/// The image model of `a`, with `count` of its images chosen at random.
/// The picture will be a grid of `grid_rows` × `grid_cols` images (checked for size first).
std::pair<Model, PickedImages> model_and_images(const PictureArgs& a, int64_t count,
                                                int64_t grid_rows, int64_t grid_cols) {
  require_extension(a.out, ".png", "--out");
  check_outputs({{"--out", a.out}}, {{"--model", a.model}, {"--data", a.data}});
  Model model = load_model(a.model);
  if (!model.image()) {
    throw ConfigError(a.model +
                      " is a tabular model; reconstruct and interpolate are for image "
                      "models (use encode and decode)");
  }
  check_picture_size(grid_rows, grid_cols, model.image_shape, a.scale);
  apply_solver_options(model, a.solver);
  PickedImages images = pick_images(model, a.data, count, static_cast<uint64_t>(a.seed));
  return {std::move(model), images};
}

void run_reconstruct(const PictureArgs& a) {
  apply_threads(a.threads, Workload::other);
  const auto [rows, cols] = data::parse_grid(a.grid);
  // Each image beside its reconstruction.
  auto [model, x] = model_and_images(a, rows * cols, rows, 2 * cols);
  seed_torch(static_cast<uint64_t>(a.seed));
  double error = 0;
  io::write_png(a.out, reconstruction_grid(model, x, rows, cols, a.scale, &error));
  std::cerr << "wrote " << rows * cols << " images and their reconstructions decode(encode(x)) to "
            << a.out << "; largest pixel error " << fmt(error) << " (of 255)\n";
  print_nfe(model);
}

void run_interpolate(const PictureArgs& a) {
  apply_threads(a.threads, Workload::other);
  if (a.steps < 2) throw ConfigError("--steps must be at least 2 (the two end images)");
  auto [model, x] = model_and_images(a, 2 * a.pairs, a.pairs, a.steps);
  seed_torch(static_cast<uint64_t>(a.seed));
  io::write_png(a.out, interpolation_grid(model, x, a.pairs, a.steps, a.scale));
  std::cerr << "wrote " << a.pairs << " interpolations of " << a.steps << " steps to " << a.out
            << "\n";
  print_nfe(model);
}

CLI::App* add_picture_command(CLI::App& app, const std::string& name, const std::string& help,
                              std::shared_ptr<PictureArgs> a) {
  CLI::App* sub = app.add_subcommand(name, help);
  sub->add_option("--model,-m", a->model, "Image model written by 'zflow train'")->required();
  sub->add_option("--data", a->data,
                  "Images: fashion-mnist (test split), fashion-mnist:train, an IDX file, a "
                  "CIFAR-10/100 folder (test split; DIR:train) or a folder of PNGs")
      ->capture_default_str();
  sub->add_option("--out,-o", a->out, "The picture to write (.png)")->required();
  add_scale_option(sub, a->scale);
  sub->add_option("--seed", a->seed, "Seed of the choice of images and of the dequantisation")
      ->check(non_negative())
      ->capture_default_str();
  add_threads_option(sub, a->threads);
  add_solver_options(sub, a->solver);
  return sub;
}

}  // namespace

void add_reconstruct(CLI::App& app) {
  auto a = std::make_shared<PictureArgs>();
  CLI::App* sub = add_picture_command(
      app, "reconstruct",
      "Picture of images and their reconstructions decode(encode(x)) (image models)", a);
  sub->add_option("--grid", a->grid,
                  "ROWSxCOLS images; each row of images is followed by its reconstructions")
      ->capture_default_str();
  set_example(sub, "zflow reconstruct --model glow.safetensors --grid 4x8 -o reconstructions.png");
  sub->callback([a] { run_reconstruct(*a); });
}

void add_interpolate(CLI::App& app) {
  auto a = std::make_shared<PictureArgs>();
  CLI::App* sub = add_picture_command(
      app, "interpolate",
      "Picture of paths between pairs of images through the latent space (image models)", a);
  sub->add_option("--pairs", a->pairs, "Pairs of images, one row each")
      ->check(positive())
      ->capture_default_str();
  sub->add_option("--steps", a->steps, "Images per row, both ends included")
      ->check(positive())
      ->capture_default_str();
  set_example(sub, "zflow interpolate --model glow.safetensors --pairs 4 --steps 9 -o interp.png");
  sub->callback([a] { run_interpolate(*a); });
}

}  // namespace zflow::cli
