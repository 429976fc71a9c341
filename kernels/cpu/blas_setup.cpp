/*
 * blas_setup.cpp — OpenBLAS core selection, restart and GEMM self-test (blas_setup.h).
 */
#include "kernels/cpu/blas_setup.h"

#include <cblas.h>
#include <unistd.h>

#include <cctype>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <type_traits>
#include <vector>

#include "base/error.h"
#include "base/parallel.h"
#include "kernels/cpu/matmul.h"
#include "kernels/cpu/onednn_gemm.h"

namespace tgpt {

namespace {

constexpr const char* kCoreVar = "OPENBLAS_CORETYPE";
constexpr const char* kTgptCoreVar = "TGPT_BLAS_CORE";
constexpr const char* kOpenBlasChoiceVar = "TGPT_BLAS_OPENBLAS_CORE";
constexpr const char* kNoTuningVar = "TGPT_NO_BLAS_TUNING";
constexpr const char* kSelfTestFailedVar = "TGPT_BLAS_SELF_TEST_FAILED";
constexpr const char* kFailSelfTestVar = "TGPT_TEST_FAIL_BLAS_SELF_TEST";
constexpr const char* kGenericCore = "Prescott";
constexpr const char* kFailOnednnSelfTestVar = "TGPT_TEST_FAIL_ONEDNN_SELF_TEST";

bool same_core(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i)
    if (std::tolower(static_cast<unsigned char>(a[i])) !=
        std::tolower(static_cast<unsigned char>(b[i])))
      return false;
  return true;
}

std::string getenv_str(const char* name) {
  const char* v = std::getenv(name);
  return v ? v : "";
}

}  // namespace

// ---- the decision -------------------------------------------------------------------------------

std::string openblas_core_for(const CpuFeatures& f) {
  if (!f.x86) return "";
  if (f.has_avx512()) return "SkylakeX";
  if (f.has_avx2_fma()) return "Haswell";
  if (f.has_avx()) return "Sandybridge";
  return "";
}

int openblas_core_level(std::string_view core) {
  // OpenBLAS 0.3.21's x86-64 cores (driver/others/dynamic.c corename[]) by the vector extension
  // their GEMM kernels use. Zen runs the Haswell kernels, Steamroller/Bulldozer/Piledriver AVX
  // (+FMA3/FMA4) ones, Excavator AVX2 ones; Cooperlake is SkylakeX plus bf16 GEMM.
  struct Entry {
    const char* name;
    int level;
  };
  static constexpr Entry kCores[] = {
      {"Katmai", 0},       {"Coppermine", 0},     {"Northwood", 0},  {"Prescott", 0},
      {"Banias", 0},       {"Atom", 0},           {"Core2", 0},      {"Penryn", 0},
      {"Dunnington", 0},   {"Nehalem", 0},        {"Athlon", 0},     {"Opteron", 0},
      {"Opteron_SSE3", 0}, {"Barcelona", 0},      {"Nano", 0},       {"Bobcat", 0},
      {"Sandybridge", 1},  {"Bulldozer", 1},      {"Piledriver", 1}, {"Steamroller", 1},
      {"Haswell", 2},      {"Excavator", 2},      {"Zen", 2},        {"SkylakeX", 3},
      {"Cooperlake", 3},   {"SapphireRapids", 3},
  };
  for (const Entry& e : kCores)
    if (same_core(core, e.name)) return e.level;
  return -1;
}

BlasEnv BlasEnv::from_environment() {
  BlasEnv e;
  e.openblas_coretype = getenv_str(kCoreVar);
  e.tgpt_core = getenv_str(kTgptCoreVar);
  e.openblas_choice = getenv_str(kOpenBlasChoiceVar);
  e.no_tuning = getenv_str(kNoTuningVar);
  e.self_test_failed = getenv_str(kSelfTestFailedVar);
  return e;
}

const char* blas_core_source_name(BlasCoreSource s) {
  switch (s) {
    case BlasCoreSource::User: return "the user";
    case BlasCoreSource::Tgpt: return "tgpt";
    case BlasCoreSource::OpenBlas: break;
  }
  return "OpenBLAS";
}

