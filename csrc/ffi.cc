// The extension's entry points: one XLA FFI handler that runs any planned oneDNN operation, and
// plain C functions the Python loader (cenet_jax/ops/onednn_loader.py) calls through ctypes.
#include <algorithm>
#include <cstring>
#include <map>
#include <string>

#include "plan.h"
// XLA's FFI headers draw -Wreturn-type (switches over enums) and -Wsign-compare warnings from
// g++ 12; harmless.
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wreturn-type"
#pragma GCC diagnostic ignored "-Wsign-compare"
#include "xla/ffi/api/ffi.h"
#pragma GCC diagnostic pop

namespace ffi = xla::ffi;

// The symbols the loader looks up (the library is built with -fvisibility=hidden).
#define CENET_EXPORT extern "C" __attribute__((visibility("default")))

namespace {

thread_local std::string g_last_error;

ffi::Error Invalid(const std::string& what) {
  return ffi::Error(ffi::ErrorCode::kInvalidArgument, "cenet_onednn: " + what);
}

// Arguments: the plan's inputs in slot order. Results: its outputs in slot order, then a
// scratch buffer of at least the plan's scratch bytes (XLA allocates it; the size was asked at
// trace time through cenet_onednn_describe).
ffi::Error Run(ffi::RemainingArgs args, ffi::RemainingRets rets, ffi::Span<const int64_t> key) {
  try {
    cenet::Plan& plan = cenet::GetPlan(cenet::Key(key.begin(), key.end()));
    size_t next_in = 0, next_out = 0;
    std::vector<void*> buffers;
    for (const cenet::Slot& s : plan.slots) {
      void* data = nullptr;
      size_t bytes = 0;
      if (s.output) {
        auto b = rets.get<ffi::AnyBuffer>(next_out++);
        if (!b.has_value()) return Invalid("fewer results than the operation writes");
        data = (*b)->untyped_data(), bytes = (*b)->size_bytes();
      } else {
        auto b = args.get<ffi::AnyBuffer>(next_in++);
        if (!b.has_value()) return Invalid("fewer arguments than the operation reads");
        data = b->untyped_data(), bytes = b->size_bytes();
      }
      if (bytes != s.user_md.get_size())
        return Invalid("a buffer of " + std::to_string(bytes) + " bytes where " +
                       std::to_string(s.user_md.get_size()) + " were expected");
      buffers.push_back(data);
    }
    auto scratch = rets.get<ffi::AnyBuffer>(next_out);
    if (next_in != args.size() || next_out + 1 != rets.size() || !scratch.has_value())
      return Invalid("arguments and results do not match the operation (scratch last)");
    if ((*scratch)->size_bytes() < plan.scratch_bytes)
      return Invalid("a scratch buffer of " + std::to_string(plan.scratch_bytes) + " bytes expected");
    cenet::Execute(plan, buffers, static_cast<char*>((*scratch)->untyped_data()));
  } catch (const std::exception& e) {
    return ffi::Error(ffi::ErrorCode::kInternal, std::string("cenet_onednn: ") + e.what());
  }
  return ffi::Error::Success();
}

}  // namespace

CENET_EXPORT XLA_FFI_Error* cenet_onednn(XLA_FFI_CallFrame* call_frame);
XLA_FFI_DEFINE_HANDLER_SYMBOL(cenet_onednn, Run,
                              ffi::Ffi::Bind()
                                  .RemainingArgs()
                                  .RemainingRets()
                                  .Attr<ffi::Span<const int64_t>>("key"));

// What the loader checks before anything else, so this function's signature never changes:
// out = {ABI version, key schema hash} (cenet_jax/ops/onednn_schema.py). Returns the number of
// integers written.
CENET_EXPORT int64_t cenet_onednn_abi(int64_t* out, int64_t max) {
  const int64_t values[] = {cenet::schema::kAbiVersion, cenet::schema::kKeySchema};
  const int64_t n = std::min<int64_t>(max, 2);
  for (int64_t i = 0; i < n; ++i) out[i] = values[i];
  return n;
}

