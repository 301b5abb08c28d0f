#include "zflow/io/image.h"

#include <gtest/gtest.h>
#include <stb/stb_image_write.h>
#include <zlib.h>

#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

#include "support/expect_error.h"
#include "support/temp_dir.h"
#include "zflow/core/error.h"

namespace fs = std::filesystem;
using zflow::ConfigError;
using zflow::IOError;
using zflow::io::encode_png;
using zflow::io::Image;
using zflow::io::read_png;
using zflow::io::write_png;

namespace {

using zflow::testing::expect_error;

/// A fresh directory per test under the system temp folder, removed afterwards.
class ImageTest : public zflow::testing::TempDirTest {
 protected:
  ImageTest() : TempDirTest("zflow_test_image") {}
};

/// An image whose every byte differs from its neighbours, so that a transposition, a flip or
/// a channel swap shows.
Image make_image(int64_t width, int64_t height, int64_t channels) {
  Image image{width, height, channels, {}};
  image.pixels.resize(static_cast<size_t>(width * height * channels));
  for (size_t i = 0; i < image.pixels.size(); ++i) {
    image.pixels[i] = static_cast<uint8_t>((i * 53 + i / 7) & 0xff);
  }
  return image;
}

void append_be32(std::string& out, uint32_t v) {
  for (int shift = 24; shift >= 0; shift -= 8) out += static_cast<char>((v >> shift) & 0xff);
}

void append_chunk(std::string& out, const std::string& type, const std::string& data) {
  append_be32(out, static_cast<uint32_t>(data.size()));
  const std::string body = type + data;
  out += body;
  append_be32(out, static_cast<uint32_t>(
                       crc32(0, reinterpret_cast<const Bytef*>(body.data()), body.size())));
}

std::string zlib_compress(const std::string& raw) {
  uLongf size = compressBound(raw.size());
  std::string out(size, '\0');
  EXPECT_EQ(compress(reinterpret_cast<Bytef*>(out.data()), &size,
                     reinterpret_cast<const Bytef*>(raw.data()), raw.size()),
            Z_OK);
  out.resize(size);
  return out;
}

/// A PNG by hand: signature, IHDR, the `extra` chunks, one IDAT of the zlib-compressed `raw`
/// rows (each with its filter byte), IEND.
std::string png_by_hand(uint32_t width, uint32_t height, uint8_t depth, uint8_t color_type,
                        const std::string& raw,
                        const std::vector<std::pair<std::string, std::string>>& extra = {}) {
  std::string out("\x89PNG\r\n\x1a\n", 8);
  std::string ihdr;
  append_be32(ihdr, width);
  append_be32(ihdr, height);
  ihdr += static_cast<char>(depth);
  ihdr += static_cast<char>(color_type);
  ihdr += std::string(3, '\0');  // deflate, adaptive filtering, no interlace
  append_chunk(out, "IHDR", ihdr);
  for (const auto& [type, data] : extra) append_chunk(out, type, data);
  append_chunk(out, "IDAT", zlib_compress(raw));
  append_chunk(out, "IEND", "");
  return out;
}

/// A 16-bit gray PNG by hand (stb_image_write only writes 8 bits).
std::string png16_gray(uint32_t width, uint32_t height, const std::vector<uint16_t>& values) {
  std::string raw;
  for (uint32_t y = 0; y < height; ++y) {
    raw += '\0';  // filter type None
    for (uint32_t x = 0; x < width; ++x) {
      const uint16_t v = values[y * width + x];
      raw += static_cast<char>(v >> 8);
      raw += static_cast<char>(v & 0xff);
    }
  }
  return png_by_hand(width, height, 16, 0, raw);
}

}  // namespace

TEST_F(ImageTest, GrayAndRgbRoundTripExactly) {
  for (int64_t channels : {1, 3}) {
    SCOPED_TRACE(channels);
    const Image image = make_image(13, 7, channels);  // odd sizes: no row alignment assumed
    const std::string p = path("a.png");
    write_png(p, image);
    const Image back = read_png(p);
    EXPECT_EQ(back.width, 13);
    EXPECT_EQ(back.height, 7);
    EXPECT_EQ(back.channels, channels);
    EXPECT_EQ(back.pixels, image.pixels);
  }
}

