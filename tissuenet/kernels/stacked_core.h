// A fused CPU kernel for one stacked layer of identical c_in'=2 units (docs/method.md §2, §9).
//
// Inference form: BN folded into the convs (conv1 + bias, ReLU, conv2 + bias), NHWC float32,
// 3x3 kernels, padding 1, stride 1 or 2 on the first conv. The second conv runs at the output
// resolution. Optionally fused into the store: a residual add and a final ReLU (a ResNet block).
//
// Layout trick: vector lanes run across the NHWC channels. A unit's two input channels sit in
// adjacent lanes (2u, 2u+1), so everything a unit needs from its own input is the vector itself
// and the vector with each lane pair swapped. Hidden channels are kept as c_h/2 "parts", part p
// holding hidden channels (2p, 2p+1) of every unit in the lanes of that unit's inputs, so the
// second conv again needs only pair swaps. Weights are packed per lane (see kernels/cpu.py).
// The build (kernels/build.py) compiles this file once per instruction set the CPU has.
//
// Fusion: hidden rows are computed into a rolling 3-row buffer per thread (the hidden tensor
// never leaves cache), several output pixels share every weight load, and the work is split into tasks
// (image, lane blocks, block of output rows) that OpenMP's threads claim, or the host's where it defines
// TB_PARALLEL.
// AVX-512 or AVX2+FMA.

//
// This header is the kernel itself, free of any framework: stacked_cpu.cpp binds it to PyTorch,
// stacked_ort.cpp to ONNX Runtime as a custom operator.

#pragma once

#include <immintrin.h>
#include <omp.h>

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <cstring>
#include <type_traits>
#include <vector>

