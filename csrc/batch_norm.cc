// Training-mode batch normalisation over NHWC activations, optionally followed by a ReLU that
// oneDNN fuses (its backward then reads a bit mask the forward leaves in `relu_mask`).
//
// Key: schema::BatchNormKey (op, act_dtype, relu, n, c, h, w, epsilon as float bits).
// Buffers: forward (src, scale, shift) -> dst, mean, variance[, relu_mask];
// backward (src, diff_dst, mean, variance, scale[, relu_mask]) -> diff_src, diff_scale,
// diff_shift. Statistics, scale and shift are float32; the variance is the biased one.
#include <cstring>
#include <stdexcept>

#include "plan.h"

namespace cenet {

std::unique_ptr<Plan> MakeBatchNormPlan(const Key& key) {
  const auto k = schema::BatchNormKey::From(key);
  const int64_t op = k.op, relu = k.relu;
  const uint32_t bits = static_cast<uint32_t>(k.epsilon_bits);
  float epsilon;
  std::memcpy(&epsilon, &bits, sizeof epsilon);
  auto& eng = Engine();
  const dnnl::memory::desc data({k.n, k.c, k.h, k.w}, ToDnnl(k.act_dtype),
                                dnnl::memory::format_tag::nhwc);
  const dnnl::memory::desc vec({k.c}, dnnl::memory::data_type::f32, dnnl::memory::format_tag::x);
  auto flags = dnnl::normalization_flags::use_scale | dnnl::normalization_flags::use_shift;
  if (relu) flags = flags | dnnl::normalization_flags::fuse_norm_relu;
  dnnl::primitive_attr attr;
  attr.set_scratchpad_mode(dnnl::scratchpad_mode::user);
  dnnl::batch_normalization_forward::primitive_desc fwd(
      eng, dnnl::prop_kind::forward_training, data, data, epsilon, flags, attr);
  auto plan = std::make_unique<Plan>();
  plan->label = 6 + static_cast<int>(op);
  if (op == schema::pass::forward) {
    plan->prim = dnnl::batch_normalization_forward(fwd);
    plan->slots = {MakeSlot(DNNL_ARG_SRC, false, data), MakeSlot(DNNL_ARG_SCALE, false, vec),
                   MakeSlot(DNNL_ARG_SHIFT, false, vec), MakeSlot(DNNL_ARG_DST, true, data),
                   MakeSlot(DNNL_ARG_MEAN, true, vec), MakeSlot(DNNL_ARG_VARIANCE, true, vec)};
    if (relu) plan->slots.push_back(MakeSlot(DNNL_ARG_WORKSPACE, true, fwd.workspace_desc()));
    Finish(*plan, fwd);
    return plan;
  }
  if (op != schema::pass::backward)
    throw std::runtime_error("unknown batch norm op " + std::to_string(op));
  dnnl::batch_normalization_backward::primitive_desc bwd(
      eng, dnnl::prop_kind::backward, data, data, data, epsilon, flags, fwd, attr);
  plan->prim = dnnl::batch_normalization_backward(bwd);
  plan->slots = {MakeSlot(DNNL_ARG_SRC, false, data), MakeSlot(DNNL_ARG_DIFF_DST, false, data),
                 MakeSlot(DNNL_ARG_MEAN, false, vec), MakeSlot(DNNL_ARG_VARIANCE, false, vec),
                 MakeSlot(DNNL_ARG_SCALE, false, vec)};
  if (relu) plan->slots.push_back(MakeSlot(DNNL_ARG_WORKSPACE, false, fwd.workspace_desc()));
  plan->slots.push_back(MakeSlot(DNNL_ARG_DIFF_SRC, true, data));
  plan->slots.push_back(MakeSlot(DNNL_ARG_DIFF_SCALE, true, vec));
  plan->slots.push_back(MakeSlot(DNNL_ARG_DIFF_SHIFT, true, vec));
  Finish(*plan, bwd);
  return plan;
}

}  // namespace cenet
