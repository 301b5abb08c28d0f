#include "zflow/io/image.h"

#include <png.h>

#include <climits>
#include <csetjmp>
#include <cstdio>
#include <cstring>
#include <vector>

#include <stb/stb_image_write.h>

#include "zflow/core/error.h"
#include "zflow/io/atomic_file.h"

// PNGs are decoded with libpng, made for untrusted input (stb_image's own documentation says
// it is not); they are encoded with stb_image_write, whose implementation lives in Debian's
// libstb.so: no STB_*_IMPLEMENTATION here.

namespace zflow::io {
namespace {

constexpr char kPngSignature[] = "\x89PNG\r\n\x1a\n";

/// Checks the sizes of `image`; `what` starts the message ("cannot write x.png").
void check_image(const Image& image, const std::string& what) {
  const auto invalid = [&](const std::string& why) { throw ConfigError(what + ": " + why); };
  if (image.channels != 1 && image.channels != 3) {
    invalid("an image has 1 (gray) or 3 (RGB) channels, not " + std::to_string(image.channels));
  }
  if (image.width < 1 || image.height < 1 || image.width > INT_MAX / 3 || image.height > INT_MAX) {
    invalid("image size " + std::to_string(image.width) + "x" + std::to_string(image.height) +
            " is not positive or too large for PNG encoding");
  }
  const uint64_t need = static_cast<uint64_t>(image.width) * static_cast<uint64_t>(image.height) *
                        static_cast<uint64_t>(image.channels);
  if (need != image.pixels.size()) {
    invalid("a " + std::to_string(image.width) + "x" + std::to_string(image.height) + "x" +
            std::to_string(image.channels) + " image (width x height x channels) needs " +
            std::to_string(need) + " pixel bytes, it has " + std::to_string(image.pixels.size()));
  }
  // stb_image_write sizes its buffers with int arithmetic (a filter byte per row).
  if (need + static_cast<uint64_t>(image.height) > static_cast<uint64_t>(INT_MAX)) {
    invalid("a " + std::to_string(image.width) + "x" + std::to_string(image.height) +
            " image is too large for PNG encoding (over 2 GiB)");
  }
}

/// stb_image_write's output callback: appends to a std::string.
void append_to_string(void* context, void* data, int size) {
  static_cast<std::string*>(context)->append(static_cast<const char*>(data),
                                             static_cast<size_t>(size));
}

/// Encodes a checked image; empty on an stb failure (which is only a failed allocation).
std::string png_bytes(const Image& image) {
  std::string out;
  const int w = static_cast<int>(image.width);
  const int ok = stbi_write_png_to_func(append_to_string, &out, w, static_cast<int>(image.height),
                                        static_cast<int>(image.channels), image.pixels.data(),
                                        w * static_cast<int>(image.channels));
  if (ok == 0) out.clear();
  return out;
}

// ---- PNG decoding with libpng ---------------------------------------------------------------
//
// libpng reports errors by longjmp. The two functions that call setjmp keep no C++ object
// alive across it (a longjmp over a destructor is undefined): the header is read first,
// the pixel buffers are allocated by the caller in between, then the rows are read.

/// A file's bytes, the read position and the first error libpng reported.
struct PngSource {
  const unsigned char* data = nullptr;
  size_t size = 0;
  size_t position = 0;
  char error[200] = "";
};

void png_fail(png_structp png, png_const_charp message) {
  auto* source = static_cast<PngSource*>(png_get_error_ptr(png));
  if (source->error[0] == '\0') std::snprintf(source->error, sizeof source->error, "%s", message);
  png_longjmp(png, 1);
}

// The library never prints: warnings (a damaged ancillary chunk, which libpng skips) are
// dropped.
void png_ignore_warning(png_structp, png_const_charp) {}

void png_read_memory(png_structp png, png_bytep out, size_t count) {
  auto* source = static_cast<PngSource*>(png_get_io_ptr(png));
  if (count > source->size - source->position) png_error(png, "file truncated");
  std::memcpy(out, source->data + source->position, count);
  source->position += count;
}

/// Frees libpng's structures on every path out of read_png.
class PngReadGuard {
 public:
  PngReadGuard(png_structp png, png_infop info) : png_(png), info_(info) {}
  PngReadGuard(const PngReadGuard&) = delete;
  PngReadGuard& operator=(const PngReadGuard&) = delete;
  ~PngReadGuard() { png_destroy_read_struct(&png_, info_ ? &info_ : nullptr, nullptr); }