BlasCoreDecision decide_blas_core(std::string_view reported_core, bool dynamic_arch,
                                  const CpuFeatures& f, const BlasEnv& env) {
  BlasCoreDecision d;
  const std::string reported(reported_core);
  if (env.user_set_core()) {
    d.source = BlasCoreSource::User;
    d.reason = "set by the user: " + std::string(kCoreVar) + "=" + env.openblas_coretype;
    if (!same_core(reported, env.openblas_coretype))
      d.reason += " (OpenBLAS runs " + reported + " instead)";
    return d;
  }
  if (!env.tgpt_core.empty() && env.openblas_coretype == env.tgpt_core) {  // after tgpt's restart
    d.source = BlasCoreSource::Tgpt;
    if (!env.self_test_failed.empty())
      d.reason =
          "chosen by tgpt after core " + env.self_test_failed + " failed tgpt's GEMM self-test";
    else
      d.reason = "chosen by tgpt for this CPU's features (OpenBLAS chose " +
                 (env.openblas_choice.empty() ? std::string("another core") : env.openblas_choice) +
                 "; " + kNoTuningVar + "=1 keeps OpenBLAS's choice)";
    if (!same_core(reported, env.tgpt_core))
      d.reason += "; OpenBLAS runs " + reported + " instead of " + env.tgpt_core;
    return d;
  }
  d.source = BlasCoreSource::OpenBlas;
  if (!env.self_test_failed.empty()) {
    d.reason = "OpenBLAS's choice: core " + env.self_test_failed +
               " failed tgpt's GEMM self-test earlier (" + kSelfTestFailedVar + ")";
    return d;
  }
  if (!env.tgpt_core.empty()) {  // the restart guard: someone removed OPENBLAS_CORETYPE since
    d.reason = "OpenBLAS's choice (" + std::string(kTgptCoreVar) + " is set: tgpt restarted once " +
               "and does not again)";
    return d;
  }
  if (env.opted_out()) {
    d.reason = "OpenBLAS's choice (" + std::string(kNoTuningVar) + " is set)";
    return d;
  }
  if (!f.x86) {
    d.reason = "OpenBLAS's choice (not an x86-64 CPU)";
    return d;
  }
  const std::string best = openblas_core_for(f);
  if (best.empty()) {
    d.reason = "OpenBLAS's choice (the CPU has no usable AVX)";
    return d;
  }
  const int level = openblas_core_level(reported);
  if (level < 0) {
    d.reason = "OpenBLAS's choice (a core tgpt does not know: kept)";
    return d;
  }
  if (level >= openblas_core_level(best)) {
    d.reason = "OpenBLAS's choice (it matches this CPU's features)";
    return d;
  }
  if (!dynamic_arch) {
    d.reason = "OpenBLAS's only core: this OpenBLAS is built without DYNAMIC_ARCH, so " + best +
               " (what this CPU runs) cannot be selected";
    return d;
  }
  d.restart = true;
  d.core = best;
  d.reason = "OpenBLAS chose " + reported + ", below this CPU's features: restart with " +
             kCoreVar + "=" + best;
  return d;
}

SelfTestFailureAction on_self_test_failure(std::string_view core_in_use, BlasCoreSource source,
                                           const BlasEnv& env) {
  SelfTestFailureAction a;
  const std::string core(core_in_use);
  const std::string head = "warning: OpenBLAS core " + core + " (chosen by " +
                           blas_core_source_name(source) + ") failed tgpt's GEMM self-test";
  const std::string wrong = "; matrix products may be wrong";
  if (!env.self_test_failed.empty()) {
    a.message = head + ", as core " + env.self_test_failed + " did before" + wrong +
                ": try another " + kCoreVar + " (e.g. " + kGenericCore + ")";
  } else if (source == BlasCoreSource::User) {
    a.message = head + wrong + ": unset " + kCoreVar + " or choose another core";
  } else if (source == BlasCoreSource::Tgpt) {
    a.restart = true;  // core "": OpenBLAS's own choice
    a.message = head + ": restarting with OpenBLAS's own choice";
  } else if (env.opted_out()) {
    a.message = head + wrong + " (" + kNoTuningVar + " is set, so tgpt keeps it): set " + kCoreVar +
                "=" + kGenericCore + " or unset " + kNoTuningVar;
  } else if (same_core(core, kGenericCore)) {
    a.message = head + wrong;
  } else {
    a.restart = true;
    a.core = kGenericCore;
    a.message = head + ": restarting with the generic " + std::string(kGenericCore) + " kernels";
  }
  return a;
}

