#include "zflow/data/images.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <limits>
#include <optional>
#include <string>
#include <vector>

#include <ATen/Functions.h>
#include <c10/util/Exception.h>

#include "support/expect_error.h"
#include "support/required.h"
#include "support/temp_dir.h"
#include "zflow/core/error.h"
#include "zflow/io/idx.h"
#include "zflow/io/image.h"

namespace fs = std::filesystem;
using zflow::ConfigError;
using zflow::DataError;
using zflow::IOError;
using zflow::data::fashion_mnist_dir;
using zflow::data::image_grid;
using zflow::data::ImageSet;
using zflow::data::is_image_source;
using zflow::data::load_images;
using zflow::data::parse_grid;
using zflow::io::IdxArray;
using zflow::io::Image;

namespace {

using zflow::testing::expect_error;

/// A fresh directory per test under the system temp folder, removed afterwards.
class ImagesTest : public zflow::testing::TempDirTest {
 protected:
  ImagesTest() : TempDirTest("zflow_test_images") {}

  /// Creates a sub-folder and returns its path.
  std::string folder(const std::string& name) const {
    fs::create_directories(dir_ / name);
    return path(name);
  }
};

/// Sets an environment variable for the lifetime of the guard, then restores it.
class EnvGuard {
 public:
  EnvGuard(const char* name, const std::optional<std::string>& value) : name_(name) {
    if (const char* old = std::getenv(name)) old_ = old;
    if (value) {
      ::setenv(name, value->c_str(), 1);
    } else {
      ::unsetenv(name);
    }
  }
  EnvGuard(const EnvGuard&) = delete;
  EnvGuard& operator=(const EnvGuard&) = delete;
  ~EnvGuard() {
    if (old_) {
      ::setenv(name_, old_->c_str(), 1);
    } else {
      ::unsetenv(name_);
    }
  }

 private:
  const char* name_;
  std::optional<std::string> old_;
};

/// The value of pixel (y, x, channel k) of test image n: distinct over a small set.
uint8_t value(int64_t n, int64_t y, int64_t x, int64_t k) {
  return static_cast<uint8_t>(n * 50 + y * 12 + x * 3 + k);
}

Image make_image(int64_t n, int64_t width, int64_t height, int64_t channels) {
  Image image{width, height, channels, {}};
  for (int64_t y = 0; y < height; ++y) {
    for (int64_t x = 0; x < width; ++x) {
      for (int64_t k = 0; k < channels; ++k) image.pixels.push_back(value(n, y, x, k));
    }
  }
  return image;
}

/// An IDX array [N, H, W] or [N, H, W, C] holding value(n, y, x, k).
IdxArray make_idx(int64_t n, int64_t h, int64_t w, int64_t c, bool four_d) {
  IdxArray array;
  array.dims = four_d ? std::vector<int64_t>{n, h, w, c} : std::vector<int64_t>{n, h, w};
  for (int64_t i = 0; i < n; ++i) {
    for (int64_t y = 0; y < h; ++y) {
      for (int64_t x = 0; x < w; ++x) {
        for (int64_t k = 0; k < c; ++k) array.data.push_back(value(i, y, x, k));
      }
    }
  }
  return array;
}

/// Checks images [N, C, H, W] against value(n, y, x, k).
void expect_values(const at::Tensor& images, int64_t n, int64_t c, int64_t h, int64_t w) {
  ASSERT_EQ(images.scalar_type(), at::kFloat);
  ASSERT_EQ(images.sizes(), (std::vector<int64_t>{n, c, h, w}));
  ASSERT_TRUE(images.is_contiguous());
  const auto a = images.accessor<float, 4>();
  for (int64_t i = 0; i < n; ++i) {
    for (int64_t k = 0; k < c; ++k) {
      for (int64_t y = 0; y < h; ++y) {
        for (int64_t x = 0; x < w; ++x) {
          ASSERT_EQ(a[i][k][y][x], static_cast<float>(value(i, y, x, k)))
              << "image " << i << " channel " << k << " at (" << y << ", " << x << ")";
        }
      }
    }
  }
}

std::vector<int64_t> to_vec(const at::Tensor& t) {
  const at::Tensor c = t.contiguous();
  return std::vector<int64_t>(c.data_ptr<int64_t>(), c.data_ptr<int64_t>() + c.numel());
}

/// Pixel (y, x) of channel k of CIFAR test image `id`: differs between channels, rows and
/// columns, so that a wrong layout shows.
uint8_t cifar_value(int64_t id, int64_t k, int64_t y, int64_t x) {
  return static_cast<uint8_t>(id * 31 + k * 83 + y * 5 + x);
}

/// A CIFAR record: the label bytes, then the red, green and blue planes of image `id`.
std::string cifar_record(const std::vector<uint8_t>& label, int64_t id) {
  std::string out(label.begin(), label.end());
  for (int64_t k = 0; k < 3; ++k) {
    for (int64_t y = 0; y < 32; ++y) {
      for (int64_t x = 0; x < 32; ++x) out.push_back(static_cast<char>(cifar_value(id, k, y, x)));
    }
  }
  return out;
}

/// Checks CIFAR images [N, 3, 32, 32] against cifar_value for the given ids.
void expect_cifar_values(const at::Tensor& images, const std::vector<int64_t>& ids) {
  const auto n = static_cast<int64_t>(ids.size());
  ASSERT_EQ(images.scalar_type(), at::kFloat);
  ASSERT_EQ(images.sizes(), (std::vector<int64_t>{n, 3, 32, 32}));
  const auto a = images.accessor<float, 4>();
  for (int64_t i = 0; i < n; ++i) {
    for (int64_t k = 0; k < 3; ++k) {
      for (int64_t y = 0; y < 32; ++y) {
        for (int64_t x = 0; x < 32; ++x) {
          ASSERT_EQ(a[i][k][y][x],
                    static_cast<float>(cifar_value(ids[static_cast<size_t>(i)], k, y, x)))
              << "image " << i << " channel " << k << " at (" << y << ", " << x << ")";
        }
      }
    }
  }
}

std::vector<int64_t> iota(int64_t begin, int64_t end) {
  std::vector<int64_t> out;
  for (int64_t i = begin; i < end; ++i) out.push_back(i);
  return out;
}

/// CIFAR folders for the tests, written record by record in the binary format.
class CifarTest : public ImagesTest {
 protected:
  /// A CIFAR-10 folder: five training batches of 3 records (images 0..14, label id % 10) and
  /// a test batch of 2 (images 100 and 101, labels 7 and 3).
  std::string cifar10(const std::string& name = "cifar-10-batches-bin") const {
    const std::string dir = folder(name);
    for (int b = 0; b < 5; ++b) {
      std::string bytes;
      for (int r = 0; r < 3; ++r) {
        const int id = b * 3 + r;
        bytes += cifar_record({static_cast<uint8_t>(id % 10)}, id);
      }
      write_bytes(name + "/data_batch_" + std::to_string(b + 1) + ".bin", bytes);
    }
    write_bytes(name + "/test_batch.bin", cifar_record({7}, 100) + cifar_record({3}, 101));
    return dir;
  }
};

}  // namespace