 private:
  png_structp png_;
  png_infop info_;
};

struct PngLayout {
  png_uint_32 width = 0, height = 0;
  /// Bytes of the decompressed data the header announces (filter bytes included).
  uint64_t stored_bytes = 0;
  /// Channels and bytes per row after the transformations (8 bits per channel).
  int channels = 0;
  size_t row_bytes = 0;
};

/// Reads the header and sets the transformations: 8 bits per channel (16-bit samples keep
/// their high byte, 1, 2 and 4-bit gray is scaled), palettes expanded to RGB. False on a
/// libpng error.
bool png_read_layout(png_structp png, png_infop info, PngLayout* layout) {
  if (setjmp(png_jmpbuf(png))) return false;
  png_read_info(png, info);
  const int bit_depth = png_get_bit_depth(png, info);
  const int color_type = png_get_color_type(png, info);
  layout->width = png_get_image_width(png, info);
  layout->height = png_get_image_height(png, info);
  const uint64_t bits_per_row =
      uint64_t{layout->width} * uint64_t{png_get_channels(png, info)} * uint64_t(bit_depth);
  layout->stored_bytes = uint64_t{layout->height} * ((bits_per_row + 7) / 8 + 1);
  if (bit_depth == 16) png_set_strip_16(png);
  if (color_type == PNG_COLOR_TYPE_PALETTE) png_set_palette_to_rgb(png);
  if (color_type == PNG_COLOR_TYPE_GRAY && bit_depth < 8) png_set_expand_gray_1_2_4_to_8(png);
  png_set_interlace_handling(png);
  png_read_update_info(png, info);
  layout->channels = png_get_channels(png, info);
  layout->row_bytes = png_get_rowbytes(png, info);
  return true;
}

bool png_read_rows(png_structp png, png_bytep* rows) {
  if (setjmp(png_jmpbuf(png))) return false;
  png_read_image(png, rows);
  return true;
}

/// deflate compresses at most 1032:1, so a file cannot hold more image data than this:
/// a header that claims more is damage, refused before the pixels are allocated.
constexpr uint64_t kMaxDeflateRatio = 1032;
/// Larger images are refused: 16384 x 16384, far beyond what zflow trains on.
constexpr uint64_t kMaxPngPixels = uint64_t{1} << 28;

}  // namespace

Image read_png(const std::string& path) {
  const std::string bytes = read_file(path);
  if (bytes.size() < 8 || std::memcmp(bytes.data(), kPngSignature, 8) != 0) {
    throw IOError(path + ": not a PNG file (no PNG signature)");
  }
  PngSource source;
  source.data = reinterpret_cast<const unsigned char*>(bytes.data());
  source.size = bytes.size();
  const auto fail = [&](const std::string& why) {
    return IOError(path + ": cannot decode PNG (" + why + ")");
  };
  png_structp png =
      png_create_read_struct(PNG_LIBPNG_VER_STRING, &source, png_fail, png_ignore_warning);
  if (png == nullptr) throw fail("libpng cannot start: out of memory");
  png_infop info = png_create_info_struct(png);
  PngReadGuard guard(png, info);
  if (info == nullptr) throw fail("libpng cannot start: out of memory");
  png_set_read_fn(png, &source, png_read_memory);

  PngLayout layout;
  if (!png_read_layout(png, info, &layout)) throw fail(std::string("libpng: ") + source.error);
  const uint64_t pixels = uint64_t{layout.width} * layout.height;
  if (pixels > kMaxPngPixels) {
    throw fail("the image is " + std::to_string(layout.width) + "x" +
               std::to_string(layout.height) + ", more than " + std::to_string(kMaxPngPixels) +
               " pixels");
  }
  if (layout.stored_bytes > kMaxDeflateRatio * bytes.size()) {
    throw fail("the header announces " + std::to_string(layout.width) + "x" +
               std::to_string(layout.height) + " pixels, more than a " +
               std::to_string(bytes.size()) + "-byte file can hold");
  }
  if (layout.channels < 1 || layout.channels > 4 ||
      layout.row_bytes != size_t{layout.width} * static_cast<size_t>(layout.channels)) {
    throw fail("unexpected layout after conversion to 8 bits");
  }
  std::vector<unsigned char> decoded(layout.row_bytes * layout.height);
  std::vector<png_bytep> rows(layout.height);
  for (size_t y = 0; y < rows.size(); ++y) rows[y] = decoded.data() + y * layout.row_bytes;
  if (!png_read_rows(png, rows.data())) throw fail(std::string("libpng: ") + source.error);

  // Gray and gray+alpha give gray; RGB, RGBA and palette images give RGB; alpha is dropped.
  Image image;
  image.width = layout.width;
  image.height = layout.height;
  image.channels = layout.channels <= 2 ? 1 : 3;
  if (image.channels == layout.channels) {
    image.pixels = std::move(decoded);
  } else {
    const auto keep = static_cast<size_t>(image.channels);
    const auto stride = static_cast<size_t>(layout.channels);
    image.pixels.resize(static_cast<size_t>(pixels) * keep);
    for (size_t i = 0; i < static_cast<size_t>(pixels); ++i) {
      std::memcpy(image.pixels.data() + i * keep, decoded.data() + i * stride, keep);
    }
  }
  return image;
}

std::string encode_png(const Image& image) {
  check_image(image, "cannot encode a PNG");
  std::string out = png_bytes(image);
  if (out.empty()) throw IOError("cannot encode a PNG: stb_image_write failed (out of memory?)");
  return out;
}

void write_png(const std::string& path, const Image& image) {
  check_image(image, "cannot write " + path);
  const std::string bytes = png_bytes(image);
  if (bytes.empty()) {
    throw IOError("cannot write " + path + ": PNG encoding failed (out of memory?)");
  }
  write_atomically(path, [&](std::ostream& out) {
    out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
  });
}

}  // namespace zflow::io
