// OpenVINO extension for the fused stacked-layer kernel (stacked_core.h): the ONNX nodes that stacked_ort.cpp
// runs in ONNX Runtime, tissuenet::FusedStacked(x, w1, b1, w2, b2), tissuenet::FusedStackedResidual(..., res) and
// tissuenet::FusedStackedProjected(..., pw), read by OpenVINO's ONNX frontend into one operation that evaluates on
// the same kernel (same NHWC inputs, same attributes stride and relu; a 4-d sixth input is the residual, a 2-d one
// the 1x1 shortcut's weight). tissuenet::FusedStackedChain(x, w1, b1, w2, b2, w1', ...) runs consecutive
// identity-shortcut blocks as one node.
//
// The weights (every input but x and the residual) must be the file's initializers: they are packed for this CPU
// when OpenVINO reads the file, and the operation's inputs are then its data alone. OpenVINO wraps each input of a
// custom operation in a new tensor on every request: about 0.4 us an input here (a request of chains of 1 to 16
// tiny blocks: 28.5 us with 5 inputs, 46.7 with 33, 69.7 with 65), and a TissueNet ResNet-20's five fused nodes had
// 43 inputs, 38 of them weights.
//
// Loading: openvino.Core().add_extension(path to this library), before reading the ONNX file.
// Threads: OpenVINO's (its TBB arena), all of them unless tissuenet_set_threads(n) was called.
// Built against the headers and libraries that OpenVINO's Python wheel ships (kernels/cpu.py).

#include <openvino/core/extension.hpp>
#include <openvino/core/op_extension.hpp>
#include <openvino/frontend/onnx/extension/conversion.hpp>
#include <openvino/op/constant.hpp>
#include <openvino/op/op.hpp>

#include <memory>
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

int threads() { return g_threads > 0 ? g_threads : parallel_get_max_threads(); }

// A node's weights, packed when the file is read: one Packed per block (all of units 2 -> c_h -> c_out), and a
// block's 1x1 shortcut (2 units x units c_out).
struct Weights {
  std::vector<stacked::Packed> blocks;
  std::vector<float> projection;
  int64_t units = 0, c_h = 0, c_out = 0;
};
using WeightsPtr = std::shared_ptr<const Weights>;

// Blocks of w1 (m c_h, 2, 3, 3), b1, w2 (m c_out, c_h, 3, 3), b2 from the node's inputs `first`, `first` + 4, ...
WeightsPtr pack_constants(const ov::frontend::NodeContext& node, size_t first, size_t blocks) {
  auto constant = [&](size_t i) {
    auto c = ov::as_type_ptr<ov::op::v0::Constant>(node.get_input((int)i).get_node_shared_ptr());
    if (c == nullptr || c->get_element_type() != ov::element::f32)
      OPENVINO_THROW("tissuenet: input ", i, " of a fused node must be a float32 initializer (its weights)");
    return c;
  };
  auto weights = std::make_shared<Weights>();
  weights->blocks.resize(blocks);
  for (size_t b = 0; b < blocks; ++b) {
    const size_t at = first + 4 * b;
    const auto w1 = constant(at), b1 = constant(at + 1), w2 = constant(at + 2), b2 = constant(at + 3);
    const ov::Shape s1 = w1->get_shape(), s2 = w2->get_shape();
    const int64_t c_h = s2.size() == 4 ? (int64_t)s2[1] : 0, m = c_h > 0 ? (int64_t)s1[0] / c_h : 0;
    const bool same = b == 0 || (m == weights->units && c_h == weights->c_h && (int64_t)s2[0] == m * weights->c_out);
    if (m == 0 || s1.size() != 4 || (int64_t)s1[0] != m * c_h || s2[0] % m != 0 || !same ||
        !stacked::supports(c_h, (int64_t)s2[0] / m))
      OPENVINO_THROW("tissuenet: a fused node's units have no kernel (w1 ", s1, ", w2 ", s2, ")");
    weights->units = m, weights->c_h = c_h, weights->c_out = (int64_t)s2[0] / m;
    stacked::pack(weights->blocks[b], w1->get_data_ptr<float>(), b1->get_data_ptr<float>(),
                  w2->get_data_ptr<float>(), b2->get_data_ptr<float>(), m, c_h, weights->c_out);
  }
  return weights;
}

