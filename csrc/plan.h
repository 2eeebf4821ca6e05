// What every oneDNN operation of the extension shares: a plan (a cached primitive with its
// buffers in call order and the reorders between JAX's layouts and the primitive's), the plan
// cache keyed by the integers Python sends, and one serialised execution path.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "oneapi/dnnl/dnnl.hpp"

namespace cenet {

// key[0]: which operation; the rest: its dtypes, shapes and options (see each Make*Plan).
using Key = std::vector<int64_t>;
enum Kind : int64_t { kConv = 0, kBatchNorm = 1, kMaxPool = 2 };
enum DType : int64_t { kF32 = 0, kBF16 = 1 };
constexpr int kNoArg = -1;  // a slot the main primitive does not take (see Plan::sum)

// One buffer of a call: the FFI buffer as JAX holds it (user) and what the primitive reads or
// writes (prim), reordered through the scratch buffer when they differ.
struct Slot {
  int arg;
  bool output;
  dnnl::memory::desc user_md, prim_md;
  bool reorder_needed = false;
  dnnl::reorder reorder;
  size_t offset = 0;
};

// One cached primitive, its buffers in call order (inputs, then outputs), where its temporaries
// go in the scratch buffer, and its timing label (bench/step_profile.py).
struct Plan {
  dnnl::primitive prim;
  std::string impl;
  std::vector<Slot> slots;
  dnnl::memory::desc scratch_md;
  size_t scratch_offset = 0;
  size_t scratch_bytes = 0;
  int label = 0;
  // An optional sum over the rows of slot `sum_src` (viewed as (rows, C)) into slot `sum_dst`,
  // after the main primitive: a matmul ones(1, rows) x src (see conv.cc).
  dnnl::primitive sum;
  int sum_src = -1, sum_dst = -1;
  dnnl::memory::desc sum_ones_md, sum_src_md, sum_dst_md;
};

constexpr int kLabels = 10;  // conv op * 2 + transposed (0-5), batch norm 6-7, pooling 8-9

dnnl::engine& Engine();
dnnl::memory::data_type ToDnnl(int64_t dtype);
dnnl::memory::desc Any(const dnnl::memory::desc& md);
Slot MakeSlot(int arg, bool output, const dnnl::memory::desc& user);
// Fills each slot's primitive layout and reorder, and the scratch layout, from `pd`.
void Finish(Plan& plan, const dnnl::primitive_desc_base& pd);

std::unique_ptr<Plan> MakeConvPlan(const Key& key);
std::unique_ptr<Plan> MakeBatchNormPlan(const Key& key);
std::unique_ptr<Plan> MakeMaxPoolPlan(const Key& key);

Plan& GetPlan(const Key& key);  // built once per key, thread-safe
// Runs a plan on the call's buffers (slot order) with `scratch` of at least plan.scratch_bytes.
void Execute(Plan& plan, const std::vector<void*>& buffers, char* scratch);

void SetNumThreads(int n);
void SetProfiling(bool enable);
void ReadProfile(double* seconds, int64_t* calls);  // [kLabels][3] and [kLabels]

}  // namespace cenet