// ---------------------------------------------------------------------------------------
// Folders of PNG files
// ---------------------------------------------------------------------------------------

TEST_F(ImagesTest, PngFolderLoadsInSortedOrder) {
  const std::string dir = folder("gray");
  // Written out of order: the name order is what counts.
  zflow::io::write_png(dir + "/c.png", make_image(2, 4, 3, 1));
  zflow::io::write_png(dir + "/a.png", make_image(0, 4, 3, 1));
  zflow::io::write_png(dir + "/b.PNG", make_image(1, 4, 3, 1));
  std::ofstream(dir + "/notes.txt") << "not an image";
  fs::create_directories(dir + "/sub.png");  // a folder, not a file
  const ImageSet set = load_images(dir);
  expect_values(set.images, 3, 1, 3, 4);
  EXPECT_FALSE(set.labels.defined());
  EXPECT_EQ(set.source, dir);
}

TEST_F(ImagesTest, RgbPngFolderIsChannelsFirst) {
  const std::string dir = folder("rgb");
  zflow::io::write_png(dir + "/0.png", make_image(0, 5, 2, 3));
  zflow::io::write_png(dir + "/1.png", make_image(1, 5, 2, 3));
  expect_values(load_images(dir).images, 2, 3, 2, 5);
}

TEST_F(ImagesTest, PngFolderWithMixedSizesNamesTheFirstFileThatDiffers) {
  const std::string dir = folder("mixed");
  zflow::io::write_png(dir + "/a.png", make_image(0, 4, 3, 1));
  zflow::io::write_png(dir + "/b.png", make_image(1, 4, 3, 1));
  zflow::io::write_png(dir + "/c.png", make_image(2, 5, 3, 1));
  zflow::io::write_png(dir + "/d.png", make_image(3, 6, 3, 1));
  expect_error<DataError>([&] { load_images(dir); },
                          {dir + "/c.png: image is 5x3 gray", dir + "/a.png", "is 4x3 gray"});
  // A channel mismatch alone is also a difference.
  const std::string channels = folder("channels");
  zflow::io::write_png(channels + "/a.png", make_image(0, 4, 3, 1));
  zflow::io::write_png(channels + "/b.png", make_image(1, 4, 3, 3));
  expect_error<DataError>([&] { load_images(channels); },
                          {channels + "/b.png: image is 4x3 RGB", "is 4x3 gray"});
  // With a limit the differing file is never read.
  EXPECT_EQ(load_images(dir, "train", 2).images.size(0), 2);
}

TEST_F(ImagesTest, EmptyFolderIsADataError) {
  const std::string empty = folder("empty");
  expect_error<DataError>([&] { load_images(empty); }, {empty, "no .png files"});
  const std::string others = folder("others");
  std::ofstream(others + "/a.jpg") << "x";
  expect_error<DataError>([&] { load_images(others); }, {others, "no .png files"});
}

TEST_F(ImagesTest, DamagedPngInAFolderIsAnIOErrorNamingIt) {
  const std::string dir = folder("damaged");
  zflow::io::write_png(dir + "/a.png", make_image(0, 4, 3, 1));
  std::ofstream(dir + "/b.png") << "not a png";
  expect_error<IOError>([&] { load_images(dir); }, {dir + "/b.png"});
}

