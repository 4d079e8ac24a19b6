// Small-group 3x3 convolutions for training on the CPU (NHWC float32): the forward, the input gradient and the
// weight gradient of a grouped convolution whose groups have 1, 2 or 4 input channels (a stacked layer's units).
//
// Why: oneDNN runs such convolutions at a small fraction of its dense speed (a 2-4-2 TissueNet trained slower
// than the dense network it cuts 6x). Layout trick: each group's inputs are copied next to the lanes of its own
// outputs ("expand": lane l of pixel q holds input channel (l / per) * depth + d of q, on a zero-padded grid), so
// every multiply-add is a plain vector FMA over contiguous lanes, with no gather. Eight output pixels share each
// weight load (forward, input gradient); every (tap column, input) pair has its own accumulator in the weight
// gradient. The input gradient is the same correlation as the forward, over the output gradient expanded onto
// a padded grid, with the taps flipped. Work is split over images with OpenMP. Stride 1 only: at stride 2
// oneDNN was as fast or faster (measured), so those convolutions stay with it.
// Plain C++ with GCC vector types of 8 floats: the build's -mavx2 -mfma (AVX-512 builds add -mfma too) choose the
// instructions.

#include <torch/extension.h>
#include <omp.h>
#include <algorithm>
#include <cstring>
#include <vector>

