#pragma once
/// \file
/// Image datasets for zflow's image flows: Fashion-MNIST from Debian's dataset-fashion-mnist
/// package (Xiao, Rasul & Vollgraf 2017, "Fashion-MNIST: a Novel Image Dataset for
/// Benchmarking Machine Learning Algorithms", https://arxiv.org/abs/1708.07747: 28×28 gray
/// images, 60000 for training and 10000 for testing), IDX files (the MNIST format), the
/// binary versions of CIFAR-10 and CIFAR-100 (Krizhevsky 2009, "Learning Multiple Layers of
/// Features from Tiny Images", https://www.cs.toronto.edu/~kriz/cifar.html: 32×32 RGB
/// images, 50000 for training and 10000 for testing) and folders of PNG files, flat or with
/// one subfolder per class; and image grids, the way samples of an image flow are looked at.
///
/// Example:
///
///     namespace data = zflow::data;
///     data::ImageSet train = data::load_images("fashion-mnist:train", "train", /*limit=*/64);
///     // train.images [64, 1, 28, 28] float32 in 0..255, train.labels [64] int64
///     auto [rows, cols] = data::parse_grid("8x8");
///     zflow::io::write_png("grid.png", data::image_grid(train.images, rows, cols));

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include <ATen/core/Tensor.h>

#include "zflow/io/image.h"