TEST_F(ImagesTest, LimitKeepsTheFirstImagesOfAFolder) {
  const std::string dir = folder("limit");
  for (int i = 0; i < 4; ++i) {
    zflow::io::write_png(dir + "/" + std::to_string(i) + ".png", make_image(i, 3, 2, 1));
  }
  expect_values(load_images(dir, "train", 3).images, 3, 1, 2, 3);
  expect_values(load_images(dir, "train", 10).images, 4, 1, 2, 3);
  expect_values(load_images(dir, "train", 0).images, 4, 1, 2, 3);
}

// ---------------------------------------------------------------------------------------
// IDX files
// ---------------------------------------------------------------------------------------

TEST_F(ImagesTest, Idx3DLoadsWithLabelsFoundBeside) {
  const std::string images = path("toy-images-idx3-ubyte.gz");
  zflow::io::write_idx(images, make_idx(5, 3, 4, 1, false), true);
  zflow::io::write_idx(path("toy-labels-idx1-ubyte.gz"), IdxArray{{5}, {3, 1, 4, 1, 5}}, true);
  const ImageSet set = load_images(images);
  expect_values(set.images, 5, 1, 3, 4);
  ASSERT_TRUE(set.labels.defined());
  EXPECT_EQ(set.labels.scalar_type(), at::kLong);
  EXPECT_EQ(to_vec(set.labels), (std::vector<int64_t>{3, 1, 4, 1, 5}));
  EXPECT_EQ(set.source, images);

  const ImageSet limited = load_images(images, "train", 2);
  expect_values(limited.images, 2, 1, 3, 4);
  EXPECT_EQ(to_vec(limited.labels), (std::vector<int64_t>{3, 1}));
}

TEST_F(ImagesTest, Idx4DRgbIsTransposedToChannelsFirst) {
  // Plain images beside gzip labels: either compression is found.
  const std::string images = path("rgb-images-idx4-ubyte");
  zflow::io::write_idx(images, make_idx(2, 3, 4, 3, true));
  zflow::io::write_idx(path("rgb-labels-idx1-ubyte.gz"), IdxArray{{2}, {9, 0}}, true);
  const ImageSet set = load_images(images);
  expect_values(set.images, 2, 3, 3, 4);
  EXPECT_EQ(to_vec(set.labels), (std::vector<int64_t>{9, 0}));

  const std::string gray = path("gray.idx");
  zflow::io::write_idx(gray, make_idx(2, 3, 4, 1, true));
  const ImageSet g = load_images(gray);
  expect_values(g.images, 2, 1, 3, 4);
  EXPECT_FALSE(g.labels.defined());  // the name follows no convention: no labels
}

TEST_F(ImagesTest, IdxWithoutLabelsOrWithWrongLabelsOrShape) {
  const std::string images = path("nolabels-images-idx3-ubyte");
  zflow::io::write_idx(images, make_idx(3, 2, 2, 1, false));
  EXPECT_FALSE(load_images(images).labels.defined());

  const std::string wrong = path("wrong-images-idx3-ubyte");
  zflow::io::write_idx(wrong, make_idx(3, 2, 2, 1, false));
  const std::string labels = path("wrong-labels-idx1-ubyte");
  zflow::io::write_idx(labels, IdxArray{{2}, {1, 2}});
  expect_error<DataError>([&] { load_images(wrong); }, {labels, "expected 3 labels", "[2]"});

  const std::string flat = path("flat.idx");
  zflow::io::write_idx(flat, IdxArray{{2, 3}, {1, 2, 3, 4, 5, 6}});
  expect_error<DataError>([&] { load_images(flat); }, {flat, "[2, 3]"});
  const std::string two = path("two.idx");
  zflow::io::write_idx(two, make_idx(1, 2, 2, 2, true));
  expect_error<DataError>([&] { load_images(two); }, {two, "[1, 2, 2, 2]"});
}

// ---------------------------------------------------------------------------------------
// Specs
// ---------------------------------------------------------------------------------------

TEST_F(ImagesTest, IsImageSourceRecognisesSpecs) {
  for (const std::string& spec : std::vector<std::string>{
           "fashion-mnist", "fashion-mnist:train", "fashion-mnist:test", "fashion-mnist:other",
           "train-images-idx3-ubyte", "x/train-images-idx3-ubyte.gz", "a.idx", "a.idx.gz",
           "missing-ubyte"}) {
    EXPECT_TRUE(is_image_source(spec)) << spec;
  }
  EXPECT_TRUE(is_image_source(folder("pngs")));
  for (const std::string& spec :
       std::vector<std::string>{"", "moons", "data.csv", "data.npy", "a.png", "-ubyte", ".idx",
                                "fashion", "fashion-mnist-extra", path("nope")}) {
    EXPECT_FALSE(is_image_source(spec)) << spec;
  }
}

// A folder named like a built-in dataset does not hide the dataset; ./name reaches it.
TEST_F(ImagesTest, BuiltInDatasetNamesWinOverFolders) {
  const std::filesystem::path previous = std::filesystem::current_path();
  std::filesystem::current_path(folder("work"));
  std::filesystem::create_directory("moons");
  EXPECT_FALSE(is_image_source("moons"));
  EXPECT_TRUE(is_image_source("./moons"));
  std::filesystem::current_path(previous);
}

