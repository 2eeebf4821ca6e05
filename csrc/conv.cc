// (Transposed) convolutions with an optional bias: forward, data gradient, weight gradient, and
// the forward split in two for inference (pack the kernel, then convolve with the packed one).
//
// Key: schema::ConvKey (op, transposed, act_dtype, weight_dtype, layout, bias, then the sizes of
// input, output and kernel, strides, padding and dilation).
// Buffers: forward (src, kernel[, bias]) -> dst; data gradient (diff_dst, kernel) -> diff_src;
// weight gradient (src, diff_dst) -> diff_kernel[, diff_bias]; pack_kernel (kernel) -> packed
// (the kernel in the forward primitive's own layout and type, opaque bytes); forward_packed
// (src, packed[, bias]) -> dst. Activations are NHWC; kernels as JAX holds them, HWIO (kh, kw,
// Cin, Cout) or, transposed, (kh, kw, Cout, Cin). Kernels are reordered into oneDNN's blocked
// layouts in the call (converted to bfloat16 on the way when the activations are: `weight_dtype`
// is the type of the kernel and bias buffers, or of the gradients the weight gradient writes),
// except by forward_packed, whose kernel pack_kernel reordered once (inference: outside a loop
// over TTA views, where XLA hoists it). The data gradient cannot share the forward's packed
// kernel: oneDNN 3.2 runs it only in another layout (the transposed kernel's; given the
// forward's layout it falls back to its reference kernel). Activations stay NHWC (layout 1) or
// are reordered to the layout oneDNN prefers (layout 0): blocked for float32 on AVX-512, NHWC for
// bf16 on AMX.
#include <stdexcept>

#include "plan.h"

