// What oneDNN (the wheel the extension links) offers for issue 27's training levers, asked of
// the library directly: which implementation, if any, it gives for
//   - training BatchNorm + residual add + ReLU (fuse_norm_add_relu, or add + ReLU post-ops);
//   - an input-gradient convolution reading the kernel in the forward's layout (to share one
//     reorder per step), and a weight gradient written straight into HWIO (no reorder out),
//     each timed against the layouts oneDNN picks, median of 5 runs (ms).
// Build and run from the checkout, in its venv, after `pip install onednn-devel-cpu-gomp==2023.2.0`
// (the headers):
//   g++ -O2 -std=c++17 csrc/tools/onednn_probe.cc -I.venv/include -L.venv/lib -ldnnl
//       -Wl,-rpath,$PWD/.venv/lib -o /tmp/onednn_probe && OMP_NUM_THREADS=2 /tmp/onednn_probe
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <string>
#include <unordered_map>
#include <vector>

#include "oneapi/dnnl/dnnl.hpp"

using namespace dnnl;
using tag = memory::format_tag;
using dt = memory::data_type;

namespace {

engine eng(engine::kind::cpu, 0);
stream st(eng);

double Now() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

// Median ms of 5 runs after one untimed run; -1 for a reference kernel (too slow to time).
double Time(const primitive& p, const std::unordered_map<int, memory>& args,
            const std::string& impl) {
  if (impl.rfind("ref", 0) == 0) return -1;
  p.execute(st, args);
  st.wait();
  std::vector<double> t;
  for (int i = 0; i < 5; ++i) {
    const double t0 = Now();
    p.execute(st, args);
    st.wait();
    t.push_back((Now() - t0) * 1e3);
  }
  std::sort(t.begin(), t.end());
  return t[2];
}

const char* Name(dt d) { return d == dt::f32 ? "f32" : "bf16"; }

void BatchNormAddRelu(dt d) {
  const auto base = normalization_flags::use_scale | normalization_flags::use_shift;
  for (auto t : {tag::nhwc, tag::nchw, tag::nChw16c, tag::any}) {
    const memory::desc data({4, 64, 32, 32}, d, t);
    for (auto flags : {base | normalization_flags::fuse_norm_add_relu,
                       normalization_flags::fuse_norm_add_relu}) {
      for (auto kind : {prop_kind::forward_training, prop_kind::forward_inference}) {
        std::string impl = "none";
        try {
          impl = batch_normalization_forward::primitive_desc(eng, kind, data, data, 1e-5f, flags)
                     .impl_info_str();
        } catch (const error&) {
        }
        std::printf("bn %s format %d flags 0x%x %s: fuse_norm_add_relu %s\n", Name(d),
                    static_cast<int>(t), static_cast<unsigned>(flags),
                    kind == prop_kind::forward_training ? "training" : "inference", impl.c_str());
      }
    }
    std::string impl = "none";
    try {
      primitive_attr attr;
      post_ops po;
      po.append_binary(algorithm::binary_add, memory::desc({4, 64, 32, 32}, d, tag::nhwc));
      po.append_eltwise(algorithm::eltwise_relu, 0.f, 0.f);
      attr.set_post_ops(po);
      impl = batch_normalization_forward::primitive_desc(eng, prop_kind::forward_training, data,
                                                         data, 1e-5f, base, attr)
                 .impl_info_str();
    } catch (const error&) {
    }
    std::printf("bn %s format %d training + post-ops add, relu: %s\n", Name(d),
                static_cast<int>(t), impl.c_str());
  }
}

// NHWC activations for float32, oneDNN's choice for bf16 (as the extension builds them).
void Conv(dt d, int n, int ic, int oc, int h, int k, int s) {
  const int p = k / 2, oh = (h + 2 * p - k) / s + 1;
  const tag act = d == dt::f32 ? tag::nhwc : tag::any;
  const memory::desc src({n, ic, h, h}, d, act), dst({n, oc, oh, oh}, d, act);
  const memory::desc any_kernel({oc, ic, k, k}, d, tag::any);
  const memory::desc hwio({oc, ic, k, k}, dt::f32, tag::cdba);
  const memory::dims S{s, s}, D{0, 0}, P{p, p};
  convolution_forward::primitive_desc fwd(eng, prop_kind::forward_training,
                                          algorithm::convolution_direct, src, any_kernel,
                                          memory::desc(), dst, S, D, P, P);
  convolution_backward_data::primitive_desc bwd_d(eng, algorithm::convolution_direct,
                                                  fwd.src_desc(), any_kernel, fwd.dst_desc(), S,
                                                  D, P, P, fwd);
  std::printf("conv %s n%d %d->%d %dpx k%d s%d\n", Name(d), n, ic, oc, h, k, s);
  std::printf("  forward %s, input gradient %s (ONEDNN_VERBOSE=1 shows their kernel layouts)\n",
              fwd.impl_info_str(), bwd_d.impl_info_str());
  memory x(fwd.src_desc(), eng), y(fwd.dst_desc(), eng), w_user(hwio, eng);
  memory w_fwd(fwd.weights_desc(), eng), w_bwd(bwd_d.weights_desc(), eng);
  const double t_bwd = Time(convolution_backward_data(bwd_d),
                            {{DNNL_ARG_DIFF_DST, y}, {DNNL_ARG_WEIGHTS, w_bwd},
                             {DNNL_ARG_DIFF_SRC, x}}, bwd_d.impl_info_str());
  const double t_reorder = Time(reorder(w_user, w_bwd), {{DNNL_ARG_FROM, w_user},
                                                         {DNNL_ARG_TO, w_bwd}}, "");
  std::printf("  input gradient %.2f ms + its kernel reorder %.2f ms\n", t_bwd, t_reorder);
  try {
    convolution_backward_data::primitive_desc shared(eng, algorithm::convolution_direct,
                                                     fwd.src_desc(), fwd.weights_desc(),
                                                     fwd.dst_desc(), S, D, P, P, fwd);
    std::printf("  input gradient on the forward's kernel layout: %s\n", shared.impl_info_str());
  } catch (const error&) {
    std::printf("  input gradient on the forward's kernel layout: none\n");
  }
  const memory::desc any_grad({oc, ic, k, k}, dt::f32, tag::any);
  convolution_backward_weights::primitive_desc bwd_w(eng, algorithm::convolution_direct,
                                                     fwd.src_desc(), any_grad, memory::desc(),
                                                     fwd.dst_desc(), S, D, P, P, fwd);
  memory g(bwd_w.diff_weights_desc(), eng);
  const double t_w = Time(convolution_backward_weights(bwd_w),
                          {{DNNL_ARG_SRC, x}, {DNNL_ARG_DIFF_DST, y}, {DNNL_ARG_DIFF_WEIGHTS, g}},
                          bwd_w.impl_info_str());
  const double t_out = Time(reorder(g, w_user), {{DNNL_ARG_FROM, g}, {DNNL_ARG_TO, w_user}}, "");
  std::printf("  weight gradient %s %.2f ms + reorder to HWIO %.2f ms\n", bwd_w.impl_info_str(),
              t_w, t_out);
  try {
    convolution_backward_weights::primitive_desc direct(eng, algorithm::convolution_direct,
                                                        fwd.src_desc(), hwio, memory::desc(),
                                                        fwd.dst_desc(), S, D, P, P, fwd);
    const double t = Time(convolution_backward_weights(direct),
                          {{DNNL_ARG_SRC, x}, {DNNL_ARG_DIFF_DST, y},
                           {DNNL_ARG_DIFF_WEIGHTS, w_user}}, direct.impl_info_str());
    std::printf("  weight gradient written into HWIO: %s %.2f ms\n", direct.impl_info_str(), t);
  } catch (const error&) {
    std::printf("  weight gradient written into HWIO: none\n");
  }
}

}  // namespace

int main() {
  std::setvbuf(stdout, nullptr, _IONBF, 0);
  for (auto d : {dt::f32, dt::bf16}) BatchNormAddRelu(d);
  for (auto d : {dt::f32, dt::bf16}) {
    Conv(d, 4, 64, 64, 64, 3, 1);
    Conv(d, 4, 256, 256, 16, 3, 1);
    Conv(d, 4, 512, 512, 8, 3, 1);
    Conv(d, 4, 128, 256, 32, 3, 2);
  }
}