TEST_F(ImagesTest, BadSpecsAreClearErrors) {
  const std::string csv = path("data.csv");
  std::ofstream(csv) << "1,2\n";
  expect_error<ConfigError>([&] { load_images(csv); }, {csv, "is not image data"});
  const std::string missing = path("missing");
  expect_error<IOError>([&] { load_images(missing); }, {missing, "no such file or folder"});
  const std::string idx = path("missing-images-idx3-ubyte.gz");
  expect_error<IOError>([&] { load_images(idx); }, {idx});
  expect_error<ConfigError>([&] { load_images("fashion-mnist:valid"); },
                            {"'valid'", "fashion-mnist:test"});
  expect_error<ConfigError>([&] { load_images("fashion-mnist", "dev"); }, {"'dev'"});
}

TEST_F(ImagesTest, FashionMnistFolderComesFromTheEnvironment) {
  const std::string dir = folder("fmnist");
  {
    EnvGuard env("ZFLOW_FASHION_MNIST_DIR", dir);
    EXPECT_EQ(fashion_mnist_dir(), dir);
    expect_error<IOError>(
        [&] { load_images("fashion-mnist"); },
        {"Fashion-MNIST not found in " + dir +
         ": install Debian's dataset-fashion-mnist package (scripts/setup.sh does) or set "
         "ZFLOW_FASHION_MNIST_DIR"});

    zflow::io::write_idx(dir + "/t10k-images-idx3-ubyte.gz", make_idx(3, 2, 2, 1, false), true);
    zflow::io::write_idx(dir + "/t10k-labels-idx1-ubyte.gz", IdxArray{{3}, {7, 8, 9}}, true);
    zflow::io::write_idx(dir + "/train-images-idx3-ubyte", make_idx(4, 2, 2, 1, false));
    const ImageSet test = load_images("fashion-mnist:test");
    expect_values(test.images, 3, 1, 2, 2);
    EXPECT_EQ(to_vec(test.labels), (std::vector<int64_t>{7, 8, 9}));
    EXPECT_EQ(test.source, "fashion-mnist:test (" + dir + "/t10k-images-idx3-ubyte.gz)");
    EXPECT_EQ(load_images("fashion-mnist", "test").images.size(0), 3);
    // An unpacked file is found too; the default split is train.
    const ImageSet train = load_images("fashion-mnist");
    EXPECT_EQ(train.images.size(0), 4);
    EXPECT_FALSE(train.labels.defined());
    EXPECT_EQ(train.source, "fashion-mnist:train (" + dir + "/train-images-idx3-ubyte)");
  }
  {
    EnvGuard env("ZFLOW_FASHION_MNIST_DIR", std::nullopt);
    EXPECT_EQ(fashion_mnist_dir(), "/usr/share/datasets/fashion-mnist");
  }
  {
    EnvGuard env("ZFLOW_FASHION_MNIST_DIR", std::string());
    EXPECT_EQ(fashion_mnist_dir(), "/usr/share/datasets/fashion-mnist");
  }
}

TEST(FashionMnist, LoadsTheDebianPackage) {
  const std::string dir = fashion_mnist_dir();
  if (!fs::exists(fs::path(dir) / "train-images-idx3-ubyte.gz")) {
    ZFLOW_REQUIRED_BUT_MISSING("Fashion-MNIST is not installed in "
                               << dir << " (Debian package dataset-fashion-mnist)");
  }
  struct Split {
    const char* name;
    int64_t count;
  };
  for (const Split split : {Split{"train", 60000}, Split{"test", 10000}}) {
    SCOPED_TRACE(split.name);
    const ImageSet set = load_images(std::string("fashion-mnist:") + split.name);
    EXPECT_EQ(set.images.sizes(), (std::vector<int64_t>{split.count, 1, 28, 28}));
    EXPECT_EQ(set.images.scalar_type(), at::kFloat);
    EXPECT_EQ(set.images.min().item<float>(), 0.0f);
    EXPECT_EQ(set.images.max().item<float>(), 255.0f);
    const at::Tensor head = set.images.narrow(0, 0, 1000);  // a slice: no 188 MB copy
    EXPECT_TRUE(at::equal(head, head.round()));
    // Fashion-MNIST's mean pixel is about 73 (0.286 on a 0-1 scale).
    const double mean = set.images.mean().item<double>();
    EXPECT_GT(mean, 60.0);
    EXPECT_LT(mean, 90.0);
    ASSERT_TRUE(set.labels.defined());
    ASSERT_EQ(set.labels.sizes(), (std::vector<int64_t>{split.count}));
    // Ten balanced classes.
    const std::vector<int64_t> counts = to_vec(at::bincount(set.labels));
    EXPECT_EQ(counts, std::vector<int64_t>(10, split.count / 10));
    EXPECT_NE(set.source.find(std::string("fashion-mnist:") + split.name + " ("),
              std::string::npos);
  }
  EXPECT_EQ(load_images("fashion-mnist", "test", 100).labels.size(0), 100);
}

// ---------------------------------------------------------------------------------------
// CIFAR-10 and CIFAR-100 (binary version)
// ---------------------------------------------------------------------------------------