namespace cenet {
namespace {

using Geometry = schema::ConvKey;

dnnl::memory::desc Activation(const Geometry& g, bool is_src) {
  dnnl::memory::dims dims = is_src ? dnnl::memory::dims{g.n, g.ic, g.ih, g.iw}
                                   : dnnl::memory::dims{g.n, g.oc, g.oh, g.ow};
  return dnnl::memory::desc(dims, ToDnnl(g.act_dtype), dnnl::memory::format_tag::nhwc);
}

// oneDNN's logical kernel order is (O, I, H, W) with O the output channels in both cases.
dnnl::memory::desc Kernel(const Geometry& g, int64_t dtype) {
  dnnl::memory::dims dims{g.oc, g.ic, g.kh, g.kw};
  dnnl::memory::dims strides = g.transposed
      ? dnnl::memory::dims{g.ic, 1, g.kw * g.oc * g.ic, g.oc * g.ic}
      : dnnl::memory::dims{1, g.oc, g.kw * g.ic * g.oc, g.ic * g.oc};
  return dnnl::memory::desc(dims, ToDnnl(dtype), strides);
}

template <typename Fwd, typename BwdData, typename BwdWeights>
std::unique_ptr<Plan> Build(const Geometry& g, dnnl::algorithm alg) {
  auto& eng = Engine();
  const dnnl::memory::dims strides{g.sh, g.sw}, dilates{g.dh - 1, g.dw - 1};
  const dnnl::memory::dims pad_l{g.pad_top, g.pad_left}, pad_r{g.pad_bottom, g.pad_right};
  const auto src = Activation(g, true), dst = Activation(g, false);
  auto act = [&](const dnnl::memory::desc& md) {
    return g.layout == schema::layout::nhwc ? md : Any(md);
  };
  const auto user_kernel = Kernel(g, g.weight_dtype);
  const auto compute_kernel = Any(Kernel(g, g.act_dtype));
  const dnnl::memory::desc bias({g.oc}, ToDnnl(g.weight_dtype), dnnl::memory::format_tag::x);
  const dnnl::memory::desc no_bias;
  dnnl::primitive_attr attr;
  attr.set_scratchpad_mode(dnnl::scratchpad_mode::user);

  typename Fwd::primitive_desc fwd(eng, dnnl::prop_kind::forward_training, alg, act(src),
                                   compute_kernel, g.bias ? bias : no_bias, act(dst), strides,
                                   dilates, pad_l, pad_r, attr);
  auto plan = std::make_unique<Plan>();
  const bool forward = g.op == schema::conv_op::pack_kernel ||
                       g.op == schema::conv_op::forward_packed;  // timed as the forward
  plan->label = static_cast<int>((forward ? schema::conv_op::forward : g.op) * 2 + g.transposed);
  switch (g.op) {
    case schema::conv_op::pack_kernel: {
      plan->compute_phase = 0;  // a reorder (bench/step_profile.py)
      dnnl::reorder::primitive_desc pd(eng, user_kernel, eng, fwd.weights_desc(), attr);
      plan->prim = dnnl::reorder(pd);
      plan->slots = {MakeSlot(DNNL_ARG_FROM, false, user_kernel),
                     MakeSlot(DNNL_ARG_TO, true, fwd.weights_desc())};
      Finish(*plan, pd);
      return plan;
    }
    case schema::conv_op::forward:
    case schema::conv_op::forward_packed:
      plan->prim = Fwd(fwd);
      plan->slots = {MakeSlot(DNNL_ARG_SRC, false, src),
                     MakeSlot(DNNL_ARG_WEIGHTS, false,
                              g.op == schema::conv_op::forward ? user_kernel
                                                               : fwd.weights_desc())};
      if (g.bias) plan->slots.push_back(MakeSlot(DNNL_ARG_BIAS, false, bias));
      plan->slots.push_back(MakeSlot(DNNL_ARG_DST, true, dst));
      Finish(*plan, fwd);
      return plan;
    case schema::conv_op::backward_data: {
      typename BwdData::primitive_desc pd(eng, alg, act(src), compute_kernel, act(dst), strides,
                                          dilates, pad_l, pad_r, fwd, attr);
      plan->prim = BwdData(pd);
      plan->slots = {MakeSlot(DNNL_ARG_DIFF_DST, false, dst),
                     MakeSlot(DNNL_ARG_WEIGHTS, false, user_kernel),
                     MakeSlot(DNNL_ARG_DIFF_SRC, true, src)};
      Finish(*plan, pd);
      return plan;
    }
    case schema::conv_op::backward_weights: {
      // The bias gradient of a transposed convolution is a separate sum over (N, H, W) of the
      // output gradient: oneDNN 3.2's fused one makes the weight gradient 1.3x (float32) to 6x
      // (bfloat16 on AMX) slower, and its reduction primitive has only a reference kernel here.
      const bool fused_bias = g.bias && !g.transposed;
      typename BwdWeights::primitive_desc pd(eng, alg, act(src), Any(user_kernel),
                                             fused_bias ? bias : no_bias, act(dst), strides,
                                             dilates, pad_l, pad_r, fwd, attr);
      plan->prim = BwdWeights(pd);
      plan->slots = {MakeSlot(DNNL_ARG_SRC, false, src), MakeSlot(DNNL_ARG_DIFF_DST, false, dst),
                     MakeSlot(DNNL_ARG_DIFF_WEIGHTS, true, user_kernel)};
      if (fused_bias) plan->slots.push_back(MakeSlot(DNNL_ARG_DIFF_BIAS, true, bias));
      if (g.bias && !fused_bias) {
        plan->slots.push_back(MakeSlot(kNoArg, true, bias));
        const int64_t rows = g.n * g.oh * g.ow;
        plan->sum_src = 1, plan->sum_dst = 3;
        plan->sum_ones_md = dnnl::memory::desc({1, rows}, ToDnnl(g.act_dtype),
                                               dnnl::memory::format_tag::ab);
        plan->sum_src_md = dnnl::memory::desc({rows, g.oc}, ToDnnl(g.act_dtype),
                                              dnnl::memory::format_tag::ab);
        plan->sum_dst_md = dnnl::memory::desc({1, g.oc}, ToDnnl(g.weight_dtype),
                                              dnnl::memory::format_tag::ab);
        plan->sum = dnnl::matmul(dnnl::matmul::primitive_desc(
            eng, plan->sum_ones_md, plan->sum_src_md, plan->sum_dst_md));
      }
      Finish(*plan, pd);
      return plan;
    }
    default:
      throw std::runtime_error("unknown convolution op " + std::to_string(g.op));
  }
}

}  // namespace

std::unique_ptr<Plan> MakeConvPlan(const Key& key) {
  const Geometry g = Geometry::From(key);
  if (g.transposed)
    return Build<dnnl::deconvolution_forward, dnnl::deconvolution_backward_data,
                 dnnl::deconvolution_backward_weights>(g, dnnl::algorithm::deconvolution_direct);
  return Build<dnnl::convolution_forward, dnnl::convolution_backward_data,
               dnnl::convolution_backward_weights>(g, dnnl::algorithm::convolution_direct);
}

}  // namespace cenet
