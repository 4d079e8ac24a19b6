// Times two builds of the fused kernel alternately on one layer (A B A B ...), in one process, and prints the median
// of the per-pair ratios A / B (above 1: B is faster) and the largest difference between their outputs.
// Arguments: batch channels size c_h c_out stride [pairs]; threads: $OMP_NUM_THREADS (default 2).
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <random>
#include <vector>

using Kernel = bool (*)(int64_t, int64_t, int64_t, int64_t, int64_t, int64_t, const float*, const float*, const float*,
                        const float*, const float*, const float*, float*, int);
extern "C" bool kernel_a(int64_t, int64_t, int64_t, int64_t, int64_t, int64_t, const float*, const float*,
                         const float*, const float*, const float*, const float*, float*, int);
extern "C" bool kernel_b(int64_t, int64_t, int64_t, int64_t, int64_t, int64_t, const float*, const float*,
                         const float*, const float*, const float*, const float*, float*, int);

int main(int argc, char** argv) {
  if (argc < 7) {
    std::fprintf(stderr, "usage: pairs batch channels size c_h c_out stride [pairs]\n");
    return 2;
  }
  const int64_t n = std::atoll(argv[1]), c = std::atoll(argv[2]), h = std::atoll(argv[3]), c_h = std::atoll(argv[4]),
                c_out = std::atoll(argv[5]), stride = std::atoll(argv[6]);
  const int pairs = argc > 7 ? std::atoi(argv[7]) : 300;
  const int threads = std::getenv("OMP_NUM_THREADS") ? std::atoi(std::getenv("OMP_NUM_THREADS")) : 2;
  const int64_t m = c / 2, ho = (h - 1) / stride + 1, cout = m * c_out;
  std::mt19937 gen(0);
  std::normal_distribution<float> normal;
  std::vector<float> x(n * h * h * c), w1(m * c_h * 18), b1(m * c_h), w2(m * c_out * c_h * 9), b2(m * c_out);
  std::vector<float> res(n * ho * ho * cout), out_a(res.size()), out_b(res.size());
  for (auto* v : {&x, &w1, &b1, &w2, &b2, &res})
    for (auto& e : *v) e = normal(gen);
  const float* residual = stride == 1 && c_out == 2 ? res.data() : nullptr;  // a block's identity shortcut
  std::vector<double> ta, tb, ratio;
  for (int i = -5; i < pairs; ++i) {  // five warm-up pairs
    double ms[2];
    for (int k = 0; k < 2; ++k) {
      const Kernel run = k == 0 ? kernel_a : kernel_b;
      const auto t0 = std::chrono::steady_clock::now();
      if (!run(n, h, c, c_h, c_out, stride, x.data(), w1.data(), b1.data(), w2.data(), b2.data(), residual,
               (k == 0 ? out_a : out_b).data(), threads)) {
        std::fprintf(stderr, "no kernel for this layer\n");
        return 2;
      }
      ms[k] = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
    }
    if (i < 0) continue;
    ta.push_back(ms[0]), tb.push_back(ms[1]), ratio.push_back(ms[0] / ms[1]);
  }
  double diff = 0;
  for (size_t i = 0; i < out_a.size(); ++i) diff = std::max(diff, (double)std::fabs(out_a[i] - out_b[i]));
  auto median = [](std::vector<double> v) { std::sort(v.begin(), v.end()); return v[v.size() / 2]; };
  std::printf("| %lld | %lld | %lld | 2-%lld-%lld | %lld | %.3f | %.3f | %.3f | %.1e |\n", (long long)n, (long long)c,
              (long long)h, (long long)c_h, (long long)c_out, (long long)stride, median(ta), median(tb), median(ratio),
              diff);
  return diff > 1e-4 ? 1 : 0;
}