class FusedStacked : public ov::op::Op {
 public:
  OPENVINO_OP("FusedStacked", "tissuenet");

  FusedStacked() = default;
  FusedStacked(const ov::OutputVector& args, int64_t stride, int64_t relu, WeightsPtr weights)
      : Op(args), stride_(stride), relu_(relu), weights_(std::move(weights)) {
    constructor_validate_and_infer_types();
  }

  void validate_and_infer_types() override {
    const auto x = get_input_partial_shape(0);
    NODE_VALIDATION_CHECK(this, get_input_size() == 1 || get_input_size() == 2, "takes x and a residual");
    NODE_VALIDATION_CHECK(this, weights_ != nullptr, "its weights are packed when the file is read");
    NODE_VALIDATION_CHECK(this, x.rank().is_static() && x.rank().get_length() == 4, "x must be NHWC");
    NODE_VALIDATION_CHECK(this, stride_ == 1 || stride_ == 2, "stride must be 1 or 2");
    auto spatial = [&](const ov::Dimension& d) {
      return d.is_static() ? ov::Dimension((d.get_length() - 1) / stride_ + 1) : ov::Dimension::dynamic();
    };
    const ov::Dimension channels = weights_->units * weights_->c_out;
    set_output_type(0, get_input_element_type(0), ov::PartialShape{x[0], spatial(x[1]), spatial(x[2]), channels});
  }

  std::shared_ptr<ov::Node> clone_with_new_inputs(const ov::OutputVector& args) const override {
    return std::make_shared<FusedStacked>(args, stride_, relu_, weights_);
  }

  bool visit_attributes(ov::AttributeVisitor& visitor) override {
    visitor.on_attribute("stride", stride_);
    visitor.on_attribute("relu", relu_);
    return true;
  }

  bool has_evaluate() const override { return true; }

  bool evaluate(ov::TensorVector& outputs, const ov::TensorVector& inputs) const override {
    const ov::Shape xs = inputs[0].get_shape();
    const int64_t n = xs[0], h = xs[1], w = xs[2], c = xs[3], m = weights_->units, c_out = weights_->c_out;
    const stacked::Packed& p = weights_->blocks[0];
    if (c != 2 * m) return false;
    const int64_t ho = (h - 1) / stride_ + 1, wo = (w - 1) / stride_ + 1;
    outputs[0].set_shape(ov::Shape{(size_t)n, (size_t)ho, (size_t)wo, (size_t)(m * c_out)});
    const bool projected = !weights_->projection.empty(), shortcut = projected || inputs.size() == 2;
    if (projected && (int64_t)weights_->projection.size() != c * m * c_out) return false;
    const float* residual = inputs.size() == 2 ? inputs[1].data<const float>() : nullptr;
    return stacked::forward(inputs[0].data<const float>(), n, h, w, c, p.w1.data(), p.b1.data(), p.w2.data(),
                            p.b2.data(), weights_->c_h, c_out, stride_, residual, relu_ != 0 || shortcut,
                            outputs[0].data<float>(), threads(), projected ? weights_->projection.data() : nullptr);
  }

  // The ONNX nodes: x, 4 weights, then a 4-d residual (data) or a 2-d 1x1 shortcut weight (an initializer).
  static ov::OutputVector convert(const ov::frontend::NodeContext& node) {
    auto weights = std::const_pointer_cast<Weights>(pack_constants(node, 1, 1));
    ov::OutputVector args{node.get_input(0)};
    if (node.get_input_size() == 6) {
      const auto sixth = node.get_input(5);
      auto pw = ov::as_type_ptr<ov::op::v0::Constant>(sixth.get_node_shared_ptr());
      if (sixth.get_partial_shape().rank().get_length() == 2) {
        if (pw == nullptr) OPENVINO_THROW("tissuenet: a fused node's 1x1 shortcut weight must be an initializer");
        weights->projection = pw->cast_vector<float>();
      } else {
        args.push_back(sixth);
      }
    }
    const int64_t stride = node.get_attribute<int64_t>("stride", 1), relu = node.get_attribute<int64_t>("relu", 0);
    return std::make_shared<FusedStacked>(args, stride, relu, std::move(weights))->outputs();
  }

