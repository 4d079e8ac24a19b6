// ONNX Runtime custom operators for the fused stacked-layer kernel (stacked_core.h), so an exported TissueNet
// runs its stacked layers on the same kernel as the suite's deployment form.
//
//   tissuenet::FusedStacked(x, w1, b1, w2, b2)                -> y
//   tissuenet::FusedStackedResidual(x, w1, b1, w2, b2, res)   -> y      (ResNet block: y = relu(F(x) + res))
//   tissuenet::FusedStackedProjected(x, w1, b1, w2, b2, pw)   -> y      (its shortcut a 1x1 conv at the layer's
//                                                                        stride: res = x[:, ::s, ::s] @ pw)
//
// x, res and y are NHWC float32 (the exporter puts Transposes around the node, which ONNX Runtime cancels
// between consecutive nodes); w1 (m*c_h, 2, 3, 3), b1, w2 (m*c_out, c_h, 3, 3), b2 are the BN-folded weights of
// the layer's two grouped convolutions, exactly as a plain export stores them (pw: (c, cout), the shortcut's
// bias already in b2): the kernel's lane layout is
// packed here, on the first run, for the vector width of the CPU that runs the file (so one ONNX file serves
// AVX-512 and AVX2 machines). Attributes: stride (1 or 2), relu (0 or 1, the layer's final ReLU).
//
// Loading: SessionOptions.register_custom_ops_library(path to this library); entry point RegisterCustomOps.
// Threads: OpenMP, omp_get_max_threads() unless tissuenet_set_threads(n) was called (the suite passes its
// intra-op thread count).
//
// The ONNX Runtime C API is used through the few declarations below, written for this file: its structs are
// tables of function pointers whose order ONNX Runtime keeps fixed across releases (ABI stability), so slot
// numbers of API version 13 hold for every later runtime; a runtime older than 13 is refused by GetApi.

#include <cstdint>
#include <cstring>
#include <mutex>
#include <stdexcept>
#include <string>
#include <vector>

#include "stacked_core.h"

namespace {

constexpr uint32_t kApiVersion = 13;

struct OrtStatus;
struct OrtValue;
struct OrtKernelInfo;
struct OrtKernelContext;
struct OrtCustomOpDomain;
struct OrtSessionOptions;
struct OrtTensorTypeAndShapeInfo;
using Fn = void*;

// OrtApi, as the slots we call: index = position of the function pointer in the struct.
enum Slot : int {
  kCreateStatus = 0,
  kCreateCustomOpDomain = 26,
  kCustomOpDomainAdd = 27,
  kAddCustomOpDomain = 28,
  kGetTensorMutableData = 51,
  kGetDimensionsCount = 61,
  kGetDimensions = 62,
  kGetTensorTypeAndShape = 65,
  kKernelInfoGetAttributeInt64 = 86,
  kKernelContextGetInput = 90,
  kKernelContextGetOutput = 91,
  kReleaseTensorTypeAndShapeInfo = 99,
};

struct Api {
  const Fn* table;
  template <class F>
  F get(Slot s) const { return reinterpret_cast<F>(table[s]); }