TEST_F(CifarTest, Cifar10TrainIsTheFiveBatchesInOrder) {
  const std::string dir = cifar10();
  const ImageSet train = load_images(dir);
  expect_cifar_values(train.images, iota(0, 15));
  EXPECT_EQ(train.labels.scalar_type(), at::kLong);
  EXPECT_EQ(to_vec(train.labels),
            (std::vector<int64_t>{0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 0, 1, 2, 3, 4}));
  EXPECT_EQ(train.source, "cifar-10:train (" + dir + ")");
  EXPECT_TRUE(train.class_names.empty());  // no batches.meta.txt
  EXPECT_EQ(load_images(dir + ":train").images.size(0), 15);
}

TEST_F(CifarTest, Cifar10TestSplitAndPixelLayout) {
  const std::string dir = cifar10();
  // Image 102 with one marked pixel at row 2, column 30: red 201, green 102, blue 3.
  std::string record = cifar_record({9}, 102);
  record[1 + 0 * 1024 + 2 * 32 + 30] = static_cast<char>(201);
  record[1 + 1 * 1024 + 2 * 32 + 30] = static_cast<char>(102);
  record[1 + 2 * 1024 + 2 * 32 + 30] = static_cast<char>(3);
  write_bytes("cifar-10-batches-bin/test_batch.bin", cifar_record({7}, 100) + record);

  const ImageSet test = load_images(dir + ":test");
  ASSERT_EQ(test.images.sizes(), (std::vector<int64_t>{2, 3, 32, 32}));
  expect_cifar_values(test.images.narrow(0, 0, 1), {100});
  EXPECT_EQ(test.images[1][0][2][30].item<float>(), 201.0f);
  EXPECT_EQ(test.images[1][1][2][30].item<float>(), 102.0f);
  EXPECT_EQ(test.images[1][2][2][30].item<float>(), 3.0f);
  // The neighbours keep their values: the mark landed at (2, 30) only.
  EXPECT_EQ(test.images[1][0][2][29].item<float>(), cifar_value(102, 0, 2, 29));
  EXPECT_EQ(test.images[1][0][30][2].item<float>(), cifar_value(102, 0, 30, 2));
  EXPECT_EQ(to_vec(test.labels), (std::vector<int64_t>{7, 9}));
  EXPECT_EQ(test.source, "cifar-10:test (" + dir + ")");
  // The default split picks it too.
  EXPECT_EQ(to_vec(load_images(dir, "test").labels), (std::vector<int64_t>{7, 9}));
}

TEST_F(CifarTest, LimitReadsOnlyTheRecordsItKeeps) {
  const std::string dir = cifar10();
  // Record 2 of batch 2 (image 5 of the split) has a bad label: only a read reaching it fails.
  std::string batch2;
  for (int r = 0; r < 3; ++r) batch2 += cifar_record({static_cast<uint8_t>(r == 2 ? 10 : 3)}, r);
  write_bytes("cifar-10-batches-bin/data_batch_2.bin", batch2);
  const ImageSet four = load_images(dir, "train", 4);
  expect_cifar_values(four.images, {0, 1, 2, 0});
  EXPECT_EQ(to_vec(four.labels), (std::vector<int64_t>{0, 1, 2, 3}));
  EXPECT_EQ(load_images(dir, "train", 5).images.size(0), 5);
  expect_error<DataError>([&] { load_images(dir, "train", 6); },
                          {dir + "/data_batch_2.bin", "record 2", "label 10", "0 to 9"});
  // A limit past the end keeps everything.
  EXPECT_EQ(load_images(dir + ":test", "train", 100).images.size(0), 2);
  EXPECT_EQ(load_images(dir + ":test", "train", 1).images.size(0), 1);
}

TEST_F(CifarTest, ClassNamesComeFromTheMetaFile) {
  const std::string dir = cifar10();
  // As in the real file: ten names, then empty lines; here also CRs and trailing spaces.
  write_text("cifar-10-batches-bin/batches.meta.txt",
             "airplane\r\nautomobile \nbird\ncat\ndeer\ndog\nfrog\nhorse\nship\ntruck\n\n\n");
  const ImageSet set = load_images(dir + ":test");
  EXPECT_EQ(set.class_names,
            (std::vector<std::string>{"airplane", "automobile", "bird", "cat", "deer", "dog",
                                      "frog", "horse", "ship", "truck"}));
  write_text("cifar-10-batches-bin/batches.meta.txt", "airplane\nautomobile\n");
  expect_error<DataError>([&] { load_images(dir + ":test"); },
                          {dir + "/batches.meta.txt", "expected 10", "found 2"});
}

TEST_F(CifarTest, Cifar100KeepsTheFineLabel) {
  const std::string dir = folder("cifar-100-binary");
  write_bytes("cifar-100-binary/train.bin",
              cifar_record({19, 99}, 0) + cifar_record({4, 30}, 1) + cifar_record({0, 0}, 2));
  write_bytes("cifar-100-binary/test.bin", cifar_record({11, 55}, 50));
  const ImageSet train = load_images(dir);
  expect_cifar_values(train.images, {0, 1, 2});
  EXPECT_EQ(to_vec(train.labels), (std::vector<int64_t>{99, 30, 0}));
  EXPECT_EQ(train.source, "cifar-100:train (" + dir + ")");
  EXPECT_TRUE(train.class_names.empty());
  EXPECT_EQ(to_vec(load_images(dir, "train", 2).labels), (std::vector<int64_t>{99, 30}));

  std::string names;
  for (int i = 0; i < 100; ++i) names += "class" + std::to_string(i) + "\n";
  write_text("cifar-100-binary/fine_label_names.txt", names);
  const ImageSet test = load_images(dir + ":test");
  expect_cifar_values(test.images, {50});
  EXPECT_EQ(to_vec(test.labels), (std::vector<int64_t>{55}));
  EXPECT_EQ(test.source, "cifar-100:test (" + dir + ")");
  ASSERT_EQ(test.class_names.size(), 100u);
  EXPECT_EQ(test.class_names[55], "class55");
}

