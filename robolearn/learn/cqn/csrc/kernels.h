// CPU kernels for the CQN encoder's hot path; raw pointers, contiguous memory, no checks
// (bindings.cpp checks the tensors and allocates the results).
#pragma once

#include <cstdint>

namespace robolearn {

bool layer_norm_silu_supports(int64_t channels);

// x, y [rows, channels] (y may be x); mean, rstd [rows] or both null.
void layer_norm_silu_forward(const float* x, const float* weight, const float* bias, float* y,
                             float* mean, float* rstd, int64_t rows, int64_t channels,
                             float eps);

// partial [threads, 2, channels], zeroed: per-thread weight and bias gradients.
void layer_norm_silu_backward(const float* g, const float* x, const float* mean,
                              const float* rstd, const float* weight, const float* bias,
                              float* gx, float* partial, int64_t rows, int64_t channels);

// src [B, V, C, H, W], shift [2, V, B] (rows, then columns), dst [V, B, H, W, C].
void shift_views(const uint8_t* src, const int64_t* shift, uint8_t* dst, int64_t batch,
                 int64_t views, int64_t channels, int64_t height, int64_t width);

// dst[i] = (src[i] − 127.5) / 255 (obs/255 − 0.5) for n pixels.
void pixels_to_float(const uint8_t* src, float* dst, int64_t n);

}  // namespace robolearn
