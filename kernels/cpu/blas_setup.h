/*
 * blas_setup.h — makes OpenBLAS run the GEMM kernels this CPU can execute, and checks them and
 * oneDNN's.
 *
 * OpenBLAS built with DYNAMIC_ARCH (Debian's) picks its kernels ("core") once, in a library
 * constructor, from the CPU model number. A CPU model it does not know (e.g. a cloud VM whose
 * CPUID says only "Intel Xeon Processor", or a CPU newer than the library) gets the generic SSE3
 * "Prescott" kernels: sgemm runs ~6x slower on an AVX-512 machine. The core can only be changed
 * through the environment variable OPENBLAS_CORETYPE, read in that constructor, so tgpt:
 *
 *   1. select_blas_kernels(argc, argv), first thing in every tgpt main(): reads the CPU's usable
 *      features (base/cpu_features.h) and the core OpenBLAS chose; when that core is below what the
 *      CPU runs (decide_blas_core), sets OPENBLAS_CORETYPE and re-executes /proc/self/exe with the
 *      same arguments, once (guarded by TGPT_BLAS_CORE; a failed exec continues with a warning);
 *   2. then runs a GEMM self-test (sgemm and dgemm, every transpose combination, small and
 *      blocked sizes, against a plain loop; values chosen so every product and sum is exact, so
 *      the check is exact equality whatever the summation order). If the core fails it
 *      (on_self_test_failure): a core tgpt chose is dropped (re-executes without the override), a
 *      core OpenBLAS chose is replaced by the generic Prescott kernels, a core the user chose is
 *      kept with a warning; TGPT_BLAS_SELF_TEST_FAILED stops any further restart.
 *      (For tests, TGPT_TEST_FAIL_BLAS_SELF_TEST=CORE makes the self-test fail under that core.)
 *
 *   3. then checks oneDNN (kernels/cpu/onednn_gemm.h), which runs the f32 GEMMs by default
 *      (kernels/cpu/matmul.h, TGPT_GEMM=auto|onednn|openblas; an unknown value exits with an
 *      error) and the bf16 ones: the same exact self-test on its f32 and, where the CPU has bf16
 *      dot products, bf16 GEMMs. A failure warns and falls back: f32 GEMMs to OpenBLAS, bf16 to
 *      f32 compute. (For tests, TGPT_TEST_FAIL_ONEDNN_SELF_TEST=f32|bf16 fails that part.)
 *
 * The OpenBLAS core is left alone when the user set OPENBLAS_CORETYPE, or set TGPT_NO_BLAS_TUNING
 * (any value but
 * "" or "0"), on a machine OpenBLAS recognises, or on a CPU other than x86-64.
 *
 * Core names are OpenBLAS 0.3.21's (driver/others/dynamic.c); its OPENBLAS_CORETYPE accepts
 * "Haswell", "SkylakeX", "Sandybridge", ... but not "Cooperlake" (its name table stops short of
 * it), whose sgemm/dgemm kernels are SkylakeX's anyway.
 */
#pragma once

#include <string>
#include <string_view>

#include "base/cpu_features.h"

namespace tgpt {

// ---- the decision (pure functions; tests/test_blas_setup.cpp) ---------------------------------

// The best OpenBLAS core for these usable features: "SkylakeX" (AVX-512 F/CD/BW/DQ/VL),
// "Haswell" (AVX2 + FMA), "Sandybridge" (AVX), or "" (no AVX, or not x86: OpenBLAS's own choice
// is as good as any).
std::string openblas_core_for(const CpuFeatures& f);

// The vector level of an OpenBLAS x86 core's kernels: 0 SSE, 1 AVX, 2 AVX2, 3 AVX-512; -1 for a
// name tgpt does not know (a newer OpenBLAS, another architecture), which tgpt never overrides.
// Case-insensitive, as OpenBLAS compares them.
int openblas_core_level(std::string_view core);

// The environment variables the decision reads ("" when unset).
struct BlasEnv {
  std::string openblas_coretype;  // OPENBLAS_CORETYPE
  std::string tgpt_core;          // TGPT_BLAS_CORE: the core a tgpt process set before restarting
  std::string openblas_choice;    // TGPT_BLAS_OPENBLAS_CORE: OpenBLAS's own choice before that
  std::string no_tuning;          // TGPT_NO_BLAS_TUNING
  std::string self_test_failed;   // TGPT_BLAS_SELF_TEST_FAILED: the core that failed the self-test

