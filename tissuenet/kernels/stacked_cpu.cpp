// PyTorch binding of the fused stacked-layer kernel (stacked_core.h): checks, allocation, the call.

#include <torch/extension.h>

#include "stacked_core.h"

// x: (N, C, H, W) in channels_last memory; packed weights from kernels/cpu.py; returns channels_last.
// residual: added before the final ReLU; or projection (C, C_out): the block's 1x1 shortcut convolution of x at
// the layer's stride, computed in the kernel (its bias already in b2).
torch::Tensor forward(torch::Tensor x, torch::Tensor w1, torch::Tensor b1, torch::Tensor w2, torch::Tensor b2,
                      int64_t c_h, int64_t c_out, int64_t stride, c10::optional<torch::Tensor> residual,
                      bool relu_out, c10::optional<torch::Tensor> projection) {
  TORCH_CHECK(x.dim() == 4 && x.scalar_type() == torch::kFloat && x.device().is_cpu(), "stacked_cpu: x must be "
              "a 4-d float32 CPU tensor");
  TORCH_CHECK(x.is_contiguous(at::MemoryFormat::ChannelsLast), "stacked_cpu: x must be channels_last");
  TORCH_CHECK(stacked::supports(c_h, c_out), "stacked_cpu: unsupported unit");
  const int64_t n = x.size(0), c = x.size(1), h = x.size(2), w = x.size(3);
  TORCH_CHECK(c % 2 == 0, "stacked_cpu: channels must be pairs");
  TORCH_CHECK(stride == 1 || stride == 2, "stacked_cpu: stride must be 1 or 2");
  const int64_t lanes = stacked::lanes(c);
  TORCH_CHECK(w1.numel() == (c_h / 2) * 9 * 2 * lanes && w2.numel() == (c_out / 2) * (c_h / 2) * 9 * 2 * lanes,
              "stacked_cpu: packed weights do not match this layer (lanes ", lanes, ")");
  const int64_t ho = (h - 1) / stride + 1, wo = (w - 1) / stride + 1, cout = c / 2 * c_out;
  auto out = torch::empty({n, cout, ho, wo}, x.options().memory_format(at::MemoryFormat::ChannelsLast));
  const float* res = nullptr;
  if (residual.has_value()) {
    TORCH_CHECK(residual->sizes() == out.sizes() && residual->is_contiguous(at::MemoryFormat::ChannelsLast),
                "stacked_cpu: residual must match the output and be channels_last");
    res = residual->data_ptr<float>();
  }
  const float* proj = nullptr;
  if (projection.has_value()) {
    TORCH_CHECK(projection->dim() == 2 && projection->size(0) == c && projection->size(1) == cout &&
                    projection->is_contiguous() && projection->scalar_type() == torch::kFloat,
                "stacked_cpu: projection must be a contiguous float32 (channels in, channels out) matrix");
    proj = projection->data_ptr<float>();
  }
  stacked::forward(x.data_ptr<float>(), n, h, w, c, w1.data_ptr<float>(), b1.data_ptr<float>(), w2.data_ptr<float>(),
                   b2.data_ptr<float>(), c_h, c_out, stride, res, relu_out || proj, out.data_ptr<float>(),
                   at::get_num_threads(), proj);
  return out;
}

// A run of residual blocks with identity shortcuts, all on this kernel: y_{i+1} = relu(F_i(y_i) + y_i).
// One call for the whole run (at batch 1 the per-call overhead of the Python side is what remains).
torch::Tensor chain(torch::Tensor x, std::vector<torch::Tensor> weights, int64_t c_h) {
  TORCH_CHECK(weights.size() % 4 == 0, "stacked_cpu.chain: weights come in fours (w1, b1, w2, b2)");
  for (size_t i = 0; i < weights.size(); i += 4)
    x = forward(x, weights[i], weights[i + 1], weights[i + 2], weights[i + 3], c_h, 2, 1, x, true, c10::nullopt);
  return x;
}

PYBIND11_MODULE(TORCH_EXTENSION_NAME, m) {
  m.def("forward", &forward, "fused stacked layer (inference, NHWC)");
  m.def("chain", &chain, "a run of identity residual blocks, each fused, in one call");
  m.def("isa", [] { return std::string(stacked::isa()); }, "the instruction set this build uses: avx512 or avx2");
  m.def("supports", &stacked::supports, "whether a unit shape (c_h, c_out') has a kernel");
}