namespace {

typedef float v8 __attribute__((vector_size(32)));
inline v8 ld(const float* p) { v8 v; std::memcpy(&v, p, sizeof v); return v; }
inline void st(float* p, v8 v) { std::memcpy(p, &v, sizeof v); }
constexpr int K = 3, R = 8;

// out[oy][ox][l] = sum_{ky,kx,d} in[oy+ky][ox+kx][d][l] * w[ky*K+kx][d][l]; in is (ho+2, cols, D, lanes).
// R output pixels of a row share each weight load (the last block of a row overlaps the one before it).
template <int D, int R>
void correlate_t(const float* in, int64_t cols, int64_t lanes, const float* w, int64_t ho, int64_t wo, float* out) {
  const int64_t px = D * lanes;
  for (int64_t oy = 0; oy < ho; ++oy)
    for (int64_t lb = 0; lb < lanes; lb += 8)
      for (int64_t start = 0; start < wo; start += R) {
        const int64_t ox = std::min(start, wo - R);
        v8 acc[R] = {};
        for (int ky = 0; ky < K; ++ky) {
          const float* row = in + ((oy + ky) * cols + ox) * px + lb;
          for (int kx = 0; kx < K; ++kx)
            for (int d = 0; d < D; ++d) {
              const v8 wv = ld(w + ((ky * K + kx) * D + d) * lanes + lb);
              const float* p = row + kx * px + d * lanes;
              for (int r = 0; r < R; ++r) acc[r] += ld(p + r * px) * wv;
            }
        }
        for (int r = 0; r < R; ++r) st(out + (oy * wo + ox + r) * lanes + lb, acc[r]);
      }
}

template <int D>
void correlate_d(const float* in, int64_t cols, int64_t lanes, const float* w, int64_t ho, int64_t wo, float* out) {
  switch (std::min<int64_t>(wo, 8)) {
    case 1: return correlate_t<D, 1>(in, cols, lanes, w, ho, wo, out);
    case 2: return correlate_t<D, 2>(in, cols, lanes, w, ho, wo, out);
    case 3: return correlate_t<D, 3>(in, cols, lanes, w, ho, wo, out);
    case 4: return correlate_t<D, 4>(in, cols, lanes, w, ho, wo, out);
    case 5: return correlate_t<D, 5>(in, cols, lanes, w, ho, wo, out);
    case 6: return correlate_t<D, 6>(in, cols, lanes, w, ho, wo, out);
    case 7: return correlate_t<D, 7>(in, cols, lanes, w, ho, wo, out);
    default: return correlate_t<D, 8>(in, cols, lanes, w, ho, wo, out);
  }
}

void correlate(const float* in, int64_t cols, int64_t depth, int64_t lanes, const float* w, int64_t ho, int64_t wo,
               float* out) {
  switch (depth) {
    case 1: return correlate_d<1>(in, cols, lanes, w, ho, wo, out);
    case 2: return correlate_d<2>(in, cols, lanes, w, ho, wo, out);
    case 4: return correlate_d<4>(in, cols, lanes, w, ho, wo, out);
    case 8: return correlate_d<8>(in, cols, lanes, w, ho, wo, out);
  }
}

// dw[ky*K+kx][d][l] += sum_{oy,ox} in[oy+ky][ox+kx][d][l] * gy[oy][ox][l]; every (kx, d) its own accumulator:
// one load of gy serves K * D multiply-adds
template <int D>
void correlate_weight_t(const float* in, int64_t cols, int64_t lanes, const float* gy, int64_t ho, int64_t wo,
                        float* dw) {
  const int64_t px = D * lanes;
  for (int64_t lb = 0; lb < lanes; lb += 8)
    for (int ky = 0; ky < K; ++ky) {
      v8 acc[K][D] = {};
      for (int64_t oy = 0; oy < ho; ++oy) {
        const float* row = in + (oy + ky) * cols * px + lb;
        const float* g = gy + oy * wo * lanes + lb;
        for (int64_t ox = 0; ox < wo; ++ox) {
          const v8 gv = ld(g + ox * lanes);
          const float* p = row + ox * px;
          for (int kx = 0; kx < K; ++kx)
            for (int d = 0; d < D; ++d) acc[kx][d] += ld(p + kx * px + d * lanes) * gv;
        }
      }
      for (int kx = 0; kx < K; ++kx)
        for (int d = 0; d < D; ++d) {
          float* o = dw + ((ky * K + kx) * D + d) * lanes + lb;
          st(o, ld(o) + acc[kx][d]);
        }
    }
}

void correlate_weight(const float* in, int64_t cols, int64_t depth, int64_t lanes, const float* gy, int64_t ho,
                      int64_t wo, float* dw) {
  switch (depth) {
    case 1: return correlate_weight_t<1>(in, cols, lanes, gy, ho, wo, dw);
    case 2: return correlate_weight_t<2>(in, cols, lanes, gy, ho, wo, dw);
    case 4: return correlate_weight_t<4>(in, cols, lanes, gy, ho, wo, dw);
  }
}

// dst[y + 1][x + 1][d][l] = src[y][x][(l / PER) * D + d], on a grid padded by one; the padding is never written
template <int PER, int D>
void expand_t(const float* src, int64_t h, int64_t w, int64_t lanes, float* dst) {
  const int64_t groups = lanes / PER, c = groups * D;
  for (int64_t y = 0; y < h; ++y)
    for (int64_t x = 0; x < w; ++x) {
      const float* sp = src + (y * w + x) * c;
      float* e = dst + ((y + 1) * (w + 2) + x + 1) * D * lanes;
      for (int d = 0; d < D; ++d, e += lanes)
        for (int64_t g = 0; g < groups; ++g)
          for (int q = 0; q < PER; ++q) e[g * PER + q] = sp[g * D + d];
    }
}

// (per, depth) pairs: (c_out', c_in') in the forward, (c_in', c_out') for the input gradient
void expand(const float* src, int64_t h, int64_t w, int64_t depth, int64_t lanes, int64_t per, float* dst) {
#define TB_EXPAND(P, Q) \
  if (per == P && depth == Q) return expand_t<P, Q>(src, h, w, lanes, dst);
  TB_EXPAND(1, 1) TB_EXPAND(1, 2) TB_EXPAND(1, 4) TB_EXPAND(1, 8) TB_EXPAND(2, 1) TB_EXPAND(2, 2) TB_EXPAND(2, 4)
  TB_EXPAND(2, 8) TB_EXPAND(4, 1) TB_EXPAND(4, 2) TB_EXPAND(4, 4) TB_EXPAND(4, 8) TB_EXPAND(8, 1) TB_EXPAND(8, 2)
  TB_EXPAND(8, 4)
#undef TB_EXPAND
}

bool shape_supported(int64_t c, int64_t cout, int64_t groups) {
  if (groups < 1 || c % groups || cout % groups || c % 8 || cout % 8) return false;
  const int64_t cig = c / groups, cog = cout / groups;
  return (cig == 1 || cig == 2 || cig == 4) && (cog == 1 || cog == 2 || cog == 4 || cog == 8);
}

void check(const torch::Tensor& t, const char* what) {
  TORCH_CHECK(t.dim() == 4 && t.scalar_type() == torch::kFloat && t.device().is_cpu() &&
                  t.is_contiguous(at::MemoryFormat::ChannelsLast),
              "grouped_train: ", what, " must be a channels_last float32 CPU tensor");
}

}  // namespace

