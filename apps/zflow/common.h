#pragma once
/// \file
/// Pieces shared by the zflow subcommands: reading data (toy names, CSV, NPY), loading a
/// model and checking that data fit it, threads, the BLAS check, and writing results.
/// Conventions (docs/cli.md): data and results go to files or stdout, logs to stderr;
/// errors are thrown (zflow::ConfigError = usage, exit 2; anything else = exit 1) and
/// printed as one line by main.

#include <cstdint>
#include <functional>
#include <map>
#include <string>
#include <utility>
#include <vector>

#include <ATen/core/Tensor.h>
#include <CLI/CLI.hpp>

#include "zflow/core/spec.h"
#include "zflow/data/table.h"
#include "zflow/flows/flow.h"
#include "zflow/flows/model_card.h"

namespace zflow::cli {

// ---- subcommands (one file each) --------------------------------------------------------

void add_train(CLI::App& app);
void add_fit_target(CLI::App& app);
void add_integrate(CLI::App& app);
void add_sample(CLI::App& app);
void add_log_prob(CLI::App& app);
void add_eval(CLI::App& app);
void add_encode_decode(CLI::App& app);
void add_info(CLI::App& app);
void add_reconstruct(CLI::App& app);
void add_interpolate(CLI::App& app);
void add_plot(CLI::App& app);
void add_report(CLI::App& app);
void add_datasets(CLI::App& app);
void add_bench(CLI::App& app);

// ---- data (data/table.h) ------------------------------------------------------------------

using Data = data::Table;
using RawData = data::RawTable;
/// Data and, for a conditional model, its context, row by row.
using ModelData = data::TableWithContext;
using data::header_or_none;
using data::parse_columns;
using data::select_columns;

// ---- models ------------------------------------------------------------------------------

/// A loaded model file with what the CLI needs to know about it.
struct Model {
  std::string path;
  FlowPtr flow;
  std::map<std::string, std::string> metadata;
  /// Number of features (the flow's event size; C·H·W for an image model).
  int64_t features = 0;
  /// [C, H, W] for an image model, empty for a tabular one.
  std::vector<int64_t> image_shape;
  /// Floating dtype of its parameters.
  at::ScalarType dtype = at::kFloat;
  /// Where it runs (--device): inputs go there batch by batch, results come back to the CPU.
  at::Device device = at::kCPU;
  /// Column names stored at training time (possibly empty).
  std::vector<std::string> columns;
  /// Size K of the raw context (0: unconditional).
  int64_t context_features = 0;
  /// Context column names stored at training time (K names, possibly empty strings; empty
  /// for an unconditional model or an old file).
  std::vector<std::string> context_columns;
  /// File column indices of the data and context columns at training time (empty if not
  /// stored).
  std::vector<int64_t> data_indices;
  std::vector<int64_t> context_indices;
  /// Everything the file says of how the model was made.
  ModelCard card;

  /// A class-conditional image model: its context is the one-hot class (K classes).
  std::vector<std::string> class_names;

