// OpenVINO extension for the fused stacked-layer kernel (stacked_core.h): the ONNX nodes that stacked_ort.cpp
// runs in ONNX Runtime, tissuenet::FusedStacked(x, w1, b1, w2, b2), tissuenet::FusedStackedResidual(..., res) and
// tissuenet::FusedStackedProjected(..., pw), read by OpenVINO's ONNX frontend into one operation that evaluates on
// the same kernel (same NHWC inputs, same unpacked weights packed on first use for this CPU, same attributes stride
// and relu; a 4-d sixth input is the residual, a 2-d one the 1x1 shortcut's weight).
// tissuenet::FusedStackedChain(x, w1, b1, w2, b2, w1', ...) runs consecutive identity-shortcut blocks as one node.
//
// Loading: openvino.Core().add_extension(path to this library), before reading the ONNX file.
// Threads: OpenVINO's (its TBB arena), all of them unless tissuenet_set_threads(n) was called.
// Built against the headers and libraries that OpenVINO's Python wheel ships (kernels/cpu.py).

#include <openvino/core/extension.hpp>
#include <openvino/core/op_extension.hpp>
#include <openvino/frontend/onnx/extension/op.hpp>
#include <openvino/op/op.hpp>

#include <memory>
#include <mutex>
#include <vector>

// The kernel's threads are OpenVINO's own (its TBB arena, INFERENCE_NUM_THREADS): with OpenMP threads beside them,
// OpenVINO's workers, still spinning after its convolution, took the cores from the first fused nodes (at batch
// 1 they ran 5x slower than the third).
#define OV_THREAD OV_THREAD_TBB
#include <openvino/core/parallel.hpp>
#define TB_PARALLEL(threads, work) ov::parallel_nt((threads), (work))

#include "stacked_core.h"

namespace {

int g_threads = 0;  // 0: all of OpenVINO's

class FusedStacked : public ov::op::Op {
 public:
  OPENVINO_OP("FusedStacked", "tissuenet");

  FusedStacked() = default;
  FusedStacked(const ov::OutputVector& args, int64_t stride, int64_t relu) : Op(args), stride_(stride), relu_(relu) {
    constructor_validate_and_infer_types();
  }

  void validate_and_infer_types() override {
    const auto x = get_input_partial_shape(0), w2 = get_input_partial_shape(3);
    NODE_VALIDATION_CHECK(this, get_input_size() == 5 || get_input_size() == 6, "takes 5 or 6 inputs");
    NODE_VALIDATION_CHECK(this, x.rank().is_static() && x.rank().get_length() == 4, "x must be NHWC");
    NODE_VALIDATION_CHECK(this, stride_ == 1 || stride_ == 2, "stride must be 1 or 2");
    auto spatial = [&](const ov::Dimension& d) {
      return d.is_static() ? ov::Dimension((d.get_length() - 1) / stride_ + 1) : ov::Dimension::dynamic();
    };
    ov::Dimension channels = ov::Dimension::dynamic();
    if (w2.rank().is_static() && w2[0].is_static()) channels = w2[0];
    set_output_type(0, get_input_element_type(0), ov::PartialShape{x[0], spatial(x[1]), spatial(x[2]), channels});
  }

  std::shared_ptr<ov::Node> clone_with_new_inputs(const ov::OutputVector& args) const override {
    return std::make_shared<FusedStacked>(args, stride_, relu_);
  }

  bool visit_attributes(ov::AttributeVisitor& visitor) override {
    visitor.on_attribute("stride", stride_);
    visitor.on_attribute("relu", relu_);
    return true;
  }

  bool has_evaluate() const override { return true; }

  bool evaluate(ov::TensorVector& outputs, const ov::TensorVector& inputs) const override {
    const ov::Shape xs = inputs[0].get_shape(), w1s = inputs[1].get_shape(), w2s = inputs[3].get_shape();
    const int64_t n = xs[0], h = xs[1], w = xs[2], c = xs[3], m = c / 2;
    if (c % 2 != 0 || w1s[0] % m != 0 || w2s[0] % m != 0) return false;
    const int64_t c_h = w1s[0] / m, c_out = w2s[0] / m;
    const float* w1 = inputs[1].data<const float>();
    {
      std::lock_guard<std::mutex> hold(packing_);
      if (packed_.source != w1)
        stacked::pack(packed_, w1, inputs[2].data<const float>(), inputs[3].data<const float>(),
                      inputs[4].data<const float>(), m, c_h, c_out);
    }
    const int64_t ho = (h - 1) / stride_ + 1, wo = (w - 1) / stride_ + 1;
    outputs[0].set_shape(ov::Shape{(size_t)n, (size_t)ho, (size_t)wo, (size_t)(m * c_out)});
    const bool shortcut = inputs.size() == 6, projected = shortcut && inputs[5].get_shape().size() == 2;
    if (projected && (inputs[5].get_shape()[0] != (size_t)c || inputs[5].get_shape()[1] != (size_t)(m * c_out)))
      return false;
    const float* sixth = shortcut ? inputs[5].data<const float>() : nullptr;
    const int threads = g_threads > 0 ? g_threads : parallel_get_max_threads();
    return stacked::forward(inputs[0].data<const float>(), n, h, w, c, packed_.w1.data(), packed_.b1.data(),
                            packed_.w2.data(), packed_.b2.data(), c_h, c_out, stride_, projected ? nullptr : sixth,
                            relu_ != 0 || shortcut, outputs[0].data<float>(), threads, projected ? sixth : nullptr);
  }