namespace zflow::data {

/// Images as float32 [N, C, H, W] with the pixel values 0..255 (integers stored as floats),
/// labels int64 [N] when the source has them (IDX label file beside an IDX image file, named
/// by the MNIST convention: "X-images-idx3-ubyte[.gz]" -> "X-labels-idx1-ubyte[.gz]"; CIFAR;
/// class subfolders of a PNG folder), undefined otherwise.
struct ImageSet {
  at::Tensor images;
  at::Tensor labels;
  /// What was read, for messages ("fashion-mnist:train (/usr/share/datasets/fashion-mnist/
  /// train-images-idx3-ubyte.gz)", "cifar-10:test (DIR)", or the file or folder path).
  std::string source;
  /// The name of each label, indexed by label: a CIFAR folder's batches.meta.txt (CIFAR-10)
  /// or fine_label_names.txt (CIFAR-100) when it has one, the class subfolders' names of a
  /// PNG folder; empty otherwise (and always empty when `labels` is undefined).
  std::vector<std::string> class_names;
};

/// Folder of Debian's dataset-fashion-mnist package: $ZFLOW_FASHION_MNIST_DIR if set (and not
/// empty), else /usr/share/datasets/fashion-mnist.
std::string fashion_mnist_dir();

/// Whether `spec` names image data, so that a caller can tell it from a table: "fashion-mnist"
/// or "fashion-mnist:SPLIT" (any split: load_images reports a bad one), an existing directory
/// (CIFAR or PNG files), "DIR:SPLIT" for an existing directory DIR unless a file of that name
/// exists (load_images reports a split other than train or test, or one given to a folder
/// that is not CIFAR), or a file name ending in "-ubyte",
/// "-ubyte.gz", ".idx" or ".idx.gz" (decided by the name alone, so that a missing file gets
/// load_images' error). A single .png file is not a dataset, and a built-in tabular dataset's
/// name ("moons", also "moons:train") is never images, even when a folder of that name exists
/// ("./moons" is the folder).
bool is_image_source(const std::string& spec);

/// Loads image data:
/// - "fashion-mnist" (`default_split`, "train" or "test", picks the file) or
///   "fashion-mnist:train|test": train-images-idx3-ubyte.gz (60000 images) or
///   t10k-images-idx3-ubyte.gz (10000) from fashion_mnist_dir(), with their labels. IOError
///   "Fashion-MNIST not found in DIR: install Debian's dataset-fashion-mnist package
///   (scripts/setup.sh does) or set ZFLOW_FASHION_MNIST_DIR" if the file is missing;
///   ConfigError for another split.
/// - an IDX image file: 3-D [N, H, W] gives C = 1; 4-D [N, H, W, C] with C 1 or 3 is
///   transposed to [N, C, H, W]. Labels are read from the file the MNIST naming convention
///   gives, gzip-compressed or not, when it exists (it must then hold N labels). DataError
///   for other shapes.
/// - a CIFAR-10 or CIFAR-100 folder (binary version), "DIR" (`default_split` picks the split)
///   or "DIR:train|test", as float32 [N, 3, 32, 32] with labels (CIFAR-100: the fine labels,
///   0..99) and the source "cifar-10:SPLIT (DIR)" or "cifar-100:SPLIT (DIR)". CIFAR-10 is a
///   folder holding test_batch.bin or any of data_batch_1.bin .. data_batch_5.bin; its
///   training split is the five data batches in order (IOError naming a missing one), its
///   test split test_batch.bin. Otherwise CIFAR-100 is a folder holding train.bin or test.bin
///   where one of these is a whole number of 3074-byte records or fine_label_names.txt exists
///   beside (so that a damaged file still gets the error below); its splits are those files.
///   Before any pixel is read, every file of the split must exist (IOError naming its path)
///   and be a non-empty whole number of records (IOError naming the file, its size and the
///   record size: 3073 bytes for CIFAR-10, 3074 for CIFAR-100). A label out of range
///   (CIFAR-10 above 9, CIFAR-100 coarse above 19 or fine above 99) is a DataError naming the
///   file and the record (counting from 0). batches.meta.txt or fine_label_names.txt, when
///   present, must list the 10 or 100 class names one a line (empty lines are skipped,
///   trailing spaces and CRs trimmed), else DataError. ConfigError for a split other than
///   train or test, and for "DIR:SPLIT" where DIR is not a CIFAR folder.
/// - a directory of PNG files (case-insensitive ".png"; other files ignored), sorted by file
///   name. All must have the same width, height and channel count, else DataError naming
///   the first file that differs and both sizes; an empty directory is a DataError. Gray
///   PNGs give C = 1, RGB (and palette) C = 3; alpha is dropped (io::read_png).
/// - a directory with no PNG files of its own but subfolders holding PNG files (torchvision's
///   ImageFolder layout): each such subfolder is a class, labelled 0..K-1 in the order of the
///   subfolders' names (the names are `class_names`), and the images come in the order
///   (class, file name), under the same rules as a flat folder. Subfolders without PNG files
///   are ignored; a directory with both PNG files and class subfolders is a DataError ("DIR
///   mixes PNG files and class folders").
/// `limit` > 0 keeps only the first `limit` images (and reads no more than that from a
/// folder or CIFAR's files). IOError for unreadable or damaged files, ConfigError for a spec
/// that is none of the above.
ImageSet load_images(const std::string& spec, const std::string& default_split = "train",
                     int64_t limit = 0);

/// Tiles images [N, C, H, W] (values 0..255, any float or integer dtype, any device; NaN
/// becomes 0, then values are clamped and rounded to uint8) into a grid of rows x cols cells
/// filled row by row, with `padding` pixels between cells and around the border filled with
/// `background`, each image enlarged `scale` times by pixel repetition. The result is
/// (cols * W * scale + (cols + 1) * padding) wide. N may be less than rows * cols (the rest
/// stays background). C = 1 gives a gray image, C = 3 RGB. Tensor contracts are checked with
/// TORCH_CHECK; ConfigError for N > rows * cols, non-positive rows, cols or scale, negative
/// padding, or a grid over 2^31 bytes.
io::Image image_grid(const at::Tensor& images, int64_t rows, int64_t cols, int64_t padding = 2,
                     int64_t scale = 1, uint8_t background = 255);

/// Parses "8x8" (also "8X8") into {rows, cols}; ConfigError for anything else or non-positive
/// numbers.
std::pair<int64_t, int64_t> parse_grid(const std::string& text);

}  // namespace zflow::data