TEST_F(ImageTest, EncodePngGivesTheBytesWritePngWrites) {
  const Image image = make_image(5, 4, 3);
  const std::string bytes = encode_png(image);
  ASSERT_GE(bytes.size(), 8u);
  EXPECT_EQ(bytes.substr(0, 8), std::string("\x89PNG\r\n\x1a\n", 8));
  const std::string p = path("b.png");
  write_png(p, image);
  EXPECT_EQ(read_bytes(p), bytes);
}

TEST_F(ImageTest, AlphaIsDropped) {
  const int w = 3, h = 2;
  std::vector<uint8_t> rgba(w * h * 4), rgb, gray_alpha(w * h * 2), gray;
  for (int i = 0; i < w * h; ++i) {
    for (int k = 0; k < 4; ++k) rgba[i * 4 + k] = static_cast<uint8_t>(40 * i + 10 * k + 1);
    rgba[i * 4 + 3] = static_cast<uint8_t>(i * 50);  // alpha varies, including 0
    rgb.insert(rgb.end(), rgba.begin() + i * 4, rgba.begin() + i * 4 + 3);
    gray_alpha[i * 2] = static_cast<uint8_t>(30 * i + 7);
    gray_alpha[i * 2 + 1] = static_cast<uint8_t>(255 - 40 * i);
    gray.push_back(gray_alpha[i * 2]);
  }
  const std::string p4 = path("rgba.png");
  ASSERT_NE(stbi_write_png(p4.c_str(), w, h, 4, rgba.data(), w * 4), 0);
  Image image = read_png(p4);
  EXPECT_EQ(image.channels, 3);
  EXPECT_EQ(image.width, w);
  EXPECT_EQ(image.height, h);
  EXPECT_EQ(image.pixels, rgb);

  const std::string p2 = path("gray-alpha.png");
  ASSERT_NE(stbi_write_png(p2.c_str(), w, h, 2, gray_alpha.data(), w * 2), 0);
  image = read_png(p2);
  EXPECT_EQ(image.channels, 1);
  EXPECT_EQ(image.pixels, gray);
}

TEST_F(ImageTest, SixteenBitPngsAreReducedToEightBits) {
  const std::vector<uint16_t> values = {0x0000, 0x00ff, 0x0100, 0x7fff, 0x8000, 0xffff};
  const Image image = read_png(write_bytes("deep.png", png16_gray(3, 2, values)));
  EXPECT_EQ(image.width, 3);
  EXPECT_EQ(image.height, 2);
  EXPECT_EQ(image.channels, 1);
  EXPECT_EQ(image.pixels, (std::vector<uint8_t>{0x00, 0x00, 0x01, 0x7f, 0x80, 0xff}));
}

TEST_F(ImageTest, NonPngAndDamagedFilesAreIOErrors) {
  const std::string text = write_bytes("text.png", "hello, I am not an image");
  expect_error<IOError>([&] { read_png(text); }, {text, "not a PNG file"});
  const std::string empty = write_bytes("empty.png", "");
  expect_error<IOError>([&] { read_png(empty); }, {empty, "not a PNG file"});
  // A BMP is an image stb_image could decode, but read_png reads PNGs only.
  const std::string bmp = write_bytes("image.bmp", std::string("BM") + std::string(60, '\0'));
  expect_error<IOError>([&] { read_png(bmp); }, {bmp, "not a PNG file"});
  // A valid signature and a damaged body reaches libpng, whose reason is passed on.
  const std::string good = encode_png(make_image(4, 4, 3));
  const std::string cut = write_bytes("cut.png", good.substr(0, 20));
  expect_error<IOError>([&] { read_png(cut); }, {cut, "cannot decode PNG (libpng: "});
  const std::string missing = path("missing.png");
  expect_error<IOError>([&] { read_png(missing); }, {missing, "No such file"});
}