TEST_F(CifarTest, DamagedCifar10FilesNameTheFile) {
  const std::string dir = cifar10();
  const std::string test = dir + "/test_batch.bin";
  write_bytes("cifar-10-batches-bin/test_batch.bin", cifar_record({1}, 0) + "12345");
  expect_error<IOError>([&] { load_images(dir + ":test"); }, {test, "3078 bytes", "3073-byte"});
  write_bytes("cifar-10-batches-bin/test_batch.bin", "");
  expect_error<IOError>([&] { load_images(dir + ":test"); }, {test, "empty"});
  write_bytes("cifar-10-batches-bin/test_batch.bin", cifar_record({1}, 0) + cifar_record({200}, 1));
  expect_error<DataError>([&] { load_images(dir + ":test"); }, {test, "record 1", "label 200"});

  // A missing training batch fails whatever the limit; the test split still loads.
  fs::remove(dir + "/data_batch_3.bin");
  expect_error<IOError>([&] { load_images(dir, "train", 1); }, {dir + "/data_batch_3.bin"});
  // A damaged later batch fails before any image is read.
  write_bytes("cifar-10-batches-bin/data_batch_3.bin", std::string(3073 * 2 + 1, '\0'));
  expect_error<IOError>([&] { load_images(dir, "train", 1); },
                        {dir + "/data_batch_3.bin", "6147 bytes", "3073-byte"});
  // A folder with the training batches only has no test split.
  const std::string only = cifar10("only-train");
  fs::remove(only + "/test_batch.bin");
  EXPECT_EQ(load_images(only).images.size(0), 15);
  expect_error<IOError>([&] { load_images(only + ":test"); }, {only + "/test_batch.bin"});
}

TEST_F(CifarTest, DamagedCifar100FilesNameTheFile) {
  const std::string dir = folder("cifar-100-binary");
  const std::string train = dir + "/train.bin";
  const std::string test = dir + "/test.bin";
  write_bytes("cifar-100-binary/train.bin", cifar_record({1, 2}, 0) + cifar_record({20, 2}, 1));
  write_bytes("cifar-100-binary/test.bin", cifar_record({1, 2}, 0) + "x");
  expect_error<DataError>([&] { load_images(dir); }, {train, "record 1", "coarse label 20"});
  write_bytes("cifar-100-binary/train.bin", cifar_record({1, 2}, 0) + cifar_record({19, 100}, 1));
  expect_error<DataError>([&] { load_images(dir); }, {train, "record 1", "fine label 100"});
  // train.bin's size tells the format, so test.bin's damage is reported as such.
  expect_error<IOError>([&] { load_images(dir + ":test"); }, {test, "3075 bytes", "3074-byte"});
  // With both damaged, the names file tells the format.
  write_bytes("cifar-100-binary/train.bin", "");
  std::string names;
  for (int i = 0; i < 100; ++i) names += "c" + std::to_string(i) + "\n";
  write_text("cifar-100-binary/fine_label_names.txt", names);
  expect_error<IOError>([&] { load_images(dir); }, {train, "empty"});
  expect_error<IOError>([&] { load_images(dir + ":test"); }, {test, "3075 bytes"});
}

TEST_F(CifarTest, SplitsAndSpecs) {
  const std::string dir = cifar10();
  expect_error<ConfigError>([&] { load_images(dir + ":valid"); },
                            {"'valid'", dir + ":train", dir + ":test"});
  expect_error<ConfigError>([&] { load_images(dir, "dev"); }, {"'dev'"});
  EXPECT_TRUE(is_image_source(dir));
  EXPECT_TRUE(is_image_source(dir + ":train"));
  EXPECT_TRUE(is_image_source(dir + ":test"));
  EXPECT_TRUE(is_image_source(dir + ":valid"));  // load_images then names the splits
  write_bytes("cifar-10-batches-bin:notes.csv", "a,b\n1,2\n");
  EXPECT_FALSE(is_image_source(dir + ":notes.csv"));  // a file named so is that file
  EXPECT_FALSE(is_image_source(path("missing") + ":train"));

  // A split is for CIFAR only: a folder of PNG files refuses one.
  const std::string pngs = folder("pngs");
  zflow::io::write_png(pngs + "/a.png", make_image(0, 4, 3, 1));
  EXPECT_TRUE(is_image_source(pngs + ":test"));
  expect_error<ConfigError>([&] { load_images(pngs + ":test"); }, {pngs + ":test", "CIFAR"});
  // Without a CIFAR file a folder stays a folder of PNG files.
  EXPECT_EQ(load_images(pngs).images.size(0), 1);
  // A train.bin of another size with no names file is not CIFAR-100.
  const std::string other = folder("other");
  write_bytes("other/train.bin", "12345");
  expect_error<DataError>([&] { load_images(other); }, {other, "no .png files"});

  // A built-in dataset's name with a split is still the dataset, even beside such a folder.
  const std::filesystem::path previous = std::filesystem::current_path();
  std::filesystem::current_path(dir_);
  std::filesystem::create_directory("moons");
  EXPECT_FALSE(is_image_source("moons:train"));
  EXPECT_TRUE(is_image_source("./moons:train"));
  std::filesystem::current_path(previous);
}

