// The encoder's input path: random-shift augmentation (replicate pad + integer crop) with the
// layout change, in one pass over the uint8 images: out[v, b, h, w, c] = in[b, v, c,
// clamp(h + dy), clamp(w + dx)] (in ATen two gathers and two transposing copies); then the
// uint8 → float scaling in one vectorised pass (in ATen a converting copy, a subtraction and a
// multiplication).

#include "kernels.h"

#include <ATen/Parallel.h>

#include <algorithm>

namespace robolearn {

void shift_views(const uint8_t* src, const int64_t* shift, uint8_t* dst, int64_t batch,
                 int64_t views, int64_t channels, int64_t height, int64_t width) {
  const int64_t plane = height * width;
  const int64_t out_row = width * channels;
  // One task per output image row: [V, B, H] rows.
  at::parallel_for(0, views * batch * height, 64, [&](int64_t begin, int64_t end) {
    for (int64_t r = begin; r < end; ++r) {
      const int64_t h = r % height;
      const int64_t vb = r / height;  // v * batch + b
      const int64_t b = vb % batch, v = vb / batch;
      const int64_t dy = shift[vb], dx = shift[views * batch + vb];
      const int64_t src_h = std::clamp<int64_t>(h + dy, 0, height - 1);
      const uint8_t* image = src + (b * views + v) * channels * plane + src_h * width;
      uint8_t* out = dst + r * out_row;
      // Columns whose source is inside the image, then the clamped edges.
      const int64_t w0 = std::clamp<int64_t>(-dx, 0, width);
      const int64_t w1 = std::clamp<int64_t>(width - dx, 0, width);
      for (int64_t c = 0; c < channels; ++c) {
        const uint8_t* row = image + c * plane;
        uint8_t* o = out + c;
        for (int64_t w = 0; w < w0; ++w) o[w * channels] = row[0];
        for (int64_t w = w0; w < w1; ++w) o[w * channels] = row[w + dx];
        for (int64_t w = w1; w < width; ++w) o[w * channels] = row[width - 1];
      }
    }
  });
}

void pixels_to_float(const uint8_t* src, float* dst, int64_t n) {
  constexpr float scale = 1.0f / 255.0f;
  at::parallel_for(0, n, 1 << 16, [&](int64_t begin, int64_t end) {
#pragma omp simd
    for (int64_t i = begin; i < end; ++i) dst[i] = (static_cast<float>(src[i]) - 127.5f) * scale;
  });
}

}  // namespace robolearn