TEST_F(ImageTest, InconsistentImagesAreRefused) {
  const std::string p = path("bad.png");
  Image image = make_image(4, 3, 3);
  image.pixels.pop_back();
  expect_error<ConfigError>([&] { write_png(p, image); }, {p, "needs 36 pixel bytes, it has 35"});
  expect_error<ConfigError>([&] { encode_png(image); }, {"needs 36 pixel bytes"});
  expect_error<ConfigError>([&] { write_png(p, make_image(4, 3, 4)); }, {p, "not 4"});
  expect_error<ConfigError>([&] { write_png(p, Image{}); }, {p});
  expect_error<ConfigError>([&] { encode_png(Image{0, 5, 1, {}}); }, {"0x5"});
  EXPECT_FALSE(fs::exists(p));
  const std::string missing = path("no-such-folder/a.png");
  expect_error<IOError>([&] { write_png(missing, make_image(2, 2, 1)); }, {missing});
}

TEST_F(ImageTest, PalettesWithTransparencyGiveRgb) {
  const std::string plte("\x0a\x14\x1e\x28\x32\x3c", 6);  // (10,20,30), (40,50,60)
  const std::string png =
      png_by_hand(2, 1, 8, 3, std::string("\x00\x00\x01", 3), {{"PLTE", plte}, {"tRNS", "\x80"}});
  const Image image = read_png(write_bytes("palette.png", png));
  EXPECT_EQ(image.channels, 3);
  EXPECT_EQ(image.pixels, (std::vector<uint8_t>{10, 20, 30, 40, 50, 60}));
}

TEST_F(ImageTest, OneBitGrayIsScaledTo255) {
  const Image image =
      read_png(write_bytes("bits.png", png_by_hand(3, 1, 1, 0, std::string("\x00\xa0", 2))));
  EXPECT_EQ(image.pixels, (std::vector<uint8_t>{255, 0, 255}));
}

// stb_image had undefined behaviour on an empty IDAT chunk before the image data (found by
// fuzzing): libpng reads it as the valid PNG it is.
TEST_F(ImageTest, AnEmptyIdatChunkBeforeTheDataIsRead) {
  const Image original = make_image(5, 4, 3);
  std::string png = encode_png(original);
  const size_t idat = png.find("IDAT") - 4;
  std::string empty;
  append_chunk(empty, "IDAT", "");
  png.insert(idat, empty);
  EXPECT_EQ(read_png(write_bytes("empty-idat.png", png)).pixels, original.pixels);
}

TEST_F(ImageTest, HeadersThatAnnounceTooMuchAreRefusedBeforeAllocating) {
  // 16384 x 16384 gray in a file of about 70 bytes.
  const std::string small = write_bytes("claims.png", png_by_hand(16384, 16384, 8, 0, "\0"));
  expect_error<IOError>([&] { read_png(small); }, {small, "more than a", "-byte file can hold"});
  const std::string huge = write_bytes("huge.png", png_by_hand(100000, 100000, 8, 0, "\0"));
  expect_error<IOError>([&] { read_png(huge); }, {huge, "more than 268435456 pixels"});
}

TEST_F(ImageTest, DamageInsideTheChunksIsAnIOErrorWithLibpngsReason) {
  const std::string good = encode_png(make_image(6, 5, 1));
  std::string bad_crc = good;
  bad_crc[29] = static_cast<char>(bad_crc[29] ^ 0x55);  // the IHDR's CRC
  const std::string crc = write_bytes("crc.png", bad_crc);
  expect_error<IOError>([&] { read_png(crc); }, {crc, "cannot decode PNG (libpng: "});
  const std::string cut = write_bytes("cut-idat.png", good.substr(0, good.size() - 30));
  expect_error<IOError>([&] { read_png(cut); }, {cut, "cannot decode PNG"});
  std::string bad_depth = png_by_hand(2, 2, 7, 0, std::string(6, '\0'));
  const std::string depth = write_bytes("depth.png", bad_depth);
  expect_error<IOError>([&] { read_png(depth); }, {depth, "libpng"});
}
