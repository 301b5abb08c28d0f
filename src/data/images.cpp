#include "zflow/data/images.h"
#include "zflow/data/toy.h"

#include <algorithm>
#include <cctype>
#include <charconv>
#include <climits>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <optional>
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

ImageSet load_png_folder(const std::string& dir, int64_t limit) {
  std::vector<fs::path> files;
  std::error_code ec;
  fs::directory_iterator it(dir, ec);
  if (ec) throw IOError("cannot read " + dir + ": " + ec.message());
  for (; it != fs::directory_iterator(); it.increment(ec)) {
    if (ec) break;
    std::error_code type_ec;
    if (lower(it->path().extension().string()) == ".png" && it->is_regular_file(type_ec)) {
      files.push_back(it->path());
    }
  }
  if (ec) throw IOError("cannot read " + dir + ": " + ec.message());
  if (files.empty()) throw DataError(dir + ": no .png files in the folder");
  std::sort(files.begin(), files.end(),
            [](const fs::path& a, const fs::path& b) { return a.filename() < b.filename(); });
  if (limit > 0 && static_cast<int64_t>(files.size()) > limit) {
    files.resize(static_cast<size_t>(limit));
  }

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

  ImageSet set;
  set.source = dir;
  set.images = to_nchw_float(data.data(), static_cast<int64_t>(files.size()), first.height,
                             first.width, first.channels);
  return set;
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
  return has_idx_name(spec);
}

ImageSet load_images(const std::string& spec, const std::string& default_split, int64_t limit) {
  if (spec == kFashionMnist) return load_fashion_mnist(spec, default_split, limit);
  const std::string prefix = std::string(kFashionMnist) + ":";
  if (starts_with(spec, prefix)) return load_fashion_mnist(spec, spec.substr(prefix.size()), limit);

  std::error_code ec;
  if (fs::is_directory(spec, ec)) return load_png_folder(spec, limit);
  if (has_idx_name(spec)) return load_idx_images(spec, limit);
  if (!path_exists(spec)) throw IOError("cannot read " + spec + ": no such file or folder");
  throw ConfigError(spec +
                    " is not image data: expected fashion-mnist[:train|test], an IDX file "
                    "(name ending in -ubyte, -ubyte.gz, .idx or .idx.gz) or a folder of PNG "
                    "files");
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