  bool conditional() const { return context_features > 0; }
  bool image() const { return !image_shape.empty(); }
  /// An image model conditional on the class of its images (p(x | y), y one-hot [K]).
  bool class_conditional() const { return image() && conditional(); }
  /// Names for output headers: the stored names, or x1..xD / c1..cK when any is missing.
  std::vector<std::string> data_header() const;
  std::vector<std::string> context_header() const;
  /// "2 context columns (c1, c2)".
  std::string describe_context() const;
};

/// Loads a checkpoint written by `zflow train` (or save_checkpoint). IOError naming the
/// file for a missing, damaged or foreign file.
Model load_model(const std::string& path);

/// --device cpu|cuda of the commands that run a model (sample, eval, log-prob, encode,
/// decode).
void add_device_option(CLI::App* app, std::string& device);
/// ConfigError unless `device` is "cpu", or "cuda" with CUDA available.
void check_device(const std::string& device);
/// Moves the model to `device` ("cpu" or "cuda"); ConfigError when CUDA is not available.
void use_device(Model& model, const std::string& device);

/// Image data (data::load_images: fashion-mnist[:train|:test], an IDX file, a CIFAR folder or a
/// folder of PNGs; `default_split` for plain "fashion-mnist"; `limit` > 0 keeps the first images).
Data load_image_data(const std::string& spec, const std::string& default_split, int64_t limit);

/// Labelled images for a class-conditional model: load_image_data with the labels as one-hot
/// contexts [N, K] (float64) and the names of the K classes (the source's class names, else
/// the label numbers "0" … "K−1", K = largest label + 1). ConfigError naming the source when
/// it has no labels.
struct ClassData {
  ModelData data;
  std::vector<std::string> class_names;
};
ClassData load_class_data(const std::string& spec, const std::string& default_split, int64_t limit);

/// An image model's data: load_image_data (test split by default) with the image size
/// checked against the model's (DataError naming both sizes); for a class-conditional model
/// with the one-hot labels as the context (ConfigError when the data have no labels,
/// DataError for a label the model has no class for).
ModelData load_model_images(const Model& model, const std::string& spec, int64_t limit);

/// Labels [N] (int64) as one-hot rows [N, K] (float64); DataError naming `source` for a
/// label outside 0 … K−1.
at::Tensor one_hot_classes(const at::Tensor& labels, int64_t classes, const std::string& source);

/// The one-hot context [1, K] (float64) of class `name_or_index` of a class-conditional
/// model: a class name or a number 0 … K−1. ConfigError when the model is not
/// class-conditional or there is no such class (naming the classes).
at::Tensor class_context(const Model& model, const std::string& name_or_index);

/// Writes images [N, C, H, W] (pixel values 0..255) as a PNG grid of rows × cols, each
/// pixel enlarged `scale` times; ConfigError unless `path` ends in .png.
void write_image_grid(const std::string& path, const at::Tensor& images, int64_t rows, int64_t cols,
                      int64_t scale);

/// Whether `path` ends in `extension` (".png", ".svg", ".html").
bool has_extension(const std::string& path, const std::string& extension);

/// The grid of about square shape that holds n images: {rows, cols}, cols = ⌈√n⌉.
std::pair<int64_t, int64_t> squarest_grid(int64_t n);

/// ConfigError unless `path` ends in `extension` (".png", ".svg", ".html"), naming `what`.
void require_extension(const std::string& path, const std::string& extension,
                       const std::string& what);

/// ConfigError before any work when a grid of rows × cols images of `image_shape`
/// ([C, H, W]), each pixel enlarged `scale` times, would exceed 16384 pixels a side.
void check_picture_size(int64_t rows, int64_t cols, const std::vector<int64_t>& image_shape,
                        int64_t scale);

/// Adds --scale (pixel enlargement of image grids).
void add_scale_option(CLI::App* app, int64_t& scale);

/// Reads the data for a model (log-prob, eval, encode). Unconditional model: load_data +
/// check_width (and ConfigError if `context_columns` is given). Conditional model: the
/// context columns are found by --context-columns, else by the stored names when the file
/// has a header with them, else (no header) by the stored training indices; the data
/// columns by --columns, else by the stored names, else by the stored indices (headerless
/// file, no --context-columns), else all the other columns. Widths are checked.
ModelData load_model_data(const Model& model, const std::string& spec, const std::string& columns,
                          const std::string& context_columns, const std::string& header, int64_t n,
                          uint64_t seed);

/// The data options of the commands that score data (log-prob, eval): a file with its
/// column choices, or a built-in dataset with the number of points and the test seed.
struct DataArgs {
  std::string data;
  std::string columns;
  std::string context_columns;
  std::string header = "auto";
  int64_t n = 100000;
  int64_t seed = 1000000;
};

/// Adds --data, --columns, --context-columns, --header, --n and --seed.
void add_data_options(CLI::App* app, DataArgs& args);

/// load_model_data with the options of `args`.
ModelData load_model_data(const Model& model, const DataArgs& args);

/// Adds --context-columns (log-prob, eval, encode: where the context is in the data file).
void add_context_columns_option(CLI::App* app, std::string& context_columns);

/// `fn` over the rows of x [N, ...] and their contexts [N, K] (undefined: none), `chunk`
/// rows at a time without autograd, on the model's device (each chunk moved there, each
/// result brought back to the CPU), the results concatenated.
at::Tensor map_with_context(
    const Model& model, const at::Tensor& x, const at::Tensor& context, int64_t chunk,
    const std::function<at::Tensor(const at::Tensor&, const at::Tensor&)>& fn);

/// log p(x) (or log p(x | c)) of every row [N], in batches, without autograd.
at::Tensor log_prob_of(const Model& model, const ModelData& data, int64_t batch_size);

/// Adds --context and --context-file (mutually exclusive) to a subcommand.
void add_context_options(CLI::App* app, std::string& context, std::string& context_file);

/// The contexts given with --context "a,b" (one row) or --context-file (C rows; a header
/// with the model's context names selects those columns, otherwise the file's columns
/// are the context): [C, K] float64. ConfigError when a conditional model gets neither
/// (naming the context columns), an unconditional one gets either, or --context is
/// malformed or of the wrong width; DataError for a file of the wrong width.
at::Tensor load_context(const Model& model, const std::string& context,
                        const std::string& context_file);

/// The data in the model's dtype.
at::Tensor to_model_dtype(const at::Tensor& values, const Model& model);

/// object[key] as a number, or NaN when it is missing or not a number (a model written
/// by an older zflow may store null for a NaN NLL).
double json_number(const Json& object, const std::string& key);

/// The metadata entry parsed as JSON, or null when absent or not JSON.
Json metadata_json(const Model& model, const std::string& key);

// ---- runtime -------------------------------------------------------------------------------

/// Adds `--threads N`; 0, the default, is "auto" (see apply_threads).
CLI::Option* add_threads_option(CLI::App* app, int& threads);
/// What a command computes, for the automatic thread count.
enum class Workload {
  /// A tabular model: small dense layers, whose operations do not split well.
  tabular,
  /// Image models (convolutions), and commands without a model.
  other,
};
/// The workload of a loaded model.
Workload workload_of(const Model& model);
/// zflow::set_threads(threads), or for 0 (auto): one thread for tabular models, which ran
/// slower on two threads than on one in training and in inference (docs/benchmarks.md,
/// "Threads"), and the CPUs this process may use otherwise. Returns the count applied.
int apply_threads(int threads, Workload workload);

/// Seeds torch's default CPU generator (weights initialisation, sampling).
void seed_torch(uint64_t seed);

/// The BLAS library loaded into this process, e.g.
/// "openblas (/usr/lib/x86_64-linux-gnu/openblas-pthread/libblas.so.3)" or
/// "reference BLAS (/usr/lib/x86_64-linux-gnu/blas/libblas.so.3)".
std::string active_blas();
/// Whether active_blas() names the slow netlib reference BLAS.
bool is_reference_blas(const std::string& blas);

/// Writes a [N, D] tensor to `path` (.npy, otherwise CSV; "-" = CSV on stdout).
void write_result(const std::string& path, const at::Tensor& values,
                  const std::vector<std::string>& header);

/// Computes `fn` over the rows of `data` in chunks without autograd, concatenating results.
at::Tensor map_in_chunks(const at::Tensor& data, int64_t chunk,
                         const std::function<at::Tensor(const at::Tensor&)>& fn);

/// "float32" / "float64".
std::string dtype_name(at::ScalarType dtype);

/// A number for humans: %.4g.
std::string fmt(double value, int precision = 4);

/// Option validators with readable messages ("--steps: must be a positive number, got 0").
const CLI::Validator& positive();
const CLI::Validator& non_negative();

/// Adds the common footer (an example) to a subcommand's help.
void set_example(CLI::App* app, const std::string& example);

// ---- non-finite results ---------------------------------------------------------------------

/// The rows of a result that hold NaN or Inf, counted chunk by chunk for a streamed output.
struct NonFinite {
  /// Rows in all, rows with a NaN or Inf, and the 0-based index of the first of them.
  int64_t total = 0;
  int64_t count = 0;
  int64_t first = -1;
  /// Counts the rows (along dimension 0) of `rows`, which follow those counted so far.
  void add(const at::Tensor& rows);
};

/// The rows of `values` (along dimension 0) that hold a NaN or Inf anywhere.
NonFinite count_non_finite(const at::Tensor& values);

/// "2 of 100 <what> (first: <unit> 7)", counted from 1 as people count rows.
std::string describe_non_finite(const NonFinite& bad, const std::string& what,
                                const std::string& unit = "row");

/// Commands that write per-row results never pass NaN or Inf silently: when `bad` counted
/// some, warns on stderr "zflow: warning: 2 of 100 rows of OUT are not finite (first: row
/// 7)", with `why` in brackets when given ("the output" for OUT "-").
void warn_non_finite(const NonFinite& bad, const std::string& out, const std::string& why = "",
                     const std::string& unit = "row");

/// The same for a whole result (one row per output row; for [N, C, H, W], one image per
/// image). Returns the number of rows that are not finite.
int64_t warn_non_finite(const at::Tensor& values, const std::string& out,
                        const std::string& why = "");

}  // namespace zflow::cli
