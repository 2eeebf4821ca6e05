// Plan cache and execution (see plan.h). A plan is built and run with the OpenMP team size its
// key names (oneDNN splits a primitive's work across the threads it sees when the primitive is
// created). Executions are serialised by one mutex, so that two operations XLA schedules at once
// do not each start a full OpenMP team on the same cores.
#include "plan.h"

#include <omp.h>

#include <chrono>
#include <cstring>
#include <map>
#include <mutex>
#include <stdexcept>
#include <unordered_map>

namespace cenet {
namespace {

constexpr size_t kAlign = 64;
size_t Aligned(size_t bytes) { return (bytes + kAlign - 1) / kAlign * kAlign; }

std::mutex g_cache_mu;  // guards g_cache
std::mutex g_exec_mu;   // one oneDNN execution at a time
std::map<Key, std::unique_ptr<Plan>> g_cache;
// Timing (guarded by g_exec_mu): seconds per label and phase (reorder in, compute, reorder out).
bool g_profile = false;
double g_seconds[kLabels][3];
int64_t g_calls[kLabels];

// Sets the calling thread's OpenMP team size for its lifetime, then restores it: oneDNN reads it
// when it creates a primitive and when it runs one.
class OmpThreads {
 public:
  explicit OmpThreads(int n) : saved_(omp_get_max_threads()) { omp_set_num_threads(n); }
  ~OmpThreads() { omp_set_num_threads(saved_); }
  OmpThreads(const OmpThreads&) = delete;
  OmpThreads& operator=(const OmpThreads&) = delete;

