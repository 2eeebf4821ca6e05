// Max pooling over NHWC activations with -inf padding (PyTorch's MaxPool2d, floor mode).
//
// Key: schema::MaxPoolKey (op, act_dtype, n, c, ih, iw, oh, ow, kh, kw, sh, sw, pad_top,
// pad_bottom, pad_left, pad_right).
// Buffers: forward (src) -> dst, argmax (oneDNN's workspace: where each maximum was);
// backward (diff_dst, argmax) -> diff_src.
#include <stdexcept>

#include "plan.h"

namespace cenet {

std::unique_ptr<Plan> MakeMaxPoolPlan(const Key& key) {
  const auto k = schema::MaxPoolKey::From(key);
  const int64_t op = k.op;
  const dnnl::memory::dims kernel{k.kh, k.kw}, strides{k.sh, k.sw}, dilation{0, 0};
  const dnnl::memory::dims pad_l{k.pad_top, k.pad_left}, pad_r{k.pad_bottom, k.pad_right};
  auto& eng = Engine();
  const auto dt = ToDnnl(k.act_dtype);
  const dnnl::memory::desc src({k.n, k.c, k.ih, k.iw}, dt, dnnl::memory::format_tag::nhwc);
  const dnnl::memory::desc dst({k.n, k.c, k.oh, k.ow}, dt, dnnl::memory::format_tag::nhwc);
  dnnl::primitive_attr attr;
  attr.set_scratchpad_mode(dnnl::scratchpad_mode::user);
  dnnl::pooling_forward::primitive_desc fwd(eng, dnnl::prop_kind::forward_training,
                                            dnnl::algorithm::pooling_max, src, dst, strides,
                                            kernel, dilation, pad_l, pad_r, attr);
  auto plan = std::make_unique<Plan>();
  plan->label = 8 + static_cast<int>(op);
  if (op == schema::pass::forward) {
    plan->prim = dnnl::pooling_forward(fwd);
    plan->slots = {MakeSlot(DNNL_ARG_SRC, false, src), MakeSlot(DNNL_ARG_DST, true, dst),
                   MakeSlot(DNNL_ARG_WORKSPACE, true, fwd.workspace_desc())};
    Finish(*plan, fwd);
    return plan;
  }
  if (op != schema::pass::backward)
    throw std::runtime_error("unknown max pool op " + std::to_string(op));
  dnnl::pooling_backward::primitive_desc bwd(eng, dnnl::algorithm::pooling_max, src, dst,
                                             strides, kernel, dilation, pad_l, pad_r, fwd, attr);
  plan->prim = dnnl::pooling_backward(bwd);
  plan->slots = {MakeSlot(DNNL_ARG_DIFF_DST, false, dst),
                 MakeSlot(DNNL_ARG_WORKSPACE, false, fwd.workspace_desc()),
                 MakeSlot(DNNL_ARG_DIFF_SRC, true, src)};
  Finish(*plan, bwd);
  return plan;
}

}  // namespace cenet