// x (N, C, H, W) channels_last; wt (9, C / groups, C_out): wt[tap][i][j] = w[j][i][tap]; y channels_last
torch::Tensor forward(torch::Tensor x, torch::Tensor wt, int64_t cout, int64_t groups) {
  check(x, "x");
  const int64_t n = x.size(0), c = x.size(1), h = x.size(2), w = x.size(3);
  TORCH_CHECK(shape_supported(c, cout, groups), "grouped_train: unsupported shape");
  const int64_t cig = c / groups, cog = cout / groups, size = (h + 2) * (w + 2) * cig * cout;
  TORCH_CHECK(wt.is_contiguous() && wt.numel() == 9 * cig * cout, "grouped_train: packed weights do not match");
  auto y = torch::empty({n, cout, h, w}, x.options().memory_format(at::MemoryFormat::ChannelsLast));
  const float *xd = x.data_ptr<float>(), *wd = wt.data_ptr<float>();
  float* yd = y.data_ptr<float>();
  const int threads = at::get_num_threads();  // PyTorch's setting, on whichever thread runs this
  std::vector<float> scratch(threads * size);  // zeroed once: the padding stays zero
#pragma omp parallel for schedule(static) num_threads(threads)
  for (int64_t b = 0; b < n; ++b) {
    float* xe = scratch.data() + omp_get_thread_num() * size;
    expand(xd + b * h * w * c, h, w, cig, cout, cog, xe);
    correlate(xe, w + 2, cig, cout, wd, h, w, yd + b * h * w * cout);
  }
  return y;
}

// wb (9, C_out / groups, C): the taps flipped, wb[8 - t][o][c] = w[(c / cig) * cog + o][c % cig][t].
// Returns {dx (channels_last; undefined unless input_grad), dw (9, C / groups, C_out), laid out as wt}.
std::vector<torch::Tensor> backward(torch::Tensor x, torch::Tensor wb, torch::Tensor gy, int64_t groups,
                                    bool input_grad) {
  check(x, "x");
  check(gy, "the output gradient");
  const int64_t n = x.size(0), c = x.size(1), h = x.size(2), w = x.size(3), cout = gy.size(1);
  TORCH_CHECK(shape_supported(c, cout, groups), "grouped_train: unsupported shape");
  TORCH_CHECK(gy.size(0) == n && gy.size(2) == h && gy.size(3) == w, "grouped_train: dy's shape");
  const int64_t cig = c / groups, cog = cout / groups;
  TORCH_CHECK(wb.is_contiguous() && wb.numel() == 9 * cog * c, "grouped_train: packed weights do not match");
  auto dx = input_grad ? torch::empty_like(x, x.options().memory_format(at::MemoryFormat::ChannelsLast))
                       : torch::Tensor();
  const int threads = at::get_num_threads();  // the backward may run on autograd's own thread
  auto dw = torch::zeros({threads, 9, cig, cout}, x.options());  // one per thread, summed at the end
  const float *xd = x.data_ptr<float>(), *gyd = gy.data_ptr<float>(), *wd = wb.data_ptr<float>();
  float *dxd = input_grad ? dx.data_ptr<float>() : nullptr, *dwd = dw.data_ptr<float>();
  const int64_t xe_size = (h + 2) * (w + 2) * cig * cout, ge_size = (h + 2) * (w + 2) * cog * c;
  std::vector<float> scratch(threads * (xe_size + ge_size));
#pragma omp parallel for schedule(static) num_threads(threads)
  for (int64_t b = 0; b < n; ++b) {
    const int t = omp_get_thread_num();
    float* xe = scratch.data() + t * (xe_size + ge_size);
    float* ge = xe + xe_size;
    const float* gyb = gyd + b * h * w * cout;
    expand(xd + b * h * w * c, h, w, cig, cout, cog, xe);
    correlate_weight(xe, w + 2, cig, cout, gyb, h, w, dwd + t * 9 * cig * cout);
    if (input_grad) {
      expand(gyb, h, w, cog, c, cig, ge);
      correlate(ge, w + 2, cog, c, wd, h, w, dxd + b * h * w * c);
    }
  }
  return {dx, dw.sum(0)};
}

PYBIND11_MODULE(TORCH_EXTENSION_NAME, m) {
  m.def("forward", &forward, "small-group 3x3 convolution, stride 1, NHWC (x, packed weights, C_out, groups)");
  m.def("backward", &backward, "its input and weight gradients (x, flipped weights, dy, groups, input_grad)");
}
