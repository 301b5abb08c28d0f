#pragma once

// A folder of small gray PNGs for the image tests: each a bright bar at a random row on a
// dark, noisy background, the same files for the same seed.

#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <random>

#include "zflow/io/image.h"

namespace zflow::testing {

/// Writes `count` images of size × size pixels as dir/img000.png, img001.png, ...
inline void write_png_folder(const std::filesystem::path& dir, int count, int size = 8,
                             unsigned seed = 5) {
  std::filesystem::create_directories(dir);
  std::mt19937 rng(seed);
  for (int i = 0; i < count; ++i) {
    zflow::io::Image image;
    image.width = image.height = size;
    image.channels = 1;
    image.pixels.resize(static_cast<size_t>(size * size));
    const int bar = static_cast<int>(rng() % static_cast<unsigned>(size));
    for (int p = 0; p < size * size; ++p) {
      const int noise = static_cast<int>(rng() % 40u);
      image.pixels[static_cast<size_t>(p)] =
          static_cast<uint8_t>((p / size == bar ? 200 : 20) + noise);
    }
    char name[32];
    std::snprintf(name, sizeof(name), "img%03d.png", i);
    zflow::io::write_png((dir / name).string(), image);
  }
}

}  // namespace zflow::testing