 private:
  int saved_;
};

double Now() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

// A vector of ones of md's type and size, kept across calls (grows; called under g_exec_mu).
void* Ones(const dnnl::memory::desc& md) {
  static std::vector<float> f32;
  static std::vector<uint16_t> bf16;
  if (md.get_data_type() == dnnl::memory::data_type::f32) {
    const size_t n = md.get_size() / 4;
    if (f32.size() < n) f32.assign(n, 1.0f);
    return f32.data();
  }
  const size_t n = md.get_size() / 2;
  if (bf16.size() < n) bf16.assign(n, 0x3F80);  // 1.0 in bfloat16
  return bf16.data();
}

}  // namespace

dnnl::engine& Engine() {
  static dnnl::engine engine(dnnl::engine::kind::cpu, 0);
  return engine;
}

dnnl::memory::data_type ToDnnl(int64_t dtype) {
  return dtype == schema::dtype::bfloat16 ? dnnl::memory::data_type::bf16
                                          : dnnl::memory::data_type::f32;
}

dnnl::memory::desc Any(const dnnl::memory::desc& md) {
  return dnnl::memory::desc(md.get_dims(), md.get_data_type(), dnnl::memory::format_tag::any);
}

Slot MakeSlot(int arg, bool output, const dnnl::memory::desc& user) {
  Slot s;
  s.arg = arg, s.output = output, s.user_md = user;
  return s;
}

void Finish(Plan& plan, const dnnl::primitive_desc_base& pd) {
  auto& eng = Engine();
  plan.impl = pd.impl_info_str();
  size_t offset = 0;
  for (Slot& s : plan.slots) {
    if (s.arg == kNoArg) continue;  // written by `sum`, from the user buffers
    s.prim_md = pd.query_md(dnnl::query::exec_arg_md, s.arg);
    s.reorder_needed = s.prim_md != s.user_md;
    if (!s.reorder_needed) continue;
    s.offset = offset;
    offset += Aligned(s.prim_md.get_size());
    s.reorder = s.output
        ? dnnl::reorder(dnnl::reorder::primitive_desc(eng, s.prim_md, eng, s.user_md))
        : dnnl::reorder(dnnl::reorder::primitive_desc(eng, s.user_md, eng, s.prim_md));
  }
  plan.scratch_md = pd.scratchpad_desc();
  plan.scratch_offset = offset;
  plan.scratch_bytes = std::max(offset + Aligned(plan.scratch_md.get_size()), kAlign);
}

Plan& GetPlan(const Key& key) {
  std::lock_guard<std::mutex> lock(g_cache_mu);
  auto it = g_cache.find(key);
  if (it != g_cache.end()) return *it->second;
  if (key.size() <= schema::kOperation) throw std::runtime_error("key without an operation");
  const int64_t threads = key[schema::kThreads];
  if (threads < 1 || threads > 4096)
    throw std::runtime_error("thread count " + std::to_string(threads) + " out of range");
  OmpThreads team(static_cast<int>(threads));  // the primitives and reorders below see it
  std::unique_ptr<Plan> plan;
  switch (key[schema::kOperation]) {
    case schema::operation::conv: plan = MakeConvPlan(key); break;
    case schema::operation::batch_norm: plan = MakeBatchNormPlan(key); break;
    case schema::operation::max_pool: plan = MakeMaxPoolPlan(key); break;
    default:
      throw std::runtime_error("unknown operation " + std::to_string(key[schema::kOperation]));
  }
  plan->threads = static_cast<int>(threads);
  return *g_cache.emplace(key, std::move(plan)).first->second;
}

void Execute(Plan& plan, const std::vector<void*>& buffers, char* scratch) {
  auto& eng = Engine();
  const size_t n = plan.slots.size();
  std::vector<dnnl::memory> user_mem(n), prim_mem(n);
  std::unordered_map<int, dnnl::memory> args;
  for (size_t i = 0; i < n; ++i) {
    const Slot& s = plan.slots[i];
    user_mem[i] = dnnl::memory(s.user_md, eng, buffers[i]);
    prim_mem[i] = s.reorder_needed ? dnnl::memory(s.prim_md, eng, scratch + s.offset)
                                   : user_mem[i];
    if (s.arg != kNoArg) args.emplace(s.arg, prim_mem[i]);
  }
  if (plan.scratch_md.get_size() > 0)
    args.emplace(DNNL_ARG_SCRATCHPAD,
                 dnnl::memory(plan.scratch_md, eng, scratch + plan.scratch_offset));
  std::lock_guard<std::mutex> lock(g_exec_mu);
  OmpThreads team(plan.threads);  // as when the primitive was created
  dnnl::stream stream(eng);
  const double t0 = g_profile ? Now() : 0.0;
  for (size_t i = 0; i < n; ++i)
    if (plan.slots[i].reorder_needed && !plan.slots[i].output)
      plan.slots[i].reorder.execute(stream, user_mem[i], prim_mem[i]);
  stream.wait();
  const double t1 = g_profile ? Now() : 0.0;
  plan.prim.execute(stream, args);
  if (plan.sum_src >= 0) {
    plan.sum.execute(stream,
                     {{DNNL_ARG_SRC, dnnl::memory(plan.sum_ones_md, eng, Ones(plan.sum_ones_md))},
                      {DNNL_ARG_WEIGHTS,
                       dnnl::memory(plan.sum_src_md, eng, buffers[plan.sum_src])},
                      {DNNL_ARG_DST, dnnl::memory(plan.sum_dst_md, eng, buffers[plan.sum_dst])}});
  }
  stream.wait();
  const double t2 = g_profile ? Now() : 0.0;
  for (size_t i = 0; i < n; ++i)
    if (plan.slots[i].reorder_needed && plan.slots[i].output)
      plan.slots[i].reorder.execute(stream, prim_mem[i], user_mem[i]);
  stream.wait();
  if (g_profile) {
    double* t = g_seconds[plan.label];
    t[0] += t1 - t0, t[plan.compute_phase] += t2 - t1, t[2] += Now() - t2;
    g_calls[plan.label] += 1;
  }
}

void SetProfiling(bool enable) {
  std::lock_guard<std::mutex> lock(g_exec_mu);
  g_profile = enable;
  if (enable) std::memset(g_seconds, 0, sizeof g_seconds), std::memset(g_calls, 0, sizeof g_calls);
}

void ReadProfile(double* seconds, int64_t* calls) {
  std::lock_guard<std::mutex> lock(g_exec_mu);
  std::memcpy(seconds, g_seconds, sizeof g_seconds);
  std::memcpy(calls, g_calls, sizeof g_calls);
}

}  // namespace cenet
