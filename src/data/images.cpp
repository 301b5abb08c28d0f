#include "zflow/data/images.h"
#include "zflow/data/toy.h"

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <charconv>
#include <climits>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <optional>
#include <utility>
#include <vector>

#include <ATen/ATen.h>

#include "zflow/core/error.h"
#include "zflow/io/idx.h"

namespace zflow::data {
namespace {

namespace fs = std::filesystem;

constexpr const char* kFashionMnist = "fashion-mnist";
constexpr const char* kDefaultFashionMnistDir = "/usr/share/datasets/fashion-mnist";

bool ends_with(const std::string& s, const std::string& suffix) {
  return s.size() >= suffix.size() &&
         s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

bool starts_with(const std::string& s, const std::string& prefix) {
  return s.compare(0, prefix.size(), prefix) == 0;
}

std::string lower(std::string s) {
  for (char& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return s;
}

bool has_idx_name(const std::string& path) {
  const std::string name = fs::path(path).filename().string();
  for (const char* suffix : {"-ubyte", "-ubyte.gz", ".idx", ".idx.gz"}) {
    if (ends_with(name, suffix) && name.size() > std::strlen(suffix)) return true;
  }
  return false;
}

bool path_exists(const fs::path& p) {
  std::error_code ec;
  return fs::exists(p, ec);
}

std::string size_text(int64_t width, int64_t height, int64_t channels) {
  return std::to_string(width) + "x" + std::to_string(height) + " " +
         (channels == 1   ? "gray"
          : channels == 3 ? "RGB"
                          : std::to_string(channels) + "-channel");
}

std::string dims_text(const std::vector<int64_t>& dims) {
  std::string out = "[";
  for (size_t i = 0; i < dims.size(); ++i) out += (i > 0 ? ", " : "") + std::to_string(dims[i]);
  return out + "]";
}

/// The label file the MNIST naming convention pairs with an image file
/// ("X-images-idx3-ubyte[.gz]" -> "X-labels-idx1-ubyte[.gz]"), compressed like the images if
/// both forms exist; nullopt if the name does not follow the convention or no file exists.
std::optional<std::string> find_label_file(const std::string& images_path) {
  const fs::path path(images_path);
  const std::string name = path.filename().string();
  const std::string key = "-images-idx";
  const size_t at = name.rfind(key);
  if (at == std::string::npos) return std::nullopt;
  const size_t digit = at + key.size();
  if (digit >= name.size() || !std::isdigit(static_cast<unsigned char>(name[digit])) ||
      name.compare(digit + 1, 6, "-ubyte") != 0) {
    return std::nullopt;
  }
  const std::string base = name.substr(0, at) + "-labels-idx1-ubyte";
  const std::string rest = name.substr(digit + 7);
  std::vector<std::string> candidates = {base + rest};
  if (rest == ".gz") candidates.push_back(base);
  if (rest.empty()) candidates.push_back(base + ".gz");
  for (const auto& candidate : candidates) {
    const fs::path p = path.parent_path() / candidate;
    std::error_code ec;
    if (fs::is_regular_file(p, ec)) return p.string();
  }
  return std::nullopt;
}

/// uint8 [N, H, W, C] bytes -> float32 [N, C, H, W], converted in one pass (no intermediate
/// byte tensor: for Fashion-MNIST's 47 MB that copy costs as much as the conversion).
at::Tensor to_nchw_float(const uint8_t* data, int64_t n, int64_t h, int64_t w, int64_t c) {
  at::Tensor images = at::empty({n, c, h, w}, at::TensorOptions().dtype(at::kFloat));
  float* out = images.data_ptr<float>();
  const int64_t plane = h * w;
  for (int64_t i = 0; i < n; ++i) {
    const uint8_t* src = data + i * plane * c;
    float* dst = out + i * plane * c;
    for (int64_t p = 0; p < plane; ++p) {
      for (int64_t k = 0; k < c; ++k) dst[k * plane + p] = src[p * c + k];
    }
  }
  return images;
}

ImageSet load_idx_images(const std::string& path, int64_t limit) {
  io::IdxArray array = io::read_idx(path);
  const auto& d = array.dims;
  const bool ok = d.size() == 3 || (d.size() == 4 && (d[3] == 1 || d[3] == 3));
  if (!ok) {
    throw DataError(path + ": an IDX image file has the shape [N, H, W] or [N, H, W, C] with C " +
                    "1 or 3, this one has " + dims_text(d));
  }
  const int64_t total = d[0];
  const int64_t n = limit > 0 ? std::min(limit, total) : total;
  const int64_t c = d.size() == 4 ? d[3] : 1;

  ImageSet set;
  set.source = path;
  set.images = to_nchw_float(array.data.data(), n, d[1], d[2], c);

  if (const auto labels_path = find_label_file(path)) {
    const io::IdxArray labels = io::read_idx(*labels_path);
    if (labels.dims.size() != 1 || labels.dims[0] != total) {
      throw DataError(*labels_path + ": expected " + std::to_string(total) + " labels [" +
                      std::to_string(total) + "] for the images of " + path + ", found " +
                      dims_text(labels.dims));
    }
    set.labels = at::empty({n}, at::TensorOptions().dtype(at::kLong));
    int64_t* out = set.labels.data_ptr<int64_t>();
    for (int64_t i = 0; i < n; ++i) out[i] = labels.data[static_cast<size_t>(i)];
  }
  return set;
}

/// The .png files (case-insensitive, regular files only) and the subfolders directly in `dir`,
/// each sorted by name.
struct FolderListing {
  std::vector<fs::path> pngs;
  std::vector<fs::path> folders;
};

FolderListing list_folder(const fs::path& dir) {
  FolderListing out;
  std::error_code ec;
  fs::directory_iterator it(dir, ec);
  if (ec) throw IOError("cannot read " + dir.string() + ": " + ec.message());
  for (; it != fs::directory_iterator(); it.increment(ec)) {
    if (ec) break;
    std::error_code type_ec;
    if (it->is_directory(type_ec)) {
      out.folders.push_back(it->path());
    } else if (lower(it->path().extension().string()) == ".png" && it->is_regular_file(type_ec)) {
      out.pngs.push_back(it->path());
    }
  }
  if (ec) throw IOError("cannot read " + dir.string() + ": " + ec.message());
  const auto by_name = [](const fs::path& a, const fs::path& b) {
    return a.filename() < b.filename();
  };
  std::sort(out.pngs.begin(), out.pngs.end(), by_name);
  std::sort(out.folders.begin(), out.folders.end(), by_name);
  return out;
}

/// Reads PNG files of one size into float32 [N, C, H, W].
at::Tensor read_png_stack(const std::vector<fs::path>& files) {
  const io::Image first = io::read_png(files.front().string());
  const size_t image_bytes = first.pixels.size();
  std::vector<uint8_t> data;
  data.reserve(image_bytes * files.size());
  data.insert(data.end(), first.pixels.begin(), first.pixels.end());
  for (size_t i = 1; i < files.size(); ++i) {
    const io::Image image = io::read_png(files[i].string());
    if (image.width != first.width || image.height != first.height ||
        image.channels != first.channels) {
      throw DataError(files[i].string() + ": image is " +
                      size_text(image.width, image.height, image.channels) +
                      ", but the first image, " + files.front().string() + ", is " +
                      size_text(first.width, first.height, first.channels) +
                      " (all images in a folder must have the same size and channels)");
    }
    data.insert(data.end(), image.pixels.begin(), image.pixels.end());
  }
  return to_nchw_float(data.data(), static_cast<int64_t>(files.size()), first.height, first.width,
                       first.channels);
}

ImageSet load_png_folder(const std::string& dir, int64_t limit) {
  const FolderListing top = list_folder(dir);
  // Subfolders with PNG files are classes (torchvision's ImageFolder layout); the others, such
  // as a stray folder named "x.png" beside flat files, are ignored.
  std::vector<std::string> class_names;
  std::vector<fs::path> files;
  std::vector<int64_t> labels;
  for (const fs::path& folder : top.folders) {
    const FolderListing sub = list_folder(folder);
    if (sub.pngs.empty()) continue;
    if (!top.pngs.empty()) {
      // Either reading would drop images without a word: the flat files have no class, and
      // the class folders' images are not part of a flat folder.
      throw DataError(dir + " mixes PNG files and class folders (" +
                      top.pngs.front().filename().string() + " and " + folder.filename().string() +
                      "/): put every image in a class folder, or none in one");
    }
    const auto label = static_cast<int64_t>(class_names.size());
    class_names.push_back(folder.filename().string());
    files.insert(files.end(), sub.pngs.begin(), sub.pngs.end());
    labels.insert(labels.end(), sub.pngs.size(), label);
  }
  if (class_names.empty()) files = top.pngs;
  if (files.empty()) throw DataError(dir + ": no .png files in the folder or its class folders");
  if (limit > 0 && static_cast<int64_t>(files.size()) > limit) {
    files.resize(static_cast<size_t>(limit));
  }

  ImageSet set;
  set.source = dir;
  set.images = read_png_stack(files);
  if (!class_names.empty()) {
    set.labels =
        at::empty({static_cast<int64_t>(files.size())}, at::TensorOptions().dtype(at::kLong));
    std::copy(labels.begin(), labels.begin() + static_cast<std::ptrdiff_t>(files.size()),
              set.labels.data_ptr<int64_t>());
    set.class_names = std::move(class_names);
  }
  return set;
}

// CIFAR-10 and CIFAR-100, binary version (https://www.cs.toronto.edu/~kriz/cifar.html): files
// of records, each the label byte(s) and then a 32x32 RGB image as three planes (red, green,
// blue) of row-major bytes, which is already the [C, H, W] layout.

constexpr int64_t kCifarSide = 32;
constexpr int64_t kCifarPixels = 3 * kCifarSide * kCifarSide;
/// Records converted per read: bounds the byte buffer (3 MB) beside the float result.
constexpr int64_t kCifarChunk = 1024;

struct CifarFormat {
  const char* name;  ///< "cifar-10", for the source and messages
  int64_t label_bytes;
  int64_t classes;  ///< of the label kept (CIFAR-100: the fine label)
  const char* names_file;
  int64_t record_bytes() const { return label_bytes + kCifarPixels; }
};

const CifarFormat kCifar10{"cifar-10", 1, 10, "batches.meta.txt"};
const CifarFormat kCifar100{"cifar-100", 2, 100, "fine_label_names.txt"};

bool is_file(const fs::path& p) {
  std::error_code ec;
  return fs::is_regular_file(p, ec);
}

/// The CIFAR format of folder `dir`, decided by the files in it; nullptr if it is neither.
const CifarFormat* cifar_format(const fs::path& dir) {
  if (is_file(dir / "test_batch.bin")) return &kCifar10;
  for (int i = 1; i <= 5; ++i) {
    if (is_file(dir / ("data_batch_" + std::to_string(i) + ".bin"))) return &kCifar10;
  }
  // train.bin and test.bin are common names: their size (or CIFAR-100's names file) tells.
  bool found = false;
  for (const char* name : {"train.bin", "test.bin"}) {
    const fs::path p = dir / name;
    if (!is_file(p)) continue;
    found = true;
    std::error_code ec;
    const uintmax_t size = fs::file_size(p, ec);
    if (!ec && size % static_cast<uintmax_t>(kCifar100.record_bytes()) == 0) return &kCifar100;
  }
  if (found && is_file(dir / kCifar100.names_file)) return &kCifar100;
  return nullptr;
}

/// The number of records in a CIFAR file, checked against its size.
int64_t cifar_records(const fs::path& file, const CifarFormat& format) {
  std::error_code ec;
  if (!fs::exists(file, ec)) throw IOError("cannot read " + file.string() + ": no such file");
  const uintmax_t size = fs::file_size(file, ec);
  if (ec) throw IOError("cannot read " + file.string() + ": " + ec.message());
  const auto record = static_cast<uintmax_t>(format.record_bytes());
  if (size == 0) {
    throw IOError(file.string() + ": empty file (a " + format.name + " file holds " +
                  std::to_string(record) + "-byte records)");
  }
  if (size % record != 0) {
    throw IOError(file.string() + ": " + std::to_string(size) + " bytes is not a whole number of " +
                  std::to_string(record) + "-byte " + format.name +
                  " records (damaged or truncated file?)");
  }
  return static_cast<int64_t>(size / record);
}

/// Reads the first `count` records of `file` into images (count * 3072 floats) and labels.
void read_cifar_file(const fs::path& file, const CifarFormat& format, int64_t count, float* images,
                     int64_t* labels) {
  std::ifstream in(file, std::ios::binary);
  if (!in) throw IOError("cannot read " + file.string() + ": " + std::strerror(errno));
  const int64_t record = format.record_bytes();
  std::vector<uint8_t> buffer(static_cast<size_t>(std::min(count, kCifarChunk) * record));
  for (int64_t begin = 0; begin < count; begin += kCifarChunk) {
    const int64_t n = std::min(kCifarChunk, count - begin);
    in.read(reinterpret_cast<char*>(buffer.data()), static_cast<std::streamsize>(n * record));
    if (in.gcount() != static_cast<std::streamsize>(n * record)) {
      throw IOError("cannot read " + file.string() + ": the file ended or failed at record " +
                    std::to_string(begin + in.gcount() / record));
    }
    for (int64_t i = 0; i < n; ++i) {
      const uint8_t* src = buffer.data() + i * record;
      const int64_t index = begin + i;
      if (format.label_bytes == 2 && src[0] >= 20) {
        throw DataError(file.string() + ": record " + std::to_string(index) +
                        " (counting from 0) has coarse label " + std::to_string(src[0]) + ", but " +
                        format.name + " coarse labels are 0 to 19");
      }
      const uint8_t label = src[format.label_bytes - 1];
      if (label >= format.classes) {
        throw DataError(file.string() + ": record " + std::to_string(index) +
                        " (counting from 0) has " + (format.label_bytes == 2 ? "fine " : "") +
                        "label " + std::to_string(label) + ", but " + format.name + " " +
                        (format.label_bytes == 2 ? "fine " : "") + "labels are 0 to " +
                        std::to_string(format.classes - 1));
      }
      labels[index] = label;
      float* dst = images + index * kCifarPixels;
      for (int64_t p = 0; p < kCifarPixels; ++p) dst[p] = src[format.label_bytes + p];
    }
  }
}

/// A names file: one name a line, trailing whitespace (and a CR) trimmed, empty lines skipped
/// (CIFAR-10's batches.meta.txt ends in some); it must hold one name per class.
std::vector<std::string> read_class_names(const fs::path& file, const CifarFormat& format) {
  std::ifstream in(file);
  if (!in) throw IOError("cannot read " + file.string() + ": " + std::strerror(errno));
  std::vector<std::string> names;
  std::string line;
  while (std::getline(in, line)) {
    while (!line.empty() && std::isspace(static_cast<unsigned char>(line.back()))) {
      line.pop_back();
    }
    if (!line.empty()) names.push_back(line);
  }
  if (in.bad()) throw IOError("cannot read " + file.string() + ": read error");
  if (static_cast<int64_t>(names.size()) != format.classes) {
    throw DataError(file.string() + ": expected " + std::to_string(format.classes) + " " +
                    format.name + " class names, one a line, found " +
                    std::to_string(names.size()));
  }
  return names;
}

ImageSet load_cifar(const std::string& dir, const CifarFormat& format, const std::string& spec,
                    const std::string& split, int64_t limit) {
  if (split != "train" && split != "test") {
    throw ConfigError("unknown " + std::string(format.name) + " split '" + split + "' in '" + spec +
                      "' (use " + dir + ":train or " + dir + ":test)");
  }
  std::vector<fs::path> files;
  if (&format == &kCifar10 && split == "train") {
    for (int i = 1; i <= 5; ++i) {
      files.push_back(fs::path(dir) / ("data_batch_" + std::to_string(i) + ".bin"));
    }
  } else if (&format == &kCifar10) {
    files.push_back(fs::path(dir) / "test_batch.bin");
  } else {
    files.push_back(fs::path(dir) / (split + ".bin"));
  }
  // Every file is checked before any is read (sizes only), so that a damaged split fails the
  // same way whatever the limit.
  std::vector<int64_t> records;
  int64_t total = 0;
  for (const fs::path& file : files) {
    if (files.size() > 1 && !path_exists(file)) {
      throw IOError("cannot read " + file.string() + ": no such file (the " + format.name +
                    " training split is data_batch_1.bin to data_batch_5.bin)");
    }
    records.push_back(cifar_records(file, format));
    total += records.back();
  }
  const int64_t n = limit > 0 ? std::min(limit, total) : total;

  ImageSet set;
  set.source = std::string(format.name) + ":" + split + " (" + dir + ")";
  set.images = at::empty({n, 3, kCifarSide, kCifarSide}, at::TensorOptions().dtype(at::kFloat));
  set.labels = at::empty({n}, at::TensorOptions().dtype(at::kLong));
  float* images = set.images.data_ptr<float>();
  int64_t* labels = set.labels.data_ptr<int64_t>();
  int64_t done = 0;
  for (size_t i = 0; i < files.size() && done < n; ++i) {
    const int64_t take = std::min(records[i], n - done);
    read_cifar_file(files[i], format, take, images + done * kCifarPixels, labels + done);
    done += take;
  }
  const fs::path names = fs::path(dir) / format.names_file;
  if (is_file(names)) set.class_names = read_class_names(names, format);
  return set;
}

/// "DIR:SPLIT" for an existing directory DIR, as {DIR, SPLIT}; nullopt for anything else.
std::optional<std::pair<std::string, std::string>> split_dir_spec(const std::string& spec) {
  const size_t colon = spec.rfind(':');
  if (colon == std::string::npos || colon == 0) return std::nullopt;
  std::string dir = spec.substr(0, colon);
  std::error_code ec;
  if (!fs::is_directory(dir, ec)) return std::nullopt;
  return std::make_pair(std::move(dir), spec.substr(colon + 1));
}

ImageSet load_fashion_mnist(const std::string& spec, const std::string& split, int64_t limit) {
  if (split != "train" && split != "test") {
    throw ConfigError("unknown Fashion-MNIST split '" + split + "' in '" + spec +
                      "' (use fashion-mnist:train or fashion-mnist:test)");
  }
  const std::string dir = fashion_mnist_dir();
  const std::string stem = split == "train" ? "train-images-idx3-ubyte" : "t10k-images-idx3-ubyte";
  std::string file;
  for (const std::string& name : {stem + ".gz", stem}) {
    const fs::path p = fs::path(dir) / name;
    if (path_exists(p)) {
      file = p.string();
      break;
    }
  }
  if (file.empty()) {
    throw IOError("Fashion-MNIST not found in " + dir +
                  ": install Debian's dataset-fashion-mnist package (scripts/setup.sh does) or "
                  "set ZFLOW_FASHION_MNIST_DIR");
  }
  ImageSet set = load_idx_images(file, limit);
  set.source = std::string(kFashionMnist) + ":" + split + " (" + file + ")";
  return set;
}

/// Checked a * b + c for the grid's sizes.
int64_t mul_add(int64_t a, int64_t b, int64_t c, bool* overflow) {
  int64_t out = 0;
  *overflow =
      *overflow || __builtin_mul_overflow(a, b, &out) || __builtin_add_overflow(out, c, &out);
  return out;
}

}  // namespace

std::string fashion_mnist_dir() {
  const char* env = std::getenv("ZFLOW_FASHION_MNIST_DIR");
  return env != nullptr && *env != '\0' ? std::string(env) : std::string(kDefaultFashionMnistDir);
}

bool is_image_source(const std::string& spec) {
  if (spec == kFashionMnist || starts_with(spec, std::string(kFashionMnist) + ":")) return true;
  // A built-in dataset's name means the dataset even where a folder of that name exists in
  // the working directory (write ./moons for the folder).
  if (is_toy_dataset(spec)) return false;
  std::error_code ec;
  if (fs::is_directory(spec, ec)) return true;
  // "DIR:SPLIT" with any split, so that a misspelt one gets load_images' error naming the
  // splits rather than "no such file"; but a file whose name has a colon stays that file.
  if (const auto split = split_dir_spec(spec)) {
    if (!is_toy_dataset(split->first) && !path_exists(spec)) return true;
  }
  return has_idx_name(spec);
}

ImageSet load_images(const std::string& spec, const std::string& default_split, int64_t limit) {
  if (spec == kFashionMnist) return load_fashion_mnist(spec, default_split, limit);
  const std::string prefix = std::string(kFashionMnist) + ":";
  if (starts_with(spec, prefix)) return load_fashion_mnist(spec, spec.substr(prefix.size()), limit);

  std::error_code ec;
  if (fs::is_directory(spec, ec)) {
    if (const CifarFormat* format = cifar_format(spec)) {
      return load_cifar(spec, *format, spec, default_split, limit);
    }
    return load_png_folder(spec, limit);
  }
  if (const auto split = split_dir_spec(spec)) {
    const CifarFormat* format = cifar_format(split->first);
    if (format == nullptr) {
      throw ConfigError(spec + ": a split (:" + split->second + ") is for a CIFAR-10 or " +
                        "CIFAR-100 folder, and " + split->first +
                        " is neither (a folder of PNG files takes no split)");
    }
    return load_cifar(split->first, *format, spec, split->second, limit);
  }
  if (has_idx_name(spec)) return load_idx_images(spec, limit);
  if (!path_exists(spec)) throw IOError("cannot read " + spec + ": no such file or folder");
  throw ConfigError(spec +
                    " is not image data: expected fashion-mnist[:train|test], an IDX file "
                    "(name ending in -ubyte, -ubyte.gz, .idx or .idx.gz), a CIFAR-10 or "
                    "CIFAR-100 folder[:train|test] or a folder of PNG files");
}

io::Image image_grid(const at::Tensor& images, int64_t rows, int64_t cols, int64_t padding,
                     int64_t scale, uint8_t background) {
  TORCH_CHECK(images.defined(), "image_grid: the images are undefined");
  TORCH_CHECK(images.dim() == 4 && (images.size(1) == 1 || images.size(1) == 3),
              "image_grid: expected images [N, C, H, W] with C = 1 or 3, got ", images.sizes());
  TORCH_CHECK(images.size(2) > 0 && images.size(3) > 0, "image_grid: empty images ",
              images.sizes());
  if (rows < 1 || cols < 1) {
    throw ConfigError("image grid " + std::to_string(rows) + "x" + std::to_string(cols) +
                      ": rows and columns must be positive");
  }
  if (scale < 1) {
    throw ConfigError("image grid: scale must be positive, not " + std::to_string(scale));
  }
  if (padding < 0) {
    throw ConfigError("image grid: padding must not be negative, not " + std::to_string(padding));
  }
  const int64_t n = images.size(0);
  const int64_t c = images.size(1);
  const int64_t h = images.size(2);
  const int64_t w = images.size(3);
  bool overflow = false;
  const int64_t cells = mul_add(rows, cols, 0, &overflow);
  if (!overflow && n > cells) {
    throw ConfigError("image grid: " + std::to_string(n) + " images do not fit a " +
                      std::to_string(rows) + "x" + std::to_string(cols) + " grid");
  }
  const int64_t cell_w = mul_add(w, scale, 0, &overflow);
  const int64_t cell_h = mul_add(h, scale, 0, &overflow);
  const int64_t width = mul_add(cols, mul_add(cell_w, 1, padding, &overflow), padding, &overflow);
  const int64_t height = mul_add(rows, mul_add(cell_h, 1, padding, &overflow), padding, &overflow);
  const int64_t total = mul_add(mul_add(width, height, 0, &overflow), c, 0, &overflow);
  if (overflow || total > INT_MAX) {
    throw ConfigError("image grid: " + std::to_string(rows) + "x" + std::to_string(cols) +
                      " cells of " + std::to_string(w) + "x" + std::to_string(h) +
                      " images at scale " + std::to_string(scale) +
                      " make an image over 2^31 bytes");
  }

  const at::Tensor pixels =
      at::nan_to_num(images.detach().to(at::kCPU).to(at::kDouble), 0.0, 255.0, 0.0)
          .clamp(0.0, 255.0)
          .round()
          .to(at::kByte)
          .contiguous();
  const uint8_t* src = pixels.data_ptr<uint8_t>();

  io::Image grid;
  grid.width = width;
  grid.height = height;
  grid.channels = c;
  grid.pixels.assign(static_cast<size_t>(total), background);
  for (int64_t i = 0; i < n; ++i) {
    const int64_t x0 = padding + (i % cols) * (cell_w + padding);
    const int64_t y0 = padding + (i / cols) * (cell_h + padding);
    for (int64_t y = 0; y < cell_h; ++y) {
      uint8_t* row = grid.pixels.data() + ((y0 + y) * width + x0) * c;
      for (int64_t x = 0; x < cell_w; ++x) {
        for (int64_t k = 0; k < c; ++k) {
          row[x * c + k] = src[((i * c + k) * h + y / scale) * w + x / scale];
        }
      }
    }
  }
  return grid;
}

std::pair<int64_t, int64_t> parse_grid(const std::string& text) {
  const auto fail = [&]() -> std::pair<int64_t, int64_t> {
    throw ConfigError("grid '" + text +
                      "': expected ROWSxCOLS with positive whole numbers, e.g. 8x8");
  };
  const size_t x = text.find_first_of("xX");
  if (x == std::string::npos) return fail();
  const auto parse = [&](size_t begin, size_t end) -> int64_t {
    if (begin == end) return 0;
    for (size_t i = begin; i < end; ++i) {
      if (!std::isdigit(static_cast<unsigned char>(text[i]))) return 0;
    }
    int64_t value = 0;
    const auto [ptr, err] = std::from_chars(text.data() + begin, text.data() + end, value);
    if (err != std::errc() || ptr != text.data() + end) return 0;
    return value;
  };
  const int64_t rows = parse(0, x);
  const int64_t cols = parse(x + 1, text.size());
  if (rows < 1 || cols < 1) return fail();
  return {rows, cols};
}

}  // namespace zflow::data