namespace {

constexpr int TAPS = 9;  // 3x3

struct Shape {
  int64_t n, h, w, c;       // input NHWC; c = 2 x units (lanes)
  int64_t ho, wo, cout;     // output NHWC; cout = units x c_out'
  int64_t stride, lanes;    // lanes = c padded to the vector width
};

// ----- vector abstractions (the build compiles one: -DTB_AVX512 with -mavx512f, else -mavx2 -mfma) -----
#if defined(TB_AVX512)
struct V512 {
  using T = __m512;
  static constexpr int W = 16;
  static inline T zero() { return _mm512_setzero_ps(); }
  static inline T set1(float v) { return _mm512_set1_ps(v); }
  static inline T load(const float* p) { return _mm512_loadu_ps(p); }
  static inline void store(float* p, T v) { _mm512_storeu_ps(p, v); }
  static inline T fma(T a, T b, T c) { return _mm512_fmadd_ps(a, b, c); }
  static inline T add(T a, T b) { return _mm512_add_ps(a, b); }
  static inline T relu(T a) { return _mm512_max_ps(a, _mm512_setzero_ps()); }
  static inline T swap(T a) { return _mm512_permute_ps(a, 0xB1); }
  // masked forms for the last, partial vector of lanes (n valid lanes)
  static inline T loadn(const float* p, int n) {
    return _mm512_maskz_loadu_ps((__mmask16)((1u << n) - 1), p);
  }
  static inline void storen(float* p, T v, int n) {
    _mm512_mask_storeu_ps(p, (__mmask16)((1u << n) - 1), v);
  }
  // out[0..2W) = pairs of a and b interleaved: a0 a1 b0 b1 a2 a3 b2 b3 ...
  static inline void interleave(T a, T b, T& lo, T& hi) {
    const __m512i il = _mm512_setr_epi32(0, 1, 16, 17, 2, 3, 18, 19, 4, 5, 20, 21, 6, 7, 22, 23);
    const __m512i ih = _mm512_setr_epi32(8, 9, 24, 25, 10, 11, 26, 27, 12, 13, 28, 29, 14, 15, 30, 31);
    lo = _mm512_permutex2var_ps(a, il, b);
    hi = _mm512_permutex2var_ps(a, ih, b);
  }
};

using Vec = V512;
#else
struct V256 {
  using T = __m256;
  static constexpr int W = 8;
  static inline T zero() { return _mm256_setzero_ps(); }
  static inline T set1(float v) { return _mm256_set1_ps(v); }
  static inline T load(const float* p) { return _mm256_loadu_ps(p); }
  static inline void store(float* p, T v) { _mm256_storeu_ps(p, v); }
  static inline T fma(T a, T b, T c) { return _mm256_fmadd_ps(a, b, c); }
  static inline T add(T a, T b) { return _mm256_add_ps(a, b); }
  static inline T relu(T a) { return _mm256_max_ps(a, _mm256_setzero_ps()); }
  static inline T swap(T a) { return _mm256_permute_ps(a, 0xB1); }
  static inline __m256i mask(int n) {
    return _mm256_cmpgt_epi32(_mm256_set1_epi32(n), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
  }
  static inline T loadn(const float* p, int n) {
    return _mm256_maskload_ps(p, mask(n));
  }
  static inline void storen(float* p, T v, int n) {
    _mm256_maskstore_ps(p, mask(n), v);
  }
  static inline void interleave(T a, T b, T& lo, T& hi) {
    const __m256d l = _mm256_unpacklo_pd(_mm256_castps_pd(a), _mm256_castps_pd(b));
    const __m256d h = _mm256_unpackhi_pd(_mm256_castps_pd(a), _mm256_castps_pd(b));
    lo = _mm256_castpd_ps(_mm256_permute2f128_pd(l, h, 0x20));
    hi = _mm256_castpd_ps(_mm256_permute2f128_pd(l, h, 0x31));
  }
};
using Vec = V256;
#endif

// Register blocking: how many output columns a block computes, and whether the streaming scheme fits in
// the vector registers (32 with AVX-512, two kept spare; 16 with AVX2, one kept spare: 7 columns, 7 independent
// accumulators, ran 6-17 % faster than 6 at widths 14 and 7, measured; all 16 spilled and ran slower).
template <class V, int K>
struct Plan1 {
  static constexpr int REGS = V::W == 16 ? 30 : 15;
  static constexpr bool STREAM = 6 * K + 2 * K + 2 <= REGS;
  static constexpr int P_STREAM = (REGS - 6 * K - 2) / K > 8 ? 8 : (REGS - 6 * K - 2) / K;
  static constexpr int P_TAP = (REGS - 2 * K - 2) / K > 4 ? 4 : ((REGS - 2 * K - 2) / K < 1 ? 1 : (REGS - 2 * K - 2) / K);
  static constexpr int P = STREAM ? P_STREAM : P_TAP;
  // AVX2 without room to stream every part: stream one part at a time (each input column is loaded K times,
  // but 7 columns share every weight load; the tap-by-tap scheme reloads inputs per tap and spills registers)
  static constexpr bool PART = V::W == 8 && !STREAM;
};
template <class V, int R>
struct Plan2 {
  static constexpr int REGS = V::W == 16 ? 30 : 15;
  static constexpr bool STREAM = 6 * R + 2 * R + 2 <= REGS;
  static constexpr int P_STREAM = (REGS - 6 * R - 2) / R > 8 ? 8 : (REGS - 6 * R - 2) / R;
  static constexpr int P_TAP = (REGS - 2 * R - 2) / R > 6 ? 6 : (REGS - 2 * R - 2) / R;
  // AVX2, c_out' = 2, rows a multiple of 4 wide: blocks of 4 columns with the swap out of the loop (conv2_block)
  static constexpr bool SPLIT = V::W == 8 && R == 1;
  static constexpr int P = STREAM ? P_STREAM : P_TAP;
};

// Buffers are "lane-block major": [lane block][...][W], so the inner loops step by compile-time strides
// (immediate displacements, no address math). A row is stored once; its pair-swapped copy is made in a register
// where it is used (a shuffle, which the FMA pipes leave room for: 8-24 % faster than loading a stored copy,
// measured on AVX2, with half the stores and half the cache the rows take).

// ----- one input row, blocked: [lane block][w + 2 columns][W]; padded lanes zero, and columns 0 and w + 1
// (never written: the buffer starts zeroed) are the convolution's zero padding ---------------------------------
template <class V>
inline void input_row(const float* row, const Shape& s, int64_t b0, int64_t b1, float* out) {
  for (int64_t b = b0; b < b1; ++b) {
    const int64_t lb = b * V::W;
    const int valid = (int)std::min<int64_t>(V::W, s.c - lb);
    float* dst = out + (b * (s.w + 2) + 1) * V::W;
    for (int64_t ix = 0; ix < s.w; ++ix) {
      const float* px = row + ix * s.c + lb;
      const auto xv = valid >= V::W ? V::load(px) : (valid > 0 ? V::loadn(px, valid) : V::zero());
      V::store(dst + ix * V::W, xv);
    }
  }
}

// ----- conv1 for PB hidden columns starting at hx (constant PB and stride: registers, immediates) -----
// xin[ky]: the blocked input rows of this lane block (nullptr: zero padding); hid: this lane block's hidden
// row, [K parts][wo + 2 columns][W], columns 0 and wo + 1 zero. Input column ix sits at ix + 1 (padding).
// STREAM: each input column is loaded once and applied to every output column it feeds (the weights of
// all three kx taps stay in registers); else tap by tap (fewer registers, for wide units or AVX2).
template <class V, int K, int S, int PB, bool STREAM>
inline void conv1_block(const float* const xin[3], const Shape& s, const float* w1, const typename V::T bias[K],
                        int64_t hx, float* hid) {
  using T = typename V::T;
  constexpr int W = V::W;
  const int64_t part = (s.wo + 2) * W;
  T acc[K][PB];
#pragma GCC unroll 16
  for (int p = 0; p < K; ++p)
#pragma GCC unroll 8
    for (int q = 0; q < PB; ++q) acc[p][q] = bias[p];
#pragma GCC unroll 3
  for (int ky = 0; ky < 3; ++ky) {
    const float* row = xin[ky];
    if (row == nullptr) continue;  // above or below the input: zero padding
    if constexpr (STREAM) {
      T a[3][K], b[3][K];
#pragma GCC unroll 3
      for (int kx = 0; kx < 3; ++kx)
#pragma GCC unroll 16
        for (int p = 0; p < K; ++p) {
          const float* wt = w1 + ((int64_t)p * TAPS + ky * 3 + kx) * 2 * W;
          a[kx][p] = V::load(wt);
          b[kx][p] = V::load(wt + W);
        }
      const float* base = row + hx * S * W;  // input column hx * S - 1
#pragma GCC unroll 24
      for (int c = 0; c < (PB - 1) * S + 3; ++c) {
        const T xv = V::load(base + c * W);
        const T xs = V::swap(xv);
#pragma GCC unroll 8
        for (int q = 0; q < PB; ++q) {
          const int kx = c - q * S;
          if (kx < 0 || kx > 2) continue;
#pragma GCC unroll 16
          for (int p = 0; p < K; ++p) acc[p][q] = V::fma(b[kx][p], xs, V::fma(a[kx][p], xv, acc[p][q]));
        }
      }
    } else {
#pragma GCC unroll 3
      for (int kx = 0; kx < 3; ++kx) {
        const float* wt = w1 + (int64_t)(ky * 3 + kx) * 2 * W;  // [K][9][2][W] of this lane block
        T a[K], b[K];
#pragma GCC unroll 16
        for (int p = 0; p < K; ++p) {
          a[p] = V::load(wt + (int64_t)p * TAPS * 2 * W);
          b[p] = V::load(wt + (int64_t)p * TAPS * 2 * W + W);
        }
        const float* base = row + (hx * S + kx) * W;
#pragma GCC unroll 8
        for (int q = 0; q < PB; ++q) {
          const T xv = V::load(base + q * S * W);
          const T xs = V::swap(xv);
#pragma GCC unroll 16
          for (int p = 0; p < K; ++p) acc[p][q] = V::fma(b[p], xs, V::fma(a[p], xv, acc[p][q]));
        }
      }
    }
  }
#pragma GCC unroll 8
  for (int q = 0; q < PB; ++q)
#pragma GCC unroll 16
    for (int p = 0; p < K; ++p) {
      const T h = V::relu(acc[p][q]);
      V::store(hid + p * part + (hx + q + 1) * W, h);
    }
}

// ----- one kernel row of the swapped-sum scheme over PB columns: acc += a * x and sw += swap(b) * x for the three
// taps (wt: [3 taps][a, b][W]) over the input columns base[0 .. PB + 1]; swap(sw) is the sum of b * swap(x) --------
template <class V, int PB>
inline void swapped_taps(const float* wt, const float* base, typename V::T* acc, typename V::T* sw) {
  using T = typename V::T;
  constexpr int W = V::W;
  T a[3], b[3];
#pragma GCC unroll 3
  for (int kx = 0; kx < 3; ++kx) {
    a[kx] = V::load(wt + kx * 2 * W);
    b[kx] = V::swap(V::load(wt + kx * 2 * W + W));
  }
#pragma GCC unroll 10
  for (int c = 0; c < PB + 2; ++c) {
    const T xv = V::load(base + c * W);
#pragma GCC unroll 8
    for (int q = 0; q < PB; ++q) {
      const int kx = c - q;
      if (kx < 0 || kx > 2) continue;
      acc[q] = V::fma(a[kx], xv, acc[q]);
      sw[q] = V::fma(b[kx], xv, sw[q]);
    }
  }
}

// ----- conv1 of one part at stride 1 for PB hidden columns, the swap moved out of the loop: sw sums swap(b) * x, and
// swap(sw) is the sum of b * swap(x); two independent sums per column and no shuffle per input column (AVX2, rows
// whose width is a multiple of 4: 28 wide, 1.07-1.09x; 7 wide in blocks of 4, 2 and 1 ran slower) -----------------
template <class V, int PB>
inline void conv1_split_block(const float* const xin[3], const float* w1, typename V::T bias, int64_t hx, float* hid) {
  using T = typename V::T;
  constexpr int W = V::W;
  T acc[PB], sw[PB];
#pragma GCC unroll 8
  for (int q = 0; q < PB; ++q) acc[q] = bias, sw[q] = V::zero();
#pragma GCC unroll 3
  for (int ky = 0; ky < 3; ++ky)  // a row above or below the input (nullptr) is zero padding
    if (xin[ky] != nullptr) swapped_taps<V, PB>(w1 + ky * 3 * 2 * W, xin[ky] + hx * W, acc, sw);  // column hx - 1
#pragma GCC unroll 8
  for (int q = 0; q < PB; ++q) V::store(hid + (hx + q + 1) * W, V::relu(V::add(acc[q], V::swap(sw[q]))));
}

// ----- a row's columns in register blocks: block(PB, x0) for blocks of P columns, then of 4, 2 and 1 ---------
template <int P, class F>
inline void column_blocks(int64_t width, const F& block) {
  constexpr int P4 = P > 4 ? 4 : 1, P2 = P > 2 ? 2 : 1;
  int64_t x = 0;
  for (; x + P <= width; x += P) block(std::integral_constant<int, P>{}, x);
  for (; x + P4 <= width; x += P4) block(std::integral_constant<int, P4>{}, x);
  for (; x + P2 <= width; x += P2) block(std::integral_constant<int, P2>{}, x);
  for (; x < width; ++x) block(std::integral_constant<int, 1>{}, x);
}

// ----- conv1 over a whole hidden row of one lane block ---------------------------------------------------------
template <class V, int K, int S, int P, bool STREAM>
inline void hidden_columns(const float* const xb[3], const Shape& s, const float* w1, const typename V::T bias[K],
                           float* hid) {
  column_blocks<P>(s.wo, [&](auto pb, int64_t hx) { conv1_block<V, K, S, pb.value, STREAM>(xb, s, w1, bias, hx, hid); });
}

// ----- one hidden row (lane blocks blk0 .. blk1 - 1): conv1 (+bias, ReLU) ------------------------------
// hidden layout: [lane block][K parts][wo + 2 columns][W]
template <class V, int K, int S>
inline void hidden_row(const float* const xin[3], const Shape& s, int64_t blk0, int64_t blk1, const float* w1,
                       const float* b1, float* hid) {
  using T = typename V::T;
  constexpr int W = V::W;
  const int64_t part = (s.wo + 2) * W, hsize = K * part, xsize = (s.w + 2) * W;
  for (int64_t blk = blk0; blk < blk1; ++blk) {
    const float* xb[3];
    for (int ky = 0; ky < 3; ++ky) xb[ky] = xin[ky] ? xin[ky] + blk * xsize : nullptr;
    const float* wb = w1 + blk * K * TAPS * 2 * W;
    float* hb = hid + blk * hsize;
    T bias[K];
    for (int p = 0; p < K; ++p) bias[p] = V::load(b1 + (blk * K + p) * W);
    if constexpr (Plan1<V, K>::PART) {
      for (int p = 0; p < K; ++p) {  // part p: weights [p][9][2][W], hidden [p][wo + 2][W]
        if (S == 1 && s.wo % 4 == 0)
          column_blocks<4>(s.wo, [&](auto pb, int64_t hx) {
            conv1_split_block<V, pb.value>(xb, wb + p * TAPS * 2 * W, bias[p], hx, hb + p * part);
          });
        else
          hidden_columns<V, 1, S, Plan1<V, 1>::P, true>(xb, s, wb + p * TAPS * 2 * W, &bias[p], hb + p * part);
      }
    } else {
      hidden_columns<V, K, S, Plan1<V, K>::P, Plan1<V, K>::STREAM>(xb, s, wb, bias, hb);
    }
  }
}

// ----- conv2 for PB output columns starting at ox, then residual, ReLU and the store ----------------
// STREAM: each hidden column is loaded once per (row, part) and applied to every output column it feeds.
// SPLIT (c_out' = 2): as STREAM, but the b taps sum swap(b) * h apart and one swap of that sum ends the block, so
// the loop has no shuffle and two independent sums per column (16 channels, 28 wide: 1.07-1.09x, measured).
template <class V, int K, int R, int PB, bool STREAM, bool SPLIT>
inline void conv2_block(const Shape& s, const float* const hrows[3], const float* w2, const typename V::T bias[R],
                        int64_t lb, int valid, int64_t ox, const float* res, bool relu_out, float* out) {
  using T = typename V::T;
  constexpr int W = V::W;
  const int64_t part = (s.wo + 2) * W;
  T acc[R][PB];
#pragma GCC unroll 2
  for (int r = 0; r < R; ++r)
#pragma GCC unroll 8
    for (int q = 0; q < PB; ++q) acc[r][q] = bias[r];
  if constexpr (SPLIT) {
    T sw[PB];  // sums of swap(b) * h: swap(sw) is the sum of b * swap(h), so no column is swapped in the loop
#pragma GCC unroll 8
    for (int q = 0; q < PB; ++q) sw[q] = V::zero();
#pragma GCC unroll 3
    for (int ky = 0; ky < 3; ++ky)
#pragma GCC unroll 8
      for (int p = 0; p < K; ++p)
        swapped_taps<V, PB>(w2 + ((int64_t)p * TAPS + ky * 3) * 2 * W, hrows[ky] + p * part + ox * W, acc[0], sw);
#pragma GCC unroll 8
    for (int q = 0; q < PB; ++q) acc[0][q] = V::add(acc[0][q], V::swap(sw[q]));
  } else
#pragma GCC unroll 3
  for (int ky = 0; ky < 3; ++ky) {
    const float* hr = hrows[ky];
#pragma GCC unroll 8
    for (int p = 0; p < K; ++p) {
      const float* hp = hr + p * part + ox * W;  // hidden column ox - 1 (+1 border)
      if constexpr (STREAM) {
        T a[3][R], b[3][R];
#pragma GCC unroll 3
        for (int kx = 0; kx < 3; ++kx)
#pragma GCC unroll 2
          for (int r = 0; r < R; ++r) {
            const float* wt = w2 + (((int64_t)r * K + p) * TAPS + ky * 3 + kx) * 2 * W;
            a[kx][r] = V::load(wt);
            b[kx][r] = V::load(wt + W);
          }
#pragma GCC unroll 10
        for (int c = 0; c < PB + 2; ++c) {
          const T hv = V::load(hp + c * W);
          const T hs = V::swap(hv);
#pragma GCC unroll 8
          for (int q = 0; q < PB; ++q) {
            const int kx = c - q;
            if (kx < 0 || kx > 2) continue;
#pragma GCC unroll 2
            for (int r = 0; r < R; ++r) acc[r][q] = V::fma(b[kx][r], hs, V::fma(a[kx][r], hv, acc[r][q]));
          }
        }
      } else {
#pragma GCC unroll 3
        for (int kx = 0; kx < 3; ++kx) {
          T a[R], b[R];
#pragma GCC unroll 2
          for (int r = 0; r < R; ++r) {
            const float* wt = w2 + (((int64_t)r * K + p) * TAPS + ky * 3 + kx) * 2 * W;
            a[r] = V::load(wt);
            b[r] = V::load(wt + W);
          }
#pragma GCC unroll 8
          for (int q = 0; q < PB; ++q) {
            const T hv = V::load(hp + (q + kx) * W);
            const T hs = V::swap(hv);
#pragma GCC unroll 2
            for (int r = 0; r < R; ++r) acc[r][q] = V::fma(b[r], hs, V::fma(a[r], hv, acc[r][q]));
          }
        }
      }
    }
  }
#pragma GCC unroll 8
  for (int q = 0; q < PB; ++q) {
    float* o = out + (ox + q) * s.cout;
    const float* rr = res ? res + (ox + q) * s.cout : nullptr;
    if (R == 1) {
      T y = acc[0][q];
      if (valid == V::W) {
        if (rr) y = V::add(y, V::load(rr + lb));
        if (relu_out) y = V::relu(y);
        V::store(o + lb, y);
      } else {
        if (rr) y = V::add(y, V::loadn(rr + lb, valid));
        if (relu_out) y = V::relu(y);
        V::storen(o + lb, y, valid);
      }
    } else {  // c_out' = 4: output channel 4u + 2r + o from lane 2u + o of part r
      T lo, hi;
      V::interleave(acc[0][q], acc[R - 1][q], lo, hi);
      const int64_t ob = 2 * lb;
      const int n_lo = std::min(V::W, 2 * valid), n_hi = std::max(0, 2 * valid - V::W);
      if (rr) {
        lo = V::add(lo, n_lo == V::W ? V::load(rr + ob) : V::loadn(rr + ob, n_lo));
        if (n_hi) hi = V::add(hi, n_hi == V::W ? V::load(rr + ob + V::W) : V::loadn(rr + ob + V::W, n_hi));
      }
      if (relu_out) {
        lo = V::relu(lo);
        hi = V::relu(hi);
      }
      if (n_lo == V::W) V::store(o + ob, lo); else V::storen(o + ob, lo, n_lo);
      if (n_hi == V::W) V::store(o + ob + V::W, hi); else if (n_hi) V::storen(o + ob + V::W, hi, n_hi);
    }
  }
}

// ----- one output row (lane blocks blk0 .. blk1 - 1): conv2 (+bias) over three hidden rows, residual, ReLU,
// store ------------------------------------------------------------------------------------------------
template <class V, int K, int R, int P>
inline void output_row(const Shape& s, int64_t blk0, int64_t blk1, const float* const hrows[3], const float* w2,
                       const float* b2, const float* res, bool relu_out, float* out) {
  using T = typename V::T;
  constexpr int W = V::W;
  const int64_t hsize = K * (s.wo + 2) * W;
  for (int64_t blk = blk0; blk < blk1; ++blk) {
    const int64_t lb = blk * W;
    const int valid = (int)std::min<int64_t>(W, s.c - lb);
    if (valid <= 0) continue;
    const float* hb[3] = {hrows[0] + blk * hsize, hrows[1] + blk * hsize, hrows[2] + blk * hsize};
    const float* wb = w2 + blk * R * K * TAPS * 2 * W;
    T bias[R];
    for (int r = 0; r < R; ++r) bias[r] = V::load(b2 + (blk * R + r) * W);
    auto blocks = [&](auto plan_p, auto split) {
      column_blocks<plan_p.value>(s.wo, [&](auto pb, int64_t ox) {
        conv2_block<V, K, R, pb.value, Plan2<V, R>::STREAM, split.value>(s, hb, wb, bias, lb, valid, ox, res,
                                                                           relu_out, out);
      });
    };
    if constexpr (Plan2<V, R>::SPLIT) {
      if (s.wo % 4 == 0) {
        blocks(std::integral_constant<int, 4>{}, std::true_type{});
        continue;
      }
    }
    blocks(std::integral_constant<int, P>{}, std::false_type{});
  }
}

// ----- a block's shortcut when it is a 1x1 convolution (stride S, bias folded into b2) ------------------
// dst (wo x cout, an NHWC row) = row oy * S of x, every S-th pixel, times pw (c x cout), for the output
// channels [c0, c1) of the task's lane blocks. A block is PB pixels by JB vectors of output channels (the last one
// n_last lanes wide): PB x JB independent sums, so the FMAs do not wait on each other (with one vector, four
// pixels made four dependency chains: half the FMA rate).
template <class V, int JB, int PB>
inline void project_block(const float* xrow, const Shape& s, const float* pw, int64_t j, int n_last, int64_t ox,
                          float* dst) {
  using T = typename V::T;
  constexpr int W = V::W;
  T acc[JB][PB];
  for (int b = 0; b < JB; ++b)
    for (int q = 0; q < PB; ++q) acc[b][q] = V::zero();
  for (int64_t ci = 0; ci < s.c; ++ci) {
    T wv[JB];
#pragma GCC unroll 2
    for (int b = 0; b < JB; ++b) {
      const float* wp = pw + ci * s.cout + j + b * W;
      wv[b] = b == JB - 1 && n_last < W ? V::loadn(wp, n_last) : V::load(wp);
    }
#pragma GCC unroll 4
    for (int q = 0; q < PB; ++q) {
      const T xv = V::set1(xrow[(ox + q) * s.stride * s.c + ci]);
#pragma GCC unroll 2
      for (int b = 0; b < JB; ++b) acc[b][q] = V::fma(xv, wv[b], acc[b][q]);
    }
  }
  for (int q = 0; q < PB; ++q)
    for (int b = 0; b < JB; ++b) {
      float* o = dst + (ox + q) * s.cout + j + b * W;
      b == JB - 1 && n_last < W ? V::storen(o, acc[b][q], n_last) : V::store(o, acc[b][q]);
    }
}

template <class V>
inline void project_row(const float* xrow, const Shape& s, const float* pw, int64_t c0, int64_t c1, float* dst) {
  constexpr int W = V::W;
  auto columns = [&](auto jb, int64_t j, int n_last) {
    int64_t ox = 0;
    for (; ox + 4 <= s.wo; ox += 4) project_block<V, jb.value, 4>(xrow, s, pw, j, n_last, ox, dst);
    for (; ox < s.wo; ++ox) project_block<V, jb.value, 1>(xrow, s, pw, j, n_last, ox, dst);
  };
  int64_t j = c0;
  for (; j + W < c1; j += 2 * W) columns(std::integral_constant<int, 2>{}, j, (int)std::min<int64_t>(W, c1 - j - W));
  if (j < c1) columns(std::integral_constant<int, 1>{}, j, (int)std::min<int64_t>(W, c1 - j));
}

// A small cache of rows, each computed once, by row index.
struct RowCache {
  float* base;
  int64_t size;
  int slots;
  int64_t held[4] = {-9, -9, -9, -9};
  float* find(int64_t row) {
    for (int k = 0; k < slots; ++k)
      if (held[k] == row) return base + k * size;
    return nullptr;
  }
  float* claim(int64_t row) {  // rows are visited in order: slot row % slots held the oldest row
    const int k = (int)(((row % slots) + slots) % slots);
    held[k] = row;
    return base + k * size;
  }
  void clear() {
    for (auto& h : held) h = -9;
  }
};

// The buffers a thread works in: 3 hidden rows + 1 zero row, 4 blocked input rows (stride 2 reuses one row between
// hidden rows) and one projected shortcut row.
inline int64_t buffer_floats(const Shape& s, int K, int W, bool proj) {
  const int64_t blocks = s.lanes / W;
  return 4 * blocks * K * (s.wo + 2) * W + 4 * blocks * (s.w + 2) * W + (proj ? s.wo * s.cout : 0);
}

// One task: output rows r0 .. r1 - 1 of lane blocks blk0 .. blk1 - 1 of one image (xn, res and out: that image's
// NHWC planes), in the zeroed buffer of buffer_floats.
template <class V, int K, int R, int S>
void layer_task(const float* xn, const Shape& s, const float* w1, const float* b1, const float* w2, const float* b2,
                const float* res, const float* proj, bool relu_out, float* out, int64_t r0, int64_t r1, int64_t blk0,
                int64_t blk1, float* buffer) {
  constexpr int P2 = Plan2<V, R>::P;
  constexpr int W = V::W;
  const int64_t blocks = s.lanes / W;
  const int64_t hidden_size = blocks * K * (s.wo + 2) * W, input_size = blocks * (s.w + 2) * W;
  float* projected = buffer + 4 * hidden_size + 4 * input_size;
  float* zero_row = buffer + 3 * hidden_size;
  RowCache hidden{buffer, hidden_size, 3};
  RowCache inputs{buffer + 4 * hidden_size, input_size, 4};
  auto input = [&](int64_t iy) -> const float* {
    if (iy < 0 || iy >= s.h) return nullptr;
    float* cached = inputs.find(iy);
    if (cached == nullptr) {
      cached = inputs.claim(iy);
      input_row<V>(xn + iy * s.w * s.c, s, blk0, blk1, cached);
    }
    return cached;
  };
  auto get = [&](int64_t hy) -> const float* {
    if (hy < 0 || hy >= s.ho) return zero_row;
    float* cached = hidden.find(hy);
    if (cached == nullptr) {
      const float* rows[3] = {input(hy * S - 1), input(hy * S), input(hy * S + 1)};
      cached = hidden.claim(hy);
      hidden_row<V, K, S>(rows, s, blk0, blk1, w1, b1, cached);  // borders (columns 0, wo + 1) stay zero
    }
    return cached;
  };
  for (int64_t oy = r0; oy < r1; ++oy) {
    const float* rows[3] = {get(oy - 1), get(oy), get(oy + 1)};
    const float* rn = res ? res + oy * s.wo * s.cout : nullptr;
    if (proj) {  // the output channels of this task's lane blocks: c_out' = 2R per unit, W / 2 units a block
      project_row<V>(xn + oy * S * s.w * s.c, s, proj, blk0 * W * R, std::min(s.cout, blk1 * W * R), projected);
      rn = projected;
    }
    output_row<V, K, R, P2>(s, blk0, blk1, rows, w2, b2, rn, relu_out, out + oy * s.wo * s.cout);
  }
}

// This thread's work buffer, kept between calls: `zeroed` floats set to zero (the row buffers, whose borders and
// padded lanes are never written), then `more` floats left as they are (scratch planes a task writes before it
// reads). A vector allocated per call cost its allocation and the zeroing of the chain's two planes (100 KB at
// batch 1, 16 channels, 28x28) on every call.
inline float* thread_buffer(int64_t zeroed, int64_t more) {
  static thread_local std::vector<float> buffer;
  if ((int64_t)buffer.size() < zeroed + more) buffer.resize(zeroed + more);
  std::fill_n(buffer.data(), zeroed, 0.0f);
  return buffer.data();
}

// Runs work(thread, threads) on the host's threads (OpenVINO: its TBB arena, so no second pool competes) or OpenMP's.
template <class F>
void parallel(int threads, const F& work) {
#ifdef TB_PARALLEL
  TB_PARALLEL(threads, work);
#else
#pragma omp parallel num_threads(threads)
  work(omp_get_thread_num(), omp_get_num_threads());
#endif
}

template <class V, int K, int R, int S>
void run(const float* x, const Shape& s, const float* w1, const float* b1, const float* w2, const float* b2,
         const float* res, const float* proj, bool relu_out, float* out, int64_t rows_per_task, int64_t blocks_per_task,
         int threads) {
  const int64_t blocks = s.lanes / V::W, block_tasks = (blocks + blocks_per_task - 1) / blocks_per_task;
  const int64_t row_tasks = (s.ho + rows_per_task - 1) / rows_per_task, tasks_per_image = row_tasks * block_tasks;
  const int64_t total = s.n * tasks_per_image, in_plane = s.h * s.w * s.c, out_plane = s.ho * s.wo * s.cout;
  // Tasks are claimed one at a time from a shared counter, not split into fixed shares: on a busy machine a
  // thread that is slowed down takes fewer (measured: as fast in a quiet moment, the median call up to 17 % faster
  // than with fixed shares in a busy one).
  std::atomic<int64_t> next{0};
  parallel(threads, [&](int, int) {
    float* buffer = thread_buffer(buffer_floats(s, K, V::W, proj != nullptr), 0);
    for (int64_t t = next++; t < total; t = next++) {
      const int64_t n = t / tasks_per_image, r0 = (t % tasks_per_image / block_tasks) * rows_per_task;
      const int64_t blk0 = (t % block_tasks) * blocks_per_task;
      layer_task<V, K, R, S>(x + n * in_plane, s, w1, b1, w2, b2, res ? res + n * out_plane : nullptr, proj,
                             relu_out, out + n * out_plane, r0, std::min(s.ho, r0 + rows_per_task), blk0,
                             std::min(blocks, blk0 + blocks_per_task), buffer);
    }
  });
}

// A chain of residual blocks of 2-(2K)-2 units at stride 1 (identity shortcut, final ReLU), in one parallel region:
// a unit's output lanes are its input lanes, so a lane block runs through every layer of the chain without
// waiting for the others. A task (image, lane blocks) keeps its intermediate planes in the thread's own two
// scratch planes (only its lanes are written or read there).
template <class V, int K>
void run_chain(const float* x, const Shape& s, const float* const* weights, int layers, float* out,
               int64_t block_tasks, int threads) {
  const int64_t blocks = s.lanes / V::W, blocks_per_task = (blocks + block_tasks - 1) / block_tasks;
  const int64_t plane = s.h * s.w * s.c, total = s.n * block_tasks;
  std::atomic<int64_t> next{0};
  parallel(threads, [&](int, int) {
    const int64_t rows = buffer_floats(s, K, V::W, false);
    float* buffer = thread_buffer(rows, 2 * plane);
    float* scratch[2] = {buffer + rows, buffer + rows + plane};
    for (int64_t t = next++; t < total; t = next++) {
      const int64_t n = t / block_tasks, blk0 = (t % block_tasks) * blocks_per_task;
      const int64_t blk1 = std::min(blocks, blk0 + blocks_per_task);
      const float* in = x + n * plane;
      for (int l = 0; l < layers; ++l) {
        float* dst = l == layers - 1 ? out + n * plane : scratch[l % 2];
        const float* const* w = weights + 4 * l;
        layer_task<V, K, 1, 1>(in, s, w[0], w[1], w[2], w[3], in, nullptr, true, dst, 0, s.ho, blk0, blk1, buffer);
        in = dst;
      }
    }
  });
}

template <class V>
bool dispatch(int K, int R, const float* x, const Shape& s, const float* w1, const float* b1, const float* w2,
              const float* b2, const float* res, const float* proj, bool relu_out, float* out, int64_t rows,
              int64_t blocks_per_task, int threads) {
#define TB_CASE(k, r)                                                                                          \
  if (K == k && R == r) {                                                                                      \
    if (s.stride == 1)                                                                                         \
      return run<V, k, r, 1>(x, s, w1, b1, w2, b2, res, proj, relu_out, out, rows, span, threads), true;      \
    return run<V, k, r, 2>(x, s, w1, b1, w2, b2, res, proj, relu_out, out, rows, span, threads), true;        \
  }
  const int64_t span = blocks_per_task;
  TB_CASE(1, 1) TB_CASE(1, 2) TB_CASE(2, 1) TB_CASE(2, 2) TB_CASE(3, 1) TB_CASE(3, 2) TB_CASE(4, 1)
  TB_CASE(4, 2) TB_CASE(6, 1) TB_CASE(6, 2) TB_CASE(8, 1) TB_CASE(8, 2)
#undef TB_CASE
  return false;
}

template <class V>
bool dispatch_chain(int K, const float* x, const Shape& s, const float* const* weights, int layers, float* out,
                    int64_t block_tasks, int threads) {
#define TB_CASE(k) \
  if (K == k) return run_chain<V, k>(x, s, weights, layers, out, block_tasks, threads), true;
  TB_CASE(1) TB_CASE(2) TB_CASE(3) TB_CASE(4) TB_CASE(6) TB_CASE(8)
#undef TB_CASE
  return false;
}

}  // namespace

namespace stacked {

inline const char* isa() { return Vec::W == 16 ? "avx512" : "avx2"; }
constexpr int kVectorWidth = Vec::W;

inline bool supports(int64_t c_h, int64_t c_out) {
  const int64_t K = c_h / 2;
  return c_h % 2 == 0 && (c_out == 2 || c_out == 4) && (K == 1 || K == 2 || K == 3 || K == 4 || K == 6 || K == 8);
}

// The lanes a layer of c channels occupies: c rounded up to whole vectors (the packed weights' width).
inline int64_t lanes(int64_t c) { return (c + Vec::W - 1) / Vec::W * Vec::W; }

// One fused stacked layer on NHWC float32: x (n, h, w, c) -> out (n, ho, wo, c / 2 * c_out), with packed
// weights (kernels/cpu.py:pack or pack_weights below), an optional residual added before the final ReLU:
// res (shaped like out), or proj (c x cout: the block's 1x1 shortcut convolution of x at the layer's stride,
// its bias folded into b2). Returns false for a unit shape without a kernel.
inline bool forward(const float* x, int64_t n, int64_t h, int64_t w, int64_t c, const float* w1, const float* b1,
                    const float* w2, const float* b2, int64_t c_h, int64_t c_out, int64_t stride, const float* res,
                    bool relu_out, float* out, int threads, const float* proj = nullptr) {
  if (!supports(c_h, c_out) || c % 2 != 0 || (stride != 1 && stride != 2)) return false;
  const int64_t ho = (h - 1) / stride + 1, wo = (w - 1) / stride + 1, cout = c / 2 * c_out;
  Shape s{n, h, w, c, ho, wo, cout, stride, lanes(c)};
  // Enough tasks for every thread: first split the lane blocks (the units are independent: nothing is computed
  // twice), then the rows (each task recomputes 2 hidden rows, so rows stay long enough for that to be cheap).
  const int64_t blocks = s.lanes / Vec::W;
  // A task's lanes are whole 64-byte cache lines (two AVX2 vectors): two threads writing the halves of one line
  // of every output pixel took turns owning it (batch 1, 16 channels, 2 threads: 1.25x faster split by rows).
  const int64_t line = 64 / (Vec::W * (int64_t)sizeof(float)), lines = (blocks + line - 1) / line;
  int64_t split = 1;
  while (split < lines && n * split < threads) ++split;
  const int64_t span = (lines + split - 1) / split * line, tasks = n * ((blocks + span - 1) / span);
  int64_t rows = ho;  // as few row tasks as fill the threads (more, on 2 threads at batch 1, ran up to 9 % slower)
  while (tasks < threads && rows > 4 && tasks * ((ho + rows - 1) / rows) < threads) rows = (rows + 1) / 2;
  return dispatch<Vec>((int)(c_h / 2), (int)(c_out / 2), x, s, w1, b1, w2, b2, res, proj, relu_out, out, rows,
                       span, threads);
}

// A chain of residual blocks of 2-(2 c_h/2)-2 units at stride 1 (identity shortcut, ReLU after the add), weights
// packed per layer at weights[4 l .. 4 l + 3] (w1, b1, w2, b2): x (n, h, w, c) -> out, the same shape, in one
// parallel region (one fork and join where a node per block paid one each: the chain's reason, at batch 1).
inline bool chain(const float* x, int64_t n, int64_t h, int64_t w, int64_t c, const float* const* weights, int layers,
                  int64_t c_h, float* out, int threads) {
  if (!supports(c_h, 2) || c % 2 != 0 || layers < 1) return false;
  Shape s{n, h, w, c, h, w, c, 1, lanes(c)};
  const int64_t blocks = s.lanes / Vec::W;
  int64_t split = 1;  // lane blocks per image split so that each thread has two tasks to claim, where there are
  while (split < blocks && n * split < 2 * threads) ++split;
  return dispatch_chain<Vec>((int)(c_h / 2), x, s, weights, layers, out, split, threads);
}

// The lane layout of kernels/cpu.py:pack, from the folded grouped-conv weights as an ONNX file stores them
// (w1: (m*c_h, 2, 3, 3), b1, w2: (m*c_out, c_h, 3, 3), b2), for the runtimes' operators.
struct Packed {
  std::vector<float> w1, b1, w2, b2;
  const float* source = nullptr;  // the w1 these were packed from (initializers keep their address)
};

// out[block][d][lane in block] = value(d, lane) for lanes < used, zero beyond (the kernel's blocked layout)
template <class F>
inline std::vector<float> blocked(int64_t leading, int64_t lanes, int64_t used, F value) {
  const int64_t W = stacked::kVectorWidth, blocks = lanes / W;
  std::vector<float> out(blocks * leading * W, 0.0f);
  for (int64_t b = 0; b < blocks; ++b)
    for (int64_t d = 0; d < leading; ++d)
      for (int64_t l = 0; l < W; ++l)
        if (b * W + l < used) out[(b * leading + d) * W + l] = value(d, b * W + l);
  return out;
}

inline void pack(Packed& p, const float* w1, const float* b1, const float* w2, const float* b2, int64_t m, int64_t c_h,
          int64_t c_out) {
  const int64_t k = c_h / 2, r = c_out / 2, lanes = stacked::lanes(2 * m), used = 2 * m;
  // w1[u, p, i, j, t] = hidden channel 2p+i of unit u from its input j, tap t
  auto W1 = [&](int64_t u, int64_t part, int64_t i, int64_t j, int64_t t) {
    return w1[((u * c_h + 2 * part + i) * 2 + j) * 9 + t];
  };
  auto W2 = [&](int64_t u, int64_t rp, int64_t o, int64_t part, int64_t j, int64_t t) {
    return w2[((u * c_out + 2 * rp + o) * c_h + 2 * part + j) * 9 + t];
  };
  p.w1 = blocked(k * 9 * 2, lanes, used, [&](int64_t d, int64_t lane) {
    const int64_t a = d % 2, t = (d / 2) % 9, part = d / 18, u = lane / 2, i = lane % 2;
    return W1(u, part, i, a ? 1 - i : i, t);
  });
  p.b1 = blocked(k, lanes, used, [&](int64_t part, int64_t lane) { return b1[(lane / 2) * c_h + 2 * part + lane % 2]; });
  p.w2 = blocked(r * k * 9 * 2, lanes, used, [&](int64_t d, int64_t lane) {
    const int64_t a = d % 2, t = (d / 2) % 9, part = (d / 18) % k, rp = d / (18 * k), u = lane / 2, o = lane % 2;
    return W2(u, rp, o, part, a ? 1 - o : o, t);
  });
  p.b2 = blocked(r, lanes, used, [&](int64_t rp, int64_t lane) { return b2[(lane / 2) * c_out + 2 * rp + lane % 2]; });
  p.source = w1;
}

}  // namespace stacked