// ---------------------------------------------------------------------------------------
// Folders of PNG files with one subfolder per class
// ---------------------------------------------------------------------------------------

TEST_F(ImagesTest, ClassFoldersGiveLabelsInNameOrder) {
  const std::string dir = folder("classes");
  // Written out of order: class names, then file names, decide.
  folder("classes/dog");
  folder("classes/cat");
  folder("classes/empty");  // no PNG files: not a class
  std::ofstream(dir + "/empty/readme.txt") << "x";
  std::ofstream(dir + "/notes.txt") << "x";
  zflow::io::write_png(dir + "/dog/x.png", make_image(2, 5, 2, 3));
  zflow::io::write_png(dir + "/cat/b.png", make_image(1, 5, 2, 3));
  zflow::io::write_png(dir + "/cat/a.png", make_image(0, 5, 2, 3));
  EXPECT_TRUE(is_image_source(dir));
  const ImageSet set = load_images(dir);
  expect_values(set.images, 3, 3, 2, 5);
  ASSERT_TRUE(set.labels.defined());
  EXPECT_EQ(set.labels.scalar_type(), at::kLong);
  EXPECT_EQ(to_vec(set.labels), (std::vector<int64_t>{0, 0, 1}));
  EXPECT_EQ(set.class_names, (std::vector<std::string>{"cat", "dog"}));
  EXPECT_EQ(set.source, dir);

  // The limit keeps the first images; the labels still count every class.
  const ImageSet two = load_images(dir, "train", 2);
  expect_values(two.images, 2, 3, 2, 5);
  EXPECT_EQ(to_vec(two.labels), (std::vector<int64_t>{0, 0}));
  EXPECT_EQ(two.class_names, (std::vector<std::string>{"cat", "dog"}));

  // A flat folder has no labels and no class names.
  const ImageSet flat = load_images(dir + "/cat");
  EXPECT_FALSE(flat.labels.defined());
  EXPECT_TRUE(flat.class_names.empty());
}

TEST_F(ImagesTest, ClassFoldersMustAgreeInSize) {
  const std::string dir = folder("classes");
  folder("classes/a");
  folder("classes/b");
  zflow::io::write_png(dir + "/a/1.png", make_image(0, 4, 3, 3));
  zflow::io::write_png(dir + "/b/1.png", make_image(1, 4, 3, 1));
  expect_error<DataError>([&] { load_images(dir); },
                          {dir + "/b/1.png: image is 4x3 gray", dir + "/a/1.png", "4x3 RGB"});
}

TEST_F(ImagesTest, PngFilesBesideClassFoldersAreAnError) {
  const std::string dir = folder("mixed");
  folder("mixed/cat");
  zflow::io::write_png(dir + "/a.png", make_image(0, 4, 3, 1));
  zflow::io::write_png(dir + "/cat/b.png", make_image(1, 4, 3, 1));
  expect_error<DataError>([&] { load_images(dir); },
                          {dir + " mixes PNG files and class folders", "a.png", "cat/"});
}

// ---------------------------------------------------------------------------------------
// Image grids
// ---------------------------------------------------------------------------------------

TEST(ImageGrid, SizesFollowTheLayout) {
  const at::Tensor images = at::zeros({5, 1, 28, 28});
  const Image grid = image_grid(images, 2, 3, 2, 2);
  EXPECT_EQ(grid.width, 3 * 56 + 4 * 2);
  EXPECT_EQ(grid.height, 2 * 56 + 3 * 2);
  EXPECT_EQ(grid.channels, 1);
  EXPECT_EQ(grid.pixels.size(), static_cast<size_t>(grid.width * grid.height));
  const Image tight = image_grid(at::zeros({1, 3, 4, 5}), 1, 1, 0, 1);
  EXPECT_EQ(tight.width, 5);
  EXPECT_EQ(tight.height, 4);
  EXPECT_EQ(tight.channels, 3);
}

