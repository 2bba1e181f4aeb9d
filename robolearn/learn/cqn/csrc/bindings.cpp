// Python bindings for kernels.h: tensor checks, allocation, results as tensors.

#include "kernels.h"

#include <torch/extension.h>

#include <vector>

namespace {

void check(const torch::Tensor& t, torch::ScalarType dtype, const char* name) {
  TORCH_CHECK(t.device().is_cpu() && t.scalar_type() == dtype && t.is_contiguous(),
              "robolearn kernels: ", name, " must be a contiguous ", c10::toString(dtype),
              " CPU tensor");
}

// x [N, C] -> (y [N, C], mean [N], rstd [N]); mean/rstd are empty unless save_stats. out may
// be x itself.
std::vector<torch::Tensor> layer_norm_silu_forward(torch::Tensor x, torch::Tensor weight,
                                                   torch::Tensor bias, double eps,
                                                   bool save_stats, torch::Tensor out) {
  for (auto* t : {&x, &weight, &bias, &out}) check(*t, torch::kFloat32, "x/weight/bias/out");
  TORCH_CHECK(x.dim() == 2 && out.sizes() == x.sizes(), "layer_norm_silu: x, out must be [N, C]");
  const int64_t rows = x.size(0), channels = x.size(1);
  TORCH_CHECK(robolearn::layer_norm_silu_supports(channels), "layer_norm_silu: ", channels,
              " channels (built for 32, 64, 128, 256)");
  TORCH_CHECK(weight.numel() == channels && bias.numel() == channels,
              "layer_norm_silu: weight and bias must have C elements");
  auto mean = torch::empty({save_stats ? rows : 0}, x.options());
  auto rstd = torch::empty({save_stats ? rows : 0}, x.options());
  robolearn::layer_norm_silu_forward(
      x.data_ptr<float>(), weight.data_ptr<float>(), bias.data_ptr<float>(),
      out.data_ptr<float>(), save_stats ? mean.data_ptr<float>() : nullptr,
      save_stats ? rstd.data_ptr<float>() : nullptr, rows, channels, static_cast<float>(eps));
  return {out, mean, rstd};
}

// (grad x, grad weight, grad bias) of sum(g · layer_norm_silu(x)).
std::vector<torch::Tensor> layer_norm_silu_backward(torch::Tensor g, torch::Tensor x,
                                                    torch::Tensor mean, torch::Tensor rstd,
                                                    torch::Tensor weight, torch::Tensor bias) {
  for (auto* t : {&g, &x, &mean, &rstd, &weight, &bias})
    check(*t, torch::kFloat32, "grad/x/mean/rstd/weight/bias");
  TORCH_CHECK(x.dim() == 2 && g.sizes() == x.sizes(), "layer_norm_silu: grad must match x");
  const int64_t rows = x.size(0), channels = x.size(1);
  TORCH_CHECK(robolearn::layer_norm_silu_supports(channels) && mean.numel() == rows &&
                  rstd.numel() == rows && weight.numel() == channels,
              "layer_norm_silu: inconsistent shapes");
  auto gx = torch::empty_like(x);
  // One weight/bias gradient accumulator per thread, summed at the end (no atomics).
  auto partial = torch::zeros({at::get_num_threads(), 2, channels}, x.options());
  robolearn::layer_norm_silu_backward(
      g.data_ptr<float>(), x.data_ptr<float>(), mean.data_ptr<float>(), rstd.data_ptr<float>(),
      weight.data_ptr<float>(), bias.data_ptr<float>(), gx.data_ptr<float>(),
      partial.data_ptr<float>(), rows, channels);
  auto sums = partial.sum(0);
  return {gx, sums[0], sums[1]};
}

// rgb [B, V, C, H, W] uint8, shift [2, V, B] int64 -> [V, B, H, W, C] uint8.
torch::Tensor shift_views(torch::Tensor rgb, torch::Tensor shift) {
  check(rgb, torch::kUInt8, "rgb");
  check(shift, torch::kInt64, "shift");
  TORCH_CHECK(rgb.dim() == 5, "shift_views: rgb must be [B, V, C, H, W]");
  const int64_t batch = rgb.size(0), views = rgb.size(1), channels = rgb.size(2);
  const int64_t height = rgb.size(3), width = rgb.size(4);
  TORCH_CHECK(shift.dim() == 3 && shift.size(0) == 2 && shift.size(1) == views &&
                  shift.size(2) == batch,
              "shift_views: shift must be [2, V, B]");
  auto out = torch::empty({views, batch, height, width, channels}, rgb.options());
  robolearn::shift_views(rgb.data_ptr<uint8_t>(), shift.data_ptr<int64_t>(),
                         out.data_ptr<uint8_t>(), batch, views, channels, height, width);
  return out;
}

// uint8 pixels -> float (x − 127.5) / 255, same shape.
torch::Tensor pixels_to_float(torch::Tensor pixels) {
  check(pixels, torch::kUInt8, "pixels");
  auto out = torch::empty(pixels.sizes(), pixels.options().dtype(torch::kFloat32));
  robolearn::pixels_to_float(pixels.data_ptr<uint8_t>(), out.data_ptr<float>(),
                             pixels.numel());
  return out;
}

}  // namespace

PYBIND11_MODULE(TORCH_EXTENSION_NAME, m) {
  m.def("layer_norm_silu_supports", &robolearn::layer_norm_silu_supports);
  m.def("layer_norm_silu_forward", &layer_norm_silu_forward);
  m.def("layer_norm_silu_backward", &layer_norm_silu_backward);
  m.def("shift_views", &shift_views);
  m.def("pixels_to_float", &pixels_to_float);
}