  void check(OrtStatus* status) const {
    if (status != nullptr) throw std::runtime_error("tissuenet: an ONNX Runtime call failed");
  }
  std::vector<int64_t> shape(const OrtValue* v) const {
    OrtTensorTypeAndShapeInfo* info = nullptr;
    check(get<OrtStatus* (*)(const OrtValue*, OrtTensorTypeAndShapeInfo**)>(kGetTensorTypeAndShape)(v, &info));
    size_t n = 0;
    check(get<OrtStatus* (*)(const OrtTensorTypeAndShapeInfo*, size_t*)>(kGetDimensionsCount)(info, &n));
    std::vector<int64_t> dims(n);
    check(get<OrtStatus* (*)(const OrtTensorTypeAndShapeInfo*, int64_t*, size_t)>(kGetDimensions)(info, dims.data(), n));
    get<void (*)(OrtTensorTypeAndShapeInfo*)>(kReleaseTensorTypeAndShapeInfo)(info);
    return dims;
  }
  const OrtValue* input(OrtKernelContext* ctx, size_t i) const {
    const OrtValue* v = nullptr;
    check(get<OrtStatus* (*)(const OrtKernelContext*, size_t, const OrtValue**)>(kKernelContextGetInput)(ctx, i, &v));
    return v;
  }
  float* data(const OrtValue* v) const {
    void* p = nullptr;
    check(get<OrtStatus* (*)(OrtValue*, void**)>(kGetTensorMutableData)(const_cast<OrtValue*>(v), &p));
    return static_cast<float*>(p);
  }
  int64_t attribute(const OrtKernelInfo* info, const char* name, int64_t fallback) const {
    int64_t out = 0;
    OrtStatus* s = get<OrtStatus* (*)(const OrtKernelInfo*, const char*, int64_t*)>(kKernelInfoGetAttributeInt64)(
        info, name, &out);
    return s == nullptr ? out : fallback;  // (a missing attribute's status is leaked: once per session load)
  }
};

// OrtCustomOp, API version 13 (fields up to GetInputMemoryType; a runtime reads no further for version 13).
struct OrtCustomOp {
  uint32_t version;
  void* (*CreateKernel)(const OrtCustomOp*, const Fn*, const OrtKernelInfo*);
  const char* (*GetName)(const OrtCustomOp*);
  const char* (*GetExecutionProviderType)(const OrtCustomOp*);
  int (*GetInputType)(const OrtCustomOp*, size_t);
  size_t (*GetInputTypeCount)(const OrtCustomOp*);
  int (*GetOutputType)(const OrtCustomOp*, size_t);
  size_t (*GetOutputTypeCount)(const OrtCustomOp*);
  void (*KernelCompute)(void*, OrtKernelContext*);
  void (*KernelDestroy)(void*);
  int (*GetInputCharacteristic)(const OrtCustomOp*, size_t);
  int (*GetOutputCharacteristic)(const OrtCustomOp*, size_t);
  int (*GetInputMemoryType)(const OrtCustomOp*, size_t);
};

constexpr int kFloat = 1;  // ONNX_TENSOR_ELEMENT_DATA_TYPE_FLOAT
int g_threads = 0;         // 0: omp_get_max_threads()

enum class Shortcut { kNone, kResidual, kProjected };  // the op's sixth input: none, res or pw

struct Kernel {
  Api api;
  int64_t stride, relu;
  Shortcut shortcut;
  stacked::Packed packed;
  std::mutex packing;