// SHA-256 of the csrc/ sources this library was built from (onednn_schema.source_digest).
CENET_EXPORT const char* cenet_onednn_sources() { return cenet::schema::kSources; }

// Builds (and caches) the plan of `key` and describes it: out = {scratch bytes, OpenMP threads
// it was built for, number of slots, then per slot: 1 if it is an output, its bytes}. Returns
// the number of integers written, or -1 when oneDNN cannot do it (cenet_onednn_last_error says
// why).
CENET_EXPORT int64_t cenet_onednn_describe(const int64_t* key, int64_t len, int64_t* out,
                                           int64_t max) {
  try {
    const cenet::Plan& plan = cenet::GetPlan(cenet::Key(key, key + len));
    const int64_t need = 3 + 2 * static_cast<int64_t>(plan.slots.size());
    if (need > max) throw std::runtime_error("description buffer too small");
    out[0] = static_cast<int64_t>(plan.scratch_bytes);
    out[1] = plan.threads;
    out[2] = static_cast<int64_t>(plan.slots.size());
    for (size_t i = 0; i < plan.slots.size(); ++i) {
      out[3 + 2 * i] = plan.slots[i].output ? 1 : 0;
      out[4 + 2 * i] = static_cast<int64_t>(plan.slots[i].user_md.get_size());
    }
    return need;
  } catch (const std::exception& e) {
    g_last_error = e.what();
    return -1;
  }
}

// oneDNN's name for the implementation a key runs (e.g. "brgconv:avx512_core_amx"), "" if none.
CENET_EXPORT const char* cenet_onednn_impl_info(const int64_t* key, int64_t len) {
  static thread_local std::string info;
  try {
    info = cenet::GetPlan(cenet::Key(key, key + len)).impl;
  } catch (const std::exception& e) {
    g_last_error = e.what();
    info.clear();
  }
  return info.c_str();
}

CENET_EXPORT const char* cenet_onednn_last_error() { return g_last_error.c_str(); }

// Start (1, counters reset) or stop (0) timing the calls.
CENET_EXPORT void cenet_onednn_profile(int enable) { cenet::SetProfiling(enable != 0); }

// The timings so far: seconds[kLabels * 3] (reorder in, compute, reorder out), calls[kLabels].
CENET_EXPORT void cenet_onednn_profile_read(double* seconds, int64_t* calls) {
  cenet::ReadProfile(seconds, calls);
}

// "3.2.0 avx512_core_amx": oneDNN's version and the instruction set it dispatches to.
CENET_EXPORT const char* cenet_onednn_version() {
  static std::string text;
  const dnnl_version_t* v = dnnl_version();
  static const std::map<int, const char*> isas = {
      {dnnl_cpu_isa_sse41, "sse41"}, {dnnl_cpu_isa_avx, "avx"}, {dnnl_cpu_isa_avx2, "avx2"},
      {dnnl_cpu_isa_avx2_vnni, "avx2_vnni"}, {dnnl_cpu_isa_avx512_core, "avx512_core"},
      {dnnl_cpu_isa_avx512_core_vnni, "avx512_core_vnni"},
      {dnnl_cpu_isa_avx512_core_bf16, "avx512_core_bf16"},
      {dnnl_cpu_isa_avx512_core_fp16, "avx512_core_fp16"},
      {dnnl_cpu_isa_avx512_core_amx, "avx512_core_amx"},
      {dnnl_cpu_isa_avx512_core_amx_fp16, "avx512_core_amx_fp16"}};
  auto it = isas.find(static_cast<int>(dnnl_get_effective_cpu_isa()));
  text = std::to_string(v->major) + "." + std::to_string(v->minor) + "." +
         std::to_string(v->patch) + " " + (it == isas.end() ? "unknown_isa" : it->second);
  return text.c_str();
}
