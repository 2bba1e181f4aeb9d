// Fused per-pixel channel LayerNorm + SiLU for the CQN encoder on the CPU.
//
// Rows are pixels of a channels-last activation viewed as [N, C]; each row is normalised over
// its C channels, scaled and shifted (LayerNorm's weight and bias), then passed through SiLU.
// ATen runs this as a LayerNorm kernel and a SiLU kernel forward and two more backward, each
// a full pass over memory with per-row overhead at small C; here each is one pass per
// direction, with C a compile-time constant so the channel loops vectorise completely.
// Tensor checks and allocation are in bindings.cpp.

#include "kernels.h"

#include <ATen/Parallel.h>

#include <cmath>
#include <stdexcept>
#include <type_traits>

namespace robolearn {
namespace {

constexpr int64_t kGrain = 1024;  // rows per task: large enough to amortise the dispatch

template <int C>
void forward_rows(const float* x, const float* w, const float* b, float* y, float* mean,
                  float* rstd, int64_t begin, int64_t end, float eps) {
  constexpr float inv_c = 1.0f / C;
  for (int64_t n = begin; n < end; ++n) {
    const float* xr = x + n * C;
    float* yr = y + n * C;
    float sum = 0.f;
#pragma omp simd reduction(+ : sum)
    for (int c = 0; c < C; ++c) sum += xr[c];
    const float mu = sum * inv_c;
    float sq = 0.f;
#pragma omp simd reduction(+ : sq)
    for (int c = 0; c < C; ++c) {
      const float d = xr[c] - mu;
      sq += d * d;
    }
    const float rs = 1.0f / std::sqrt(sq * inv_c + eps);
    // y may alias x (in-place use without grad): each element is read before it is written.
#pragma omp simd
    for (int c = 0; c < C; ++c) {
      const float z = (xr[c] - mu) * rs * w[c] + b[c];
      yr[c] = z / (1.0f + std::exp(-z));
    }
    if (mean != nullptr) {
      mean[n] = mu;
      rstd[n] = rs;
    }
  }
}

template <int C>
void backward_rows(const float* g, const float* x, const float* mean, const float* rstd,
                   const float* w, const float* b, float* gx, float* gw, float* gb,
                   int64_t begin, int64_t end) {
  constexpr float inv_c = 1.0f / C;
  alignas(64) float dz[C];  // dL/dz, z = xhat·w + b (the SiLU input)
  alignas(64) float xh[C];  // xhat, the normalised row
  alignas(64) float acc_w[C] = {};
  alignas(64) float acc_b[C] = {};
  for (int64_t n = begin; n < end; ++n) {
    const float* xr = x + n * C;
    const float* gr = g + n * C;
    float* gxr = gx + n * C;
    const float mu = mean[n], rs = rstd[n];
    float s1 = 0.f, s2 = 0.f;  // sums over channels of dxhat and dxhat·xhat
#pragma omp simd reduction(+ : s1, s2)
    for (int c = 0; c < C; ++c) {
      const float xhat = (xr[c] - mu) * rs;
      const float z = xhat * w[c] + b[c];
      const float sig = 1.0f / (1.0f + std::exp(-z));
      const float d = gr[c] * sig * (1.0f + z * (1.0f - sig));
      dz[c] = d;
      xh[c] = xhat;
      const float dxhat = d * w[c];
      s1 += dxhat;
      s2 += dxhat * xhat;
    }
    const float m1 = s1 * inv_c, m2 = s2 * inv_c;
#pragma omp simd
    for (int c = 0; c < C; ++c) {
      acc_w[c] += dz[c] * xh[c];
      acc_b[c] += dz[c];
      gxr[c] = rs * (dz[c] * w[c] - m1 - xh[c] * m2);
    }
  }
  for (int c = 0; c < C; ++c) {
    gw[c] += acc_w[c];
    gb[c] += acc_b[c];
  }
}

template <typename F>
void dispatch_channels(int64_t channels, F&& f) {
  switch (channels) {
    case 32: return f(std::integral_constant<int, 32>{});
    case 64: return f(std::integral_constant<int, 64>{});
    case 128: return f(std::integral_constant<int, 128>{});
    case 256: return f(std::integral_constant<int, 256>{});
    default: throw std::invalid_argument("layer_norm_silu: unsupported channel count");
  }
}

}  // namespace

bool layer_norm_silu_supports(int64_t channels) {
  return channels == 32 || channels == 64 || channels == 128 || channels == 256;
}

void layer_norm_silu_forward(const float* x, const float* weight, const float* bias, float* y,
                             float* mean, float* rstd, int64_t rows, int64_t channels,
                             float eps) {
  dispatch_channels(channels, [&](auto c) {
    at::parallel_for(0, rows, kGrain, [&](int64_t begin, int64_t end) {
      forward_rows<decltype(c)::value>(x, weight, bias, y, mean, rstd, begin, end, eps);
    });
  });
}

void layer_norm_silu_backward(const float* g, const float* x, const float* mean,
                              const float* rstd, const float* weight, const float* bias,
                              float* gx, float* partial, int64_t rows, int64_t channels) {
  dispatch_channels(channels, [&](auto c) {
    at::parallel_for(0, rows, kGrain, [&](int64_t begin, int64_t end) {
      float* gw = partial + at::get_thread_num() * 2 * channels;
      backward_rows<decltype(c)::value>(g, x, mean, rstd, weight, bias, gx, gw, gw + channels,
                                        begin, end);
    });
  });
}

}  // namespace robolearn