// ---- the self-test ------------------------------------------------------------------------------

namespace {

// Entries are multiples of 1/4 in [-1.5, 1.5] (test_quarters / 4): with K <= 128 every product
// (a multiple of 1/16), partial sum (|.| <= 288) and alpha/beta step (alpha, beta in
// {1, 0.5, -1, 0}) is exact in float, so a correct GEMM equals the reference exactly, whatever
// its summation order or FMA use. The reference sums the integers test_quarters(a) *
// test_quarters(b) (exact, and fast enough to run at every start).
int32_t test_quarters(int64_t i, int salt) {
  return static_cast<int32_t>((i * 7 + salt * 3) % 13) - 6;
}

// One product through `gemm` (a gemm-like function on TAB operands and a TC result, scalars S).
// The expected result is exact in f32 before C's rounding (to TC), so it must match exactly.
template <typename TAB, typename TC, typename S, typename Gemm>
bool self_test_case(Gemm gemm, const char* what, bool ta, bool tb, int64_t M, int64_t N, int64_t K,
                    S alpha, S beta, std::string* detail) {
  std::vector<TAB> A(M * K), B(K * N);
  std::vector<TC> C(M * N);
  std::vector<int32_t> a(M * K), bt(N * K);  // logical a [M, K] and bᵀ [N, K], in quarters
  const int64_t lda = ta ? M : K, ldb = tb ? K : N;
  for (int64_t i = 0; i < M * K; ++i) {
    const int32_t q = test_quarters(i, 1);
    A[i] = cpu::from_double<TAB>(q * 0.25);
    const int64_t row = i / lda, col = i % lda;  // A's buffer is [M, K], or [K, M] with ta
    a[ta ? col * K + row : row * K + col] = q;
  }
  for (int64_t i = 0; i < K * N; ++i) {
    const int32_t q = test_quarters(i, 2);
    B[i] = cpu::from_double<TAB>(q * 0.25);
    const int64_t row = i / ldb, col = i % ldb;  // B's buffer is [K, N], or [N, K] with tb
    bt[tb ? row * K + col : col * K + row] = q;
  }
  for (int64_t i = 0; i < M * N; ++i) C[i] = cpu::from_double<TC>(test_quarters(i, 3) * 0.25);
  std::vector<TC> ref(M * N);
  for (int64_t m = 0; m < M; ++m)
    for (int64_t n = 0; n < N; ++n) {
      const int32_t* ar = a.data() + m * K;
      const int32_t* br = bt.data() + n * K;
      int32_t acc = 0;
      for (int64_t k = 0; k < K; ++k) acc += ar[k] * br[k];
      ref[m * N + n] =
          cpu::from_double<TC>(static_cast<double>(alpha) * acc / 16.0 +
                               static_cast<double>(beta) * cpu::as_double(C[m * N + n]));
    }
  gemm(ta, tb, M, N, K, alpha, A.data(), lda, B.data(), ldb, beta, C.data(), N);
  for (int64_t i = 0; i < M * N; ++i)
    if (cpu::as_double(C[i]) != cpu::as_double(ref[i])) {
      if (detail)
        *detail = str_cat(what, " ", M, "x", N, "x", K, ta ? " A^T" : " A", tb ? " B^T" : " B",
                          ": C[", i / N, ",", i % N, "] = ", cpu::as_double(C[i]), ", expected ",
                          cpu::as_double(ref[i]));
      return false;
    }
  return true;
}

void sgemm_openblas(bool ta, bool tb, int64_t M, int64_t N, int64_t K, float alpha, const float* A,
                    int64_t lda, const float* B, int64_t ldb, float beta, float* C, int64_t ldc) {
  cpu::gemm_openblas(ta, tb, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
}

void dgemm_openblas(bool ta, bool tb, int64_t M, int64_t N, int64_t K, double alpha,
                    const double* A, int64_t lda, const double* B, int64_t ldb, double beta,
                    double* C, int64_t ldc) {
  cpu::gemm(ta, tb, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
}

void sgemm_onednn(bool ta, bool tb, int64_t M, int64_t N, int64_t K, float alpha, const float* A,
                  int64_t lda, const float* B, int64_t ldb, float beta, float* C, int64_t ldc) {
  cpu::gemm_onednn(ta, tb, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
}

void bf16gemm_f32_out(bool ta, bool tb, int64_t M, int64_t N, int64_t K, float alpha, const bf16* A,
                      int64_t lda, const bf16* B, int64_t ldb, float beta, float* C, int64_t ldc) {
  cpu::gemm_bf16(ta, tb, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
}

void bf16gemm_bf16_out(bool ta, bool tb, int64_t M, int64_t N, int64_t K, float alpha,
                       const bf16* A, int64_t lda, const bf16* B, int64_t ldb, float beta, bf16* C,
                       int64_t ldc) {
  cpu::gemm_bf16(ta, tb, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
}

BlasStatus g_status;
bool g_selected = false;

std::string current_core() {
  const char* c = openblas_get_corename();
  return c ? c : "unknown";
}

std::string current_config() {
  const char* c = openblas_get_config();
  return c ? c : "OpenBLAS";
}

// Re-executes this program with the current environment; returns only when that failed.
void restart(char** argv) {
  std::fflush(stdout);
  std::fflush(stderr);
  execv("/proc/self/exe", argv);
  std::fprintf(stderr,
               "tgpt: warning: could not restart /proc/self/exe to change the OpenBLAS "
               "core (%s); continuing with core %s\n",
               std::strerror(errno), current_core().c_str());
}

}  // namespace

bool blas_self_test(std::string* detail) {
  // Small products (OpenBLAS's small-matrix kernels: M*N*K <= 100³ on SkylakeX) and products past
  // that and its threading threshold (packed kernels, edge tiles), every transpose combination.
  const char* s = "sgemm";
  const char* d = "dgemm";
  return self_test_case<float, float>(sgemm_openblas, s, false, false, 64, 48, 80, 1.f, 0.f,
                                      detail) &&
         self_test_case<float, float>(sgemm_openblas, s, false, false, 131, 113, 96, 1.f, 0.f,
                                      detail) &&
         self_test_case<float, float>(sgemm_openblas, s, true, false, 67, 45, 83, 0.5f, -1.f,
                                      detail) &&
         self_test_case<float, float>(sgemm_openblas, s, false, true, 45, 67, 83, 1.f, 1.f,
                                      detail) &&
         self_test_case<float, float>(sgemm_openblas, s, true, true, 113, 131, 96, -1.f, 0.5f,
                                      detail) &&
         self_test_case<double, double>(dgemm_openblas, d, false, false, 131, 113, 96, 1.0, 0.0,
                                        detail) &&
         self_test_case<double, double>(dgemm_openblas, d, true, true, 67, 45, 83, 0.5, -1.0,
                                        detail);
}

bool onednn_self_test(bool bf16_products, std::string* detail) {
  // Small and blocked shapes, every transpose combination, alpha/beta (output scale, sum
  // post-op); bf16 with f32 and bf16 results (the bf16 result is the exact sum rounded once).
  const char* f = "oneDNN f32";
  const char* b = "oneDNN bf16 (f32 result)";
  const char* bb = "oneDNN bf16 (bf16 result)";
  const bool f32_ok =
      self_test_case<float, float>(sgemm_onednn, f, false, true, 64, 48, 80, 1.f, 0.f, detail) &&
      self_test_case<float, float>(sgemm_onednn, f, false, false, 131, 113, 96, 1.f, 0.f, detail) &&
      self_test_case<float, float>(sgemm_onednn, f, true, false, 67, 45, 83, 0.5f, -1.f, detail) &&
      self_test_case<float, float>(sgemm_onednn, f, false, true, 45, 67, 83, 1.f, 1.f, detail) &&
      self_test_case<float, float>(sgemm_onednn, f, true, true, 113, 131, 96, -1.f, 0.5f, detail);
  if (!f32_ok || !bf16_products) return f32_ok;
  return self_test_case<bf16, float>(bf16gemm_f32_out, b, false, true, 131, 113, 96, 1.f, 0.f,
                                     detail) &&
         self_test_case<bf16, float>(bf16gemm_f32_out, b, true, false, 67, 45, 83, 0.5f, -1.f,
                                     detail) &&
         self_test_case<bf16, bf16>(bf16gemm_bf16_out, bb, false, true, 45, 67, 83, 1.f, 1.f,
                                    detail) &&
         self_test_case<bf16, bf16>(bf16gemm_bf16_out, bb, true, true, 113, 131, 96, 1.f, 0.f,
                                    detail);
}

namespace {

// The OpenBLAS part of select_blas_kernels: core, restart, sgemm/dgemm self-test.
void select_openblas_core(int argc, char** argv) {
  const bool can_restart = argc > 0 && argv && argv[argc] == nullptr;
  const BlasEnv env = BlasEnv::from_environment();
  const std::string reported = current_core(), config = current_config();
  const BlasCoreDecision d = decide_blas_core(
      reported, config.find("DYNAMIC_ARCH") != std::string::npos, cpu_features(), env);
  g_status.config = config;
  g_status.core = reported;
  g_status.source = d.source;
  g_status.reason = d.reason;
  g_status.openblas_choice = d.source == BlasCoreSource::OpenBlas ? reported
                             : d.source == BlasCoreSource::Tgpt   ? env.openblas_choice
                                                                  : "";
  if (d.restart) {
    if (can_restart) {
      setenv(kCoreVar, d.core.c_str(), 1);
      setenv(kTgptCoreVar, d.core.c_str(), 1);
      setenv(kOpenBlasChoiceVar, reported.c_str(), 1);
      restart(argv);
      unsetenv(kCoreVar);
      unsetenv(kTgptCoreVar);
      unsetenv(kOpenBlasChoiceVar);
    }
    g_status.reason = "OpenBLAS's choice (tgpt could not restart the program with " +
                      std::string(kCoreVar) + "=" + d.core + ")";
  }

  g_status.self_test_ran = true;
  g_status.self_test_passed = blas_self_test(&g_status.self_test_detail);
  // Test hook (tests/test_blas_setup.cpp): the self-test fails while this core runs.
  if (g_status.self_test_passed && getenv_str(kFailSelfTestVar) == reported) {
    g_status.self_test_passed = false;
    g_status.self_test_detail = std::string(kFailSelfTestVar) + "=" + reported;
  }
  if (g_status.self_test_passed) {
    if (!env.self_test_failed.empty())
      g_status.self_test_detail = "core " + env.self_test_failed + " failed it earlier";
    return;
  }
  const SelfTestFailureAction a = on_self_test_failure(reported, g_status.source, env);
  std::fprintf(stderr, "tgpt: %s (%s)\n", a.message.c_str(), g_status.self_test_detail.c_str());
  if (!a.restart || !can_restart) return;
  setenv(kSelfTestFailedVar, reported.c_str(), 1);
  if (a.core.empty()) {
    unsetenv(kCoreVar);
    unsetenv(kTgptCoreVar);
    unsetenv(kOpenBlasChoiceVar);
  } else {
    setenv(kCoreVar, a.core.c_str(), 1);
    setenv(kTgptCoreVar, a.core.c_str(), 1);
    setenv(kOpenBlasChoiceVar, reported.c_str(), 1);
  }
  restart(argv);
  std::fprintf(stderr,
               "tgpt: warning: matrix products may be wrong (OpenBLAS core %s failed the "
               "GEMM self-test)\n",
               reported.c_str());
}

// The oneDNN part: the GEMM backend setting (TGPT_GEMM), oneDNN's self-test when it runs GEMMs,
// falling back to OpenBLAS (f32) or f32 compute (bf16) with a warning when it fails.
void check_onednn() {
  cpu::GemmBackend backend;
  try {
    backend = cpu::gemm_backend();
  } catch (const Error& e) {
    std::fprintf(stderr, "tgpt: error: %s\n", e.what());
    std::exit(2);
  }
  OnednnStatus& o = g_status.onednn;
  o.version = cpu::onednn_version();
  o.isa = cpu::onednn_isa();
  o.native_bf16 = cpu::onednn_native_bf16();
  if (backend == cpu::GemmBackend::OpenBlas) return;  // oneDNN runs no GEMM
  o.self_test_ran = true;
  const bool bf16_products = o.native_bf16;
  o.self_test_passed = onednn_self_test(bf16_products, &o.self_test_detail);
  // Test hook (tests/test_onednn_gemm.cpp): "f32" or "bf16" fails that part of the self-test.
  const std::string fail = getenv_str(kFailOnednnSelfTestVar);
  if (o.self_test_passed && (fail == "f32" || (fail == "bf16" && bf16_products))) {
    o.self_test_passed = false;
    o.self_test_detail = std::string(kFailOnednnSelfTestVar) + "=" + fail;
  }
  if (o.self_test_passed) return;
  const bool f32_failed = o.self_test_detail.rfind("oneDNN f32", 0) == 0 || fail == "f32";
  if (f32_failed) {  // nothing on oneDNN
    cpu::set_gemm_backend(cpu::GemmBackend::OpenBlas);
    o.fallback = backend == cpu::GemmBackend::OneDnn ? "f32 GEMMs on OpenBLAS, bf16 computed in f32"
                                                     : "bf16 computed in f32";
  } else {
    cpu::disable_bf16_gemm();
    o.fallback = "bf16 computed in f32";
  }
  std::fprintf(stderr, "tgpt: warning: oneDNN failed tgpt's GEMM self-test (%s): %s\n",
               o.self_test_detail.c_str(), o.fallback.c_str());
}

}  // namespace

void select_blas_kernels(int argc, char** argv) {
  if (g_selected) return;
  g_selected = true;
  select_openblas_core(argc, argv);
  check_onednn();
}

BlasStatus blas_status() {
  if (g_selected) return g_status;
  BlasStatus s;
  s.config = current_config();
  s.core = current_core();
  const BlasCoreDecision d =
      decide_blas_core(s.core, s.config.find("DYNAMIC_ARCH") != std::string::npos, cpu_features(),
                       BlasEnv::from_environment());
  s.source = d.source;
  s.reason = d.restart ? "OpenBLAS's choice (this program does not select kernels; tgpt's "
                         "programs use " +
                             d.core + ")"
                       : d.reason;
  return s;
}

std::string blas_report() {
  const BlasStatus s = blas_status();
  const CpuFeatures& f = cpu_features();
  std::string r;
  r += "BLAS:           " + s.config + "\n";
  r += "BLAS kernels:   " + s.core + ", " + s.reason + "\n";
  r += "GEMM self-test: ";
  if (!s.self_test_ran)
    r += "not run";
  else if (s.self_test_passed)
    r += "passed (sgemm, dgemm against a plain loop, exact)";
  else
    r += "FAILED: " + s.self_test_detail;
  if (s.self_test_passed && !s.self_test_detail.empty()) r += "; " + s.self_test_detail;
  r += "\n";
  const OnednnStatus& o = s.onednn;
  const cpu::GemmBackend backend = cpu::gemm_backend();
  r += std::string("GEMM backend:   ") + cpu::gemm_backend_name(backend);
  if (backend == cpu::GemmBackend::OneDnn)
    r += " (f32: oneDNN; OpenBLAS for a transposed A and inside parallel regions; f64: OpenBLAS)";
  else
    r += " (f32, f64: OpenBLAS)";
  r += std::string("; bf16: ") +
       (cpu::bf16_gemm_native() ? "oneDNN bf16, f32 accumulation" : "computed in f32") +
       "; TGPT_GEMM=auto|onednn|openblas\n";
  r += "oneDNN:         " + (o.version.empty() ? cpu::onednn_version() : o.version) + ", ISA " +
       (o.isa.empty() ? cpu::onednn_isa() : o.isa) + ", f32 " + cpu::onednn_impl_name(false) +
       ", bf16 " + cpu::onednn_impl_name(true) +
       (cpu::onednn_native_bf16() ? " (native bf16)" : " (no bf16 dot products: emulated)") + "\n";
  r += "oneDNN self-test: ";
  if (!o.self_test_ran)
    r += "not run";
  else if (o.self_test_passed)
    r += std::string("passed (f32") + (o.native_bf16 ? ", bf16" : "") +
         " against a plain loop, exact)";
  else
    r += "FAILED: " + o.self_test_detail + "; " + o.fallback;
  r += "\n";
  if (f.x86)
    r += str_cat("CPU:            ", f.brand.empty() ? std::string("unknown") : f.brand, " (",
                 f.vendor, ", family ", f.family, ", model ", f.model, ")\n");
  r += "CPU features:   " + f.summary() + "\n";
  r += str_cat("threads:        ", num_threads(), "\n");
  return r;
}

}  // namespace tgpt