 private:
  int64_t stride_ = 1, relu_ = 0;
  WeightsPtr weights_;
};

// tissuenet::FusedStackedChain(x, w1, b1, w2, b2, w1', b1', ...): consecutive residual blocks of 2-x-2 units at
// stride 1 with identity shortcuts (what FusedStackedResidual computes, block after block) as one node on one
// parallel region (stacked::chain).
class FusedStackedChain : public ov::op::Op {
 public:
  OPENVINO_OP("FusedStackedChain", "tissuenet");

  FusedStackedChain() = default;
  FusedStackedChain(const ov::OutputVector& args, WeightsPtr weights) : Op(args), weights_(std::move(weights)) {
    constructor_validate_and_infer_types();
  }

  void validate_and_infer_types() override {
    const auto x = get_input_partial_shape(0);
    NODE_VALIDATION_CHECK(this, get_input_size() == 1, "takes x");
    NODE_VALIDATION_CHECK(this, weights_ != nullptr, "its weights are packed when the file is read");
    NODE_VALIDATION_CHECK(this, x.rank().is_static() && x.rank().get_length() == 4, "x must be NHWC");
    set_output_type(0, get_input_element_type(0), x);
  }

  std::shared_ptr<ov::Node> clone_with_new_inputs(const ov::OutputVector& args) const override {
    return std::make_shared<FusedStackedChain>(args, weights_);
  }

  bool visit_attributes(ov::AttributeVisitor&) override { return true; }

  bool has_evaluate() const override { return true; }

  bool evaluate(ov::TensorVector& outputs, const ov::TensorVector& inputs) const override {
    const ov::Shape xs = inputs[0].get_shape();
    const int64_t n = xs[0], h = xs[1], w = xs[2], c = xs[3], layers = (int64_t)weights_->blocks.size();
    if (c != 2 * weights_->units || weights_->c_out != 2) return false;  // every block: the same units, 2 -> c_h -> 2
    std::vector<const float*> packed;
    for (const stacked::Packed& p : weights_->blocks)
      packed.insert(packed.end(), {p.w1.data(), p.b1.data(), p.w2.data(), p.b2.data()});
    outputs[0].set_shape(xs);
    return stacked::chain(inputs[0].data<const float>(), n, h, w, c, packed.data(), (int)layers, weights_->c_h,
                          outputs[0].data<float>(), threads());
  }

  static ov::OutputVector convert(const ov::frontend::NodeContext& node) {
    const size_t blocks = (node.get_input_size() - 1) / 4;
    if (blocks == 0 || node.get_input_size() != 1 + 4 * blocks)
      OPENVINO_THROW("tissuenet: a chain takes x and 4 inputs a block");
    return std::make_shared<FusedStackedChain>(ov::OutputVector{node.get_input(0)}, pack_constants(node, 1, blocks))
        ->outputs();
  }

 private:
  WeightsPtr weights_;
};

}  // namespace

extern "C" __attribute__((visibility("default"))) void tissuenet_set_threads(int threads) { g_threads = threads; }

using OnnxNode = ov::frontend::onnx::ConversionExtension;
OPENVINO_CREATE_EXTENSIONS(std::vector<ov::Extension::Ptr>({
    std::make_shared<ov::OpExtension<FusedStacked>>(),
    std::make_shared<ov::OpExtension<FusedStackedChain>>(),
    std::make_shared<OnnxNode>("FusedStacked", "tissuenet", FusedStacked::convert),
    std::make_shared<OnnxNode>("FusedStackedResidual", "tissuenet", FusedStacked::convert),
    std::make_shared<OnnxNode>("FusedStackedProjected", "tissuenet", FusedStacked::convert),
    std::make_shared<OnnxNode>("FusedStackedChain", "tissuenet", FusedStackedChain::convert),
}));