  static BlasEnv from_environment();
  bool opted_out() const { return !no_tuning.empty() && no_tuning != "0"; }
  // OPENBLAS_CORETYPE is the user's (not one a tgpt process set).
  bool user_set_core() const {
    return !openblas_coretype.empty() && openblas_coretype != tgpt_core;
  }
};

// Who chose the core in use.
enum class BlasCoreSource { OpenBlas, User, Tgpt };
const char* blas_core_source_name(BlasCoreSource s);  // "OpenBLAS", "the user", "tgpt"

struct BlasCoreDecision {
  bool restart = false;                              // set OPENBLAS_CORETYPE=core and re-execute
  std::string core;                                  // with restart: the core to set
  BlasCoreSource source = BlasCoreSource::OpenBlas;  // who chose the core in use (without restart)
  std::string reason;                                // one line for --version
};

// reported_core: openblas_get_corename() in this process; dynamic_arch: the library honours
// OPENBLAS_CORETYPE (openblas_get_config() names DYNAMIC_ARCH).
BlasCoreDecision decide_blas_core(std::string_view reported_core, bool dynamic_arch,
                                  const CpuFeatures& f, const BlasEnv& env);

// What to do when `core_in_use` (chosen by `source`) failed the GEMM self-test: restart with
// OPENBLAS_CORETYPE=core (core "" = without OPENBLAS_CORETYPE), or carry on with the warning.
struct SelfTestFailureAction {
  bool restart = false;
  std::string core;
  std::string message;  // the warning printed on stderr
};
SelfTestFailureAction on_self_test_failure(std::string_view core_in_use, BlasCoreSource source,
                                           const BlasEnv& env);

// ---- applying it (once per process) --------------------------------------------------------

// Call first in main(), before any thread starts. May not return (re-executes the program).
void select_blas_kernels(int argc, char** argv);

// The GEMM self-test on the BLAS in use (sgemm and dgemm against a plain loop, exact). On failure
// `detail` says which product and element differed.
bool blas_self_test(std::string* detail = nullptr);

// oneDNN (kernels/cpu/onednn_gemm.h) as select_blas_kernels found it.
struct OnednnStatus {
  std::string version, isa;                              // "oneDNN 2.6.3", "avx512_core_bf16"
  bool native_bf16 = false;                              // the ISA has bf16 dot products
  bool self_test_ran = false, self_test_passed = false;  // not run when TGPT_GEMM=openblas
  std::string self_test_detail;                          // the failure
  std::string fallback;                                  // what runs instead after a failure
};

struct BlasStatus {
  std::string config;           // openblas_get_config(): version, build options, core
  std::string core;             // openblas_get_corename(): the core in use
  std::string openblas_choice;  // the core OpenBLAS picked by itself ("" when not known)
  BlasCoreSource source = BlasCoreSource::OpenBlas;
  std::string reason;  // why this core (BlasCoreDecision::reason)
  bool self_test_ran = false, self_test_passed = false;
  std::string self_test_detail;  // the failure, or the earlier core that failed (restart)
  OnednnStatus onednn;
};

// The state after select_blas_kernels (or, in a program that never called it, the core OpenBLAS
// chose, no self-test).
BlasStatus blas_status();

// Lines for --version: BLAS library and build, core in use and who chose it, the self-test's
// result, the GEMM backend, oneDNN's version, ISA, kernels and self-test, CPU and its usable
// features, threads.
std::string blas_report();

}  // namespace tgpt