TEST(ImageGrid, PlacesScaledImagesOnTheBackground) {
  // Three 2x3 gray images (values 10 * n + 3 * y + x + 1, none equal to the background) in a
  // 2x2 grid with padding 1 and scale 2: cells are 6 wide and 4 high, the grid 15 x 11.
  at::Tensor images = at::empty({3, 1, 2, 3});
  for (int64_t n = 0; n < 3; ++n) {
    for (int64_t y = 0; y < 2; ++y) {
      for (int64_t x = 0; x < 3; ++x)
        images[n][0][y][x] = static_cast<float>(10 * n + 3 * y + x + 1);
    }
  }
  const Image grid = image_grid(images, 2, 2, 1, 2, 7);
  ASSERT_EQ(grid.width, 15);
  ASSERT_EQ(grid.height, 11);
  auto at_xy = [&](int64_t x, int64_t y) { return grid.pixels[static_cast<size_t>(y * 15 + x)]; };
  // Border and the gutters between cells.
  for (int64_t x = 0; x < 15; ++x) {
    EXPECT_EQ(at_xy(x, 0), 7);
    EXPECT_EQ(at_xy(x, 5), 7);
    EXPECT_EQ(at_xy(x, 10), 7);
  }
  for (int64_t y = 0; y < 11; ++y) {
    EXPECT_EQ(at_xy(0, y), 7);
    EXPECT_EQ(at_xy(7, y), 7);
    EXPECT_EQ(at_xy(14, y), 7);
  }
  // Image 0, pixel (0, 0) = 1 covers grid pixels x 1..2, y 1..2; pixel (1, 2) = 6 covers
  // x 5..6, y 3..4.
  EXPECT_EQ(at_xy(1, 1), 1);
  EXPECT_EQ(at_xy(2, 2), 1);
  EXPECT_EQ(at_xy(3, 1), 2);
  EXPECT_EQ(at_xy(6, 4), 6);
  EXPECT_EQ(at_xy(5, 3), 6);
  // Image 1 is to the right (x from 8), image 2 below image 0 (y from 6).
  EXPECT_EQ(at_xy(8, 1), 11);
  EXPECT_EQ(at_xy(13, 4), 16);
  EXPECT_EQ(at_xy(1, 6), 21);
  EXPECT_EQ(at_xy(6, 9), 26);
  // The fourth cell stays background; in all, 3 images x 24 pixels differ from it.
  for (int64_t y = 6; y < 10; ++y) {
    for (int64_t x = 8; x < 14; ++x) EXPECT_EQ(at_xy(x, y), 7);
  }
  int64_t foreground = 0;
  for (uint8_t p : grid.pixels) foreground += p != 7;
  EXPECT_EQ(foreground, 3 * 24);
}

TEST(ImageGrid, RgbIsInterleavedAndValuesAreClampedAndRounded) {
  at::Tensor rgb = at::empty({1, 3, 1, 2});
  const float values[3][2] = {{1, 2}, {3, 4}, {5, 6}};
  for (int k = 0; k < 3; ++k) {
    for (int x = 0; x < 2; ++x) rgb[0][k][0][x] = values[k][x];
  }
  const Image grid = image_grid(rgb, 1, 1, 0, 1);
  EXPECT_EQ(grid.pixels, (std::vector<uint8_t>{1, 3, 5, 2, 4, 6}));

  const float nan = std::numeric_limits<float>::quiet_NaN();
  const float inf = std::numeric_limits<float>::infinity();
  at::Tensor odd = at::empty({1, 1, 1, 7}, at::TensorOptions().dtype(at::kDouble));
  const double raw[7] = {-5, 300, 12.4, 12.6, nan, inf, -inf};
  for (int x = 0; x < 7; ++x) odd[0][0][0][x] = raw[x];
  EXPECT_EQ(image_grid(odd, 1, 1, 0, 1).pixels, (std::vector<uint8_t>{0, 255, 12, 13, 0, 255, 0}));
  const at::Tensor ints =
      at::arange(250, 260, at::TensorOptions().dtype(at::kLong)).view({1, 1, 1, 10});
  EXPECT_EQ(image_grid(ints, 1, 1, 0, 1).pixels,
            (std::vector<uint8_t>{250, 251, 252, 253, 254, 255, 255, 255, 255, 255}));
}

TEST(ImageGrid, RefusesBadArguments) {
  const at::Tensor images = at::zeros({5, 1, 4, 4});
  expect_error<ConfigError>([&] { image_grid(images, 2, 2); }, {"5 images", "2x2"});
  expect_error<ConfigError>([&] { image_grid(images, 0, 8); }, {"0x8"});
  expect_error<ConfigError>([&] { image_grid(images, 2, 3, 2, 0); }, {"scale"});
  expect_error<ConfigError>([&] { image_grid(images, 2, 3, -1); }, {"padding"});
  EXPECT_THROW(image_grid(at::zeros({5, 4, 4}), 2, 3), c10::Error);
  EXPECT_THROW(image_grid(at::zeros({5, 2, 4, 4}), 2, 3), c10::Error);
  EXPECT_THROW(image_grid(at::Tensor(), 2, 3), c10::Error);
}

TEST(ParseGrid, AcceptsRowsByColumnsOnly) {
  EXPECT_EQ(parse_grid("8x8"), (std::pair<int64_t, int64_t>{8, 8}));
  EXPECT_EQ(parse_grid("4X16"), (std::pair<int64_t, int64_t>{4, 16}));
  EXPECT_EQ(parse_grid("1x100"), (std::pair<int64_t, int64_t>{1, 100}));
  for (const std::string bad : {"", "8", "x8", "8x", "0x8", "8x0", "8x-1", "-8x8", "8x8x8", " 8x8",
                                "8 x 8", "axb", "8*8", "99999999999999999999x1"}) {
    expect_error<ConfigError>([&] { parse_grid(bad); }, {"'" + bad + "'", "ROWSxCOLS"});
  }
}