 private:
  int64_t stride_ = 1, relu_ = 0;
  mutable stacked::Packed packed_;
  mutable std::mutex packing_;
};

// tissuenet::FusedStackedChain(x, w1, b1, w2, b2, w1', b1', ...): consecutive residual blocks of 2-x-2 units at
// stride 1 with identity shortcuts (what FusedStackedResidual computes, block after block) as one node on one
// parallel region (stacked::chain).
class FusedStackedChain : public ov::op::Op {
 public:
  OPENVINO_OP("FusedStackedChain", "tissuenet");

  FusedStackedChain() = default;
  explicit FusedStackedChain(const ov::OutputVector& args) : Op(args) { constructor_validate_and_infer_types(); }

  void validate_and_infer_types() override {
    const auto x = get_input_partial_shape(0);
    NODE_VALIDATION_CHECK(this, get_input_size() >= 5 && (get_input_size() - 1) % 4 == 0, "takes x and 4 per block");
    NODE_VALIDATION_CHECK(this, x.rank().is_static() && x.rank().get_length() == 4, "x must be NHWC");
    set_output_type(0, get_input_element_type(0), x);
  }

  std::shared_ptr<ov::Node> clone_with_new_inputs(const ov::OutputVector& args) const override {
    return std::make_shared<FusedStackedChain>(args);
  }

  bool visit_attributes(ov::AttributeVisitor&) override { return true; }

  bool has_evaluate() const override { return true; }

  bool evaluate(ov::TensorVector& outputs, const ov::TensorVector& inputs) const override {
    const ov::Shape xs = inputs[0].get_shape();
    const int64_t n = xs[0], h = xs[1], w = xs[2], c = xs[3], m = c / 2, layers = (inputs.size() - 1) / 4;
    const int64_t c_h = m > 0 ? inputs[1].get_shape()[0] / m : 0;
    for (int64_t l = 0; l < layers; ++l)  // every block: the same units, 2 -> c_h -> 2
      if (c % 2 != 0 || inputs[1 + 4 * l].get_shape()[0] != (size_t)(m * c_h) ||
          inputs[3 + 4 * l].get_shape()[0] != (size_t)(2 * m))
        return false;
    std::vector<const float*> weights(4 * layers);
    {
      std::lock_guard<std::mutex> hold(packing_);
      packed_.resize(layers);
      for (int64_t l = 0; l < layers; ++l) {
        stacked::Packed& p = packed_[l];
        const ov::Tensor* in = &inputs[1 + 4 * l];
        if (p.source != in[0].data<const float>())
          stacked::pack(p, in[0].data<const float>(), in[1].data<const float>(), in[2].data<const float>(),
                        in[3].data<const float>(), m, c_h, 2);
        weights[4 * l] = p.w1.data(), weights[4 * l + 1] = p.b1.data();
        weights[4 * l + 2] = p.w2.data(), weights[4 * l + 3] = p.b2.data();
      }
    }
    outputs[0].set_shape(xs);
    const int threads = g_threads > 0 ? g_threads : parallel_get_max_threads();
    return stacked::chain(inputs[0].data<const float>(), n, h, w, c, weights.data(), (int)layers, c_h,
                          outputs[0].data<float>(), threads);
  }

 private:
  mutable std::vector<stacked::Packed> packed_;
  mutable std::mutex packing_;
};

}  // namespace

extern "C" __attribute__((visibility("default"))) void tissuenet_set_threads(int threads) { g_threads = threads; }

OPENVINO_CREATE_EXTENSIONS(std::vector<ov::Extension::Ptr>({
    std::make_shared<ov::OpExtension<FusedStacked>>(),
    std::make_shared<ov::frontend::onnx::OpExtension<FusedStacked>>("FusedStacked", "tissuenet"),
    std::make_shared<ov::frontend::onnx::OpExtension<FusedStacked>>("FusedStackedResidual", "tissuenet"),
    std::make_shared<ov::frontend::onnx::OpExtension<FusedStacked>>("FusedStackedProjected", "tissuenet"),
    std::make_shared<ov::OpExtension<FusedStackedChain>>(),
    std::make_shared<ov::frontend::onnx::OpExtension<FusedStackedChain>>("FusedStackedChain", "tissuenet"),
}));
