// Max pooling over NHWC activations with -inf padding (PyTorch's MaxPool2d, floor mode).
//
// Key: {kMaxPool, op, act_dtype, n, c, ih, iw, oh, ow, kh, kw, sh, sw, pad_top, pad_bottom,
//       pad_left, pad_right}.
// Buffers: forward (src) -> dst, argmax (oneDNN's workspace: where each maximum was);
// backward (diff_dst, argmax) -> diff_src.
#include <stdexcept>

#include "plan.h"

namespace cenet {

std::unique_ptr<Plan> MakeMaxPoolPlan(const Key& key) {
  if (key.size() != 17) throw std::runtime_error("max pool key of 17 integers expected");
  const int64_t op = key[1], act_dtype = key[2], n = key[3], c = key[4];
  const dnnl::memory::dims kernel{key[9], key[10]}, strides{key[11], key[12]};
  const dnnl::memory::dims pad_l{key[13], key[15]}, pad_r{key[14], key[16]}, dilation{0, 0};
  auto& eng = Engine();
  const auto dt = ToDnnl(act_dtype);
  const dnnl::memory::desc src({n, c, key[5], key[6]}, dt, dnnl::memory::format_tag::nhwc);
  const dnnl::memory::desc dst({n, c, key[7], key[8]}, dt, dnnl::memory::format_tag::nhwc);
  dnnl::primitive_attr attr;
  attr.set_scratchpad_mode(dnnl::scratchpad_mode::user);
  dnnl::pooling_forward::primitive_desc fwd(eng, dnnl::prop_kind::forward_training,
                                            dnnl::algorithm::pooling_max, src, dst, strides,
                                            kernel, dilation, pad_l, pad_r, attr);
  auto plan = std::make_unique<Plan>();
  plan->label = 8 + static_cast<int>(op);
  if (op == 0) {
    plan->prim = dnnl::pooling_forward(fwd);
    plan->slots = {MakeSlot(DNNL_ARG_SRC, false, src), MakeSlot(DNNL_ARG_DST, true, dst),
                   MakeSlot(DNNL_ARG_WORKSPACE, true, fwd.workspace_desc())};
    Finish(*plan, fwd);
    return plan;
  }
  if (op != 1) throw std::runtime_error("unknown max pool op " + std::to_string(op));
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