  void compute(OrtKernelContext* ctx) {
    const OrtValue* x = api.input(ctx, 0);
    const std::vector<int64_t> xs = api.shape(x), w1s = api.shape(api.input(ctx, 1)), w2s = api.shape(api.input(ctx, 3));
    if (xs.size() != 4 || w1s.size() != 4 || w2s.size() != 4 || xs[3] % 2 != 0)
      throw std::runtime_error("tissuenet::FusedStacked: x must be NHWC with pairs of channels, weights 4-d");
    const int64_t n = xs[0], h = xs[1], w = xs[2], c = xs[3], m = c / 2;
    const int64_t c_h = w1s[0] / m, c_out = w2s[0] / m;
    if (w1s[0] != m * c_h || w1s[1] != 2 || w2s[0] != m * c_out || w2s[1] != c_h || !stacked::supports(c_h, c_out))
      throw std::runtime_error("tissuenet::FusedStacked: weights do not match 2-input units of a supported shape");
    const float* w1 = api.data(api.input(ctx, 1));
    {
      std::lock_guard<std::mutex> hold(packing);
      if (packed.source != w1)
        stacked::pack(packed, w1, api.data(api.input(ctx, 2)), api.data(api.input(ctx, 3)), api.data(api.input(ctx, 4)), m, c_h,
             c_out);
    }
    const int64_t ho = (h - 1) / stride + 1, wo = (w - 1) / stride + 1;
    const int64_t dims[4] = {n, ho, wo, m * c_out};
    OrtValue* y = nullptr;
    api.check(api.get<OrtStatus* (*)(OrtKernelContext*, size_t, const int64_t*, size_t, OrtValue**)>(
        kKernelContextGetOutput)(ctx, 0, dims, 4, &y));
    const float* sixth = shortcut == Shortcut::kNone ? nullptr : api.data(api.input(ctx, 5));
    if (shortcut == Shortcut::kProjected) {
      const std::vector<int64_t> ps = api.shape(api.input(ctx, 5));
      if (ps.size() != 2 || ps[0] != c || ps[1] != m * c_out)
        throw std::runtime_error("tissuenet::FusedStackedProjected: pw must be (channels in, channels out)");
    }
    const float* res = shortcut == Shortcut::kResidual ? sixth : nullptr;
    const float* proj = shortcut == Shortcut::kProjected ? sixth : nullptr;
    const int threads = g_threads > 0 ? g_threads : omp_get_max_threads();
    if (!stacked::forward(api.data(x), n, h, w, c, packed.w1.data(), packed.b1.data(), packed.w2.data(),
                          packed.b2.data(), c_h, c_out, stride, res, relu != 0 || sixth != nullptr, api.data(y),
                          threads, proj))
      throw std::runtime_error("tissuenet::FusedStacked: no kernel for this unit shape or stride");
  }
};

template <Shortcut Kind>
OrtCustomOp make_op() {
  OrtCustomOp op{};
  op.version = kApiVersion;
  op.CreateKernel = [](const OrtCustomOp*, const Fn* table, const OrtKernelInfo* info) -> void* {
    auto* k = new Kernel{};
    k->api = Api{table};
    k->stride = k->api.attribute(info, "stride", 1);
    k->relu = k->api.attribute(info, "relu", 0);
    k->shortcut = Kind;
    return k;
  };
  op.GetName = [](const OrtCustomOp*) {
    return Kind == Shortcut::kNone ? "FusedStacked"
                                   : (Kind == Shortcut::kResidual ? "FusedStackedResidual" : "FusedStackedProjected");
  };
  op.GetExecutionProviderType = [](const OrtCustomOp*) -> const char* { return nullptr; };  // CPU
  op.GetInputType = [](const OrtCustomOp*, size_t) { return kFloat; };
  op.GetInputTypeCount = [](const OrtCustomOp*) -> size_t { return Kind == Shortcut::kNone ? 5 : 6; };
  op.GetOutputType = [](const OrtCustomOp*, size_t) { return kFloat; };
  op.GetOutputTypeCount = [](const OrtCustomOp*) -> size_t { return 1; };
  op.KernelCompute = [](void* k, OrtKernelContext* ctx) { static_cast<Kernel*>(k)->compute(ctx); };
  op.KernelDestroy = [](void* k) { delete static_cast<Kernel*>(k); };
  op.GetInputCharacteristic = [](const OrtCustomOp*, size_t) { return 0; };   // required
  op.GetOutputCharacteristic = [](const OrtCustomOp*, size_t) { return 0; };  // required
  op.GetInputMemoryType = [](const OrtCustomOp*, size_t) { return 0; };       // default (CPU) memory
  return op;
}

OrtCustomOp g_plain = make_op<Shortcut::kNone>();
OrtCustomOp g_residual = make_op<Shortcut::kResidual>();
OrtCustomOp g_projected = make_op<Shortcut::kProjected>();

}  // namespace

struct OrtApiBase {
  const Fn* (*GetApi)(uint32_t version);
  const char* (*GetVersionString)();
};

extern "C" {

__attribute__((visibility("default"))) void tissuenet_set_threads(int threads) { g_threads = threads; }

__attribute__((visibility("default"))) const char* tissuenet_isa() { return stacked::isa(); }

__attribute__((visibility("default"))) OrtStatus* RegisterCustomOps(OrtSessionOptions* options,
                                                                    const OrtApiBase* base) {
  const Fn* table = base->GetApi(kApiVersion);
  if (table == nullptr) return nullptr;  // a runtime older than API 13: the session then fails on the unknown op
  Api api{table};
  auto fail = [&](const char* msg) {
    return api.get<OrtStatus* (*)(int, const char*)>(kCreateStatus)(1 /* ORT_FAIL */, msg);
  };
  OrtCustomOpDomain* domain = nullptr;
  if (api.get<OrtStatus* (*)(const char*, OrtCustomOpDomain**)>(kCreateCustomOpDomain)("tissuenet", &domain))
    return fail("tissuenet: could not create the custom op domain");
  auto add = api.get<OrtStatus* (*)(OrtCustomOpDomain*, const OrtCustomOp*)>(kCustomOpDomainAdd);
  if (add(domain, &g_plain) || add(domain, &g_residual) || add(domain, &g_projected))
    return fail("tissuenet: could not add the custom ops");
  // the domain lives as long as the process: sessions may outlive any handle we could release it with
  return api.get<OrtStatus* (*)(OrtSessionOptions*, OrtCustomOpDomain*)>(kAddCustomOpDomain)(options, domain);
}

}  // extern "C"
