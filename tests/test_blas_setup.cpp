/*
 * test_blas_setup.cpp — OpenBLAS core selection (kernels/cpu/blas_setup.h) and CPU feature
 * detection (base/cpu_features.h).
 *
 * The decision is tested as a pure function on made-up CPUs and environments: an unrecognised
 * AVX-512 CPU (OpenBLAS reports Prescott) gets SkylakeX, a recognised one keeps its core, the
 * user's OPENBLAS_CORETYPE and TGPT_NO_BLAS_TUNING are respected, non-x86 / no-AVX CPUs are left
 * alone, and the restart chain ends. On the real machine: the detected features agree with
 * /proc/cpuinfo, the self-test passes, this test binary (its main selects kernels) runs a core at
 * the CPU's level, and the tools' --version says which core runs and who chose it.
 */
#include <cblas.h>
#include <gtest/gtest.h>
#include <sys/wait.h>

#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>
#include <string>

#include "base/cpu_features.h"
#include "kernels/cpu/blas_setup.h"

namespace fs = std::filesystem;
using namespace tgpt;

namespace {

CpuFeatures sse_cpu() {
  CpuFeatures f;
  f.x86 = true;
  f.vendor = "GenuineIntel";
  f.sse3 = f.ssse3 = f.sse4_1 = f.sse4_2 = true;
  return f;
}

CpuFeatures avx_cpu() {
  CpuFeatures f = sse_cpu();
  f.avx = f.os_ymm = true;
  return f;
}

CpuFeatures avx2_cpu() {
  CpuFeatures f = avx_cpu();
  f.avx2 = f.fma = f.f16c = true;
  return f;
}

// The VM of issue 13: Sapphire/Emerald Rapids class, CPUID brand "Intel(R) Xeon(R) Processor".
CpuFeatures avx512_cpu() {
  CpuFeatures f = avx2_cpu();
  f.avx512f = f.avx512cd = f.avx512bw = f.avx512dq = f.avx512vl = f.os_zmm = true;
  f.avx512_bf16 = f.avx512_fp16 = true;
  f.amx_tile = f.amx_bf16 = f.amx_int8 = true;
  return f;
}

BlasCoreDecision decide(std::string_view reported, const CpuFeatures& f, const BlasEnv& env = {}) {
  return decide_blas_core(reported, /*dynamic_arch=*/true, f, env);
}

}  // namespace

// ---- features -> core -------------------------------------------------------------------------

TEST(BlasSetup, CoreForFeatures) {
  EXPECT_EQ(openblas_core_for(avx512_cpu()), "SkylakeX");
  EXPECT_EQ(openblas_core_for(avx2_cpu()), "Haswell");
  EXPECT_EQ(openblas_core_for(avx_cpu()), "Sandybridge");
  EXPECT_EQ(openblas_core_for(sse_cpu()), "");
  EXPECT_EQ(openblas_core_for(CpuFeatures{}), "");  // not x86

  // CPUID lists AVX-512 but the OS does not save the ZMM state: AVX-512 code would fault.
  CpuFeatures no_zmm = avx512_cpu();
  no_zmm.os_zmm = false;
  EXPECT_EQ(openblas_core_for(no_zmm), "Haswell");
  // Likewise AVX without the YMM state.
  CpuFeatures no_ymm = avx2_cpu();
  no_ymm.os_ymm = false;
  EXPECT_EQ(openblas_core_for(no_ymm), "");
  // AVX-512F alone (Knights Landing style, no BW/DQ/VL) is not the Skylake-X set.
  CpuFeatures f_only = avx512_cpu();
  f_only.avx512bw = f_only.avx512vl = false;
  EXPECT_EQ(openblas_core_for(f_only), "Haswell");
  // AVX2 without FMA is not Haswell.
  CpuFeatures no_fma = avx2_cpu();
  no_fma.fma = false;
  EXPECT_EQ(openblas_core_for(no_fma), "Sandybridge");
}

TEST(BlasSetup, CoreLevels) {
  EXPECT_EQ(openblas_core_level("Prescott"), 0);
  EXPECT_EQ(openblas_core_level("prescott"), 0);  // OpenBLAS compares names case-insensitively
  EXPECT_EQ(openblas_core_level("Nehalem"), 0);
  EXPECT_EQ(openblas_core_level("Sandybridge"), 1);
  EXPECT_EQ(openblas_core_level("Haswell"), 2);
  EXPECT_EQ(openblas_core_level("Zen"), 2);
  EXPECT_EQ(openblas_core_level("SkylakeX"), 3);
  EXPECT_EQ(openblas_core_level("COOPERLAKE"), 3);
  EXPECT_EQ(openblas_core_level("ARMV8"), -1);
  EXPECT_EQ(openblas_core_level("Unknown"), -1);
  EXPECT_EQ(openblas_core_level(""), -1);
}

// ---- the decision -----------------------------------------------------------------------------

TEST(BlasSetup, UnrecognisedAvx512CpuGetsSkylakeX) {
  const BlasCoreDecision d = decide("Prescott", avx512_cpu());
  EXPECT_TRUE(d.restart);
  EXPECT_EQ(d.core, "SkylakeX");
  EXPECT_NE(d.reason.find("Prescott"), std::string::npos) << d.reason;
  // A core below the CPU's level but not the generic one is raised too.
  EXPECT_EQ(decide("Haswell", avx512_cpu()).core, "SkylakeX");
  EXPECT_EQ(decide("Nehalem", avx2_cpu()).core, "Haswell");
  EXPECT_EQ(decide("Prescott", avx_cpu()).core, "Sandybridge");
}

TEST(BlasSetup, RecognisedCpuKeepsItsCore) {
  for (const char* core : {"SkylakeX", "Cooperlake", "SapphireRapids"}) {
    const BlasCoreDecision d = decide(core, avx512_cpu());
    EXPECT_FALSE(d.restart) << core;
    EXPECT_EQ(d.source, BlasCoreSource::OpenBlas) << core;
  }
  EXPECT_FALSE(decide("Haswell", avx2_cpu()).restart);
  EXPECT_FALSE(decide("Zen", avx2_cpu()).restart);
  EXPECT_FALSE(decide("Sandybridge", avx_cpu()).restart);
  // A core above what tgpt would pick (OpenBLAS knows better) is kept as well.
  EXPECT_FALSE(decide("SkylakeX", avx2_cpu()).restart);
  // A core name tgpt does not know (a newer OpenBLAS) is never overridden.
  EXPECT_FALSE(decide("Zen5", avx512_cpu()).restart);
}

TEST(BlasSetup, UsersSettingIsRespected) {
  BlasEnv env;
  env.openblas_coretype = "Prescott";
  const BlasCoreDecision d = decide("Prescott", avx512_cpu(), env);
  EXPECT_FALSE(d.restart);
  EXPECT_EQ(d.source, BlasCoreSource::User);
  EXPECT_NE(d.reason.find("OPENBLAS_CORETYPE=Prescott"), std::string::npos) << d.reason;

  // The user's value differs from what a tgpt parent set: still the user's.
  env.openblas_coretype = "Haswell";
  env.tgpt_core = "SkylakeX";
  EXPECT_EQ(decide("Haswell", avx512_cpu(), env).source, BlasCoreSource::User);
  EXPECT_FALSE(decide("Haswell", avx512_cpu(), env).restart);
}

TEST(BlasSetup, OptOut) {
  BlasEnv env;
  env.no_tuning = "1";
  const BlasCoreDecision d = decide("Prescott", avx512_cpu(), env);
  EXPECT_FALSE(d.restart);
  EXPECT_EQ(d.source, BlasCoreSource::OpenBlas);
  EXPECT_NE(d.reason.find("TGPT_NO_BLAS_TUNING"), std::string::npos) << d.reason;
  env.no_tuning = "0";  // "0" and "" mean tuning on
  EXPECT_TRUE(decide("Prescott", avx512_cpu(), env).restart);
}

TEST(BlasSetup, NonX86AndNoAvxUnchanged) {
  EXPECT_FALSE(decide("ARMV8", CpuFeatures{}).restart);
  EXPECT_FALSE(decide("NEOVERSEN1", CpuFeatures{}).restart);
  EXPECT_FALSE(decide("Prescott", sse_cpu()).restart);
  EXPECT_FALSE(decide("Core2", sse_cpu()).restart);
}

TEST(BlasSetup, WithoutDynamicArchNothingToSelect) {
  const BlasCoreDecision d = decide_blas_core("Prescott", /*dynamic_arch=*/false, avx512_cpu(), {});
  EXPECT_FALSE(d.restart);
  EXPECT_NE(d.reason.find("DYNAMIC_ARCH"), std::string::npos) << d.reason;
}

TEST(BlasSetup, AfterTheRestart) {
  // What the restarted process sees: OPENBLAS_CORETYPE and TGPT_BLAS_CORE both SkylakeX.
  BlasEnv env;
  env.openblas_coretype = env.tgpt_core = "SkylakeX";
  env.openblas_choice = "Prescott";
  BlasCoreDecision d = decide("SkylakeX", avx512_cpu(), env);
  EXPECT_FALSE(d.restart);
  EXPECT_EQ(d.source, BlasCoreSource::Tgpt);
  EXPECT_NE(d.reason.find("OpenBLAS chose Prescott"), std::string::npos) << d.reason;
  // OpenBLAS refused the core (its own feature check): said, not retried.
  d = decide("Haswell", avx512_cpu(), env);
  EXPECT_FALSE(d.restart);
  EXPECT_NE(d.reason.find("runs Haswell instead of SkylakeX"), std::string::npos) << d.reason;
  // After OpenBLAS's own core failed the self-test, tgpt's Prescott fallback is reported as such.
  BlasEnv fallback;
  fallback.openblas_coretype = fallback.tgpt_core = "Prescott";
  fallback.self_test_failed = "Haswell";
  d = decide("Prescott", avx2_cpu(), fallback);
  EXPECT_FALSE(d.restart);
  EXPECT_EQ(d.source, BlasCoreSource::Tgpt);
  EXPECT_NE(d.reason.find("after core Haswell failed"), std::string::npos) << d.reason;
  // The guard: TGPT_BLAS_CORE set but OPENBLAS_CORETYPE removed since: no second restart.
  env.openblas_coretype.clear();
  EXPECT_FALSE(decide("Prescott", avx512_cpu(), env).restart);
}

TEST(BlasSetup, SelfTestFailure) {
  BlasEnv env;
  // tgpt's core failed: back to OpenBLAS's own choice (restart without the override).
  SelfTestFailureAction a = on_self_test_failure("SkylakeX", BlasCoreSource::Tgpt, env);
  EXPECT_TRUE(a.restart);
  EXPECT_EQ(a.core, "");
  // OpenBLAS's own core failed: the generic kernels.
  a = on_self_test_failure("Haswell", BlasCoreSource::OpenBlas, env);
  EXPECT_TRUE(a.restart);
  EXPECT_EQ(a.core, "Prescott");
  // Already the generic kernels, or the user's core, or opted out: a warning only.
  EXPECT_FALSE(on_self_test_failure("Prescott", BlasCoreSource::OpenBlas, env).restart);
  a = on_self_test_failure("Haswell", BlasCoreSource::User, env);
  EXPECT_FALSE(a.restart);
  EXPECT_NE(a.message.find("may be wrong"), std::string::npos) << a.message;
  BlasEnv opted = env;
  opted.no_tuning = "yes";
  EXPECT_FALSE(on_self_test_failure("Haswell", BlasCoreSource::OpenBlas, opted).restart);
  // A second failure after a restart for the first: no more restarts.
  env.self_test_failed = "SkylakeX";
  EXPECT_FALSE(on_self_test_failure("Prescott", BlasCoreSource::OpenBlas, env).restart);
  EXPECT_FALSE(on_self_test_failure("Haswell", BlasCoreSource::Tgpt, env).restart);
  // ... and the decision does not select again either.
  EXPECT_FALSE(decide("Prescott", avx512_cpu(), env).restart);
}

// The whole chain on the VM with kernels that always fail the self-test: it ends after
// at most two restarts (tgpt's core dropped, then nothing more).
TEST(BlasSetup, RestartChainEnds) {
  BlasEnv env;
  int restarts = 0;
  for (int process = 0; process < 10; ++process) {
    // OpenBLAS picks Prescott without OPENBLAS_CORETYPE.
    const std::string running = env.openblas_coretype.empty() ? "Prescott" : env.openblas_coretype;
    const BlasCoreDecision d = decide(running, avx512_cpu(), env);
    if (d.restart) {  // as select_blas_kernels does
      env.openblas_coretype = env.tgpt_core = d.core;
      env.openblas_choice = running;
      ++restarts;
      continue;
    }
    const SelfTestFailureAction a = on_self_test_failure(running, d.source, env);
    if (!a.restart) break;
    env.self_test_failed = running;
    env.openblas_coretype = env.tgpt_core = a.core;
    ++restarts;
  }
  EXPECT_EQ(restarts, 2);
  EXPECT_EQ(env.self_test_failed, "SkylakeX");
  EXPECT_EQ(env.openblas_coretype, "");
}

// ---- on this machine --------------------------------------------------------------------------

namespace {

std::set<std::string> cpuinfo_flags() {
  std::ifstream in("/proc/cpuinfo");
  std::string line;
  while (std::getline(in, line))
    if (line.rfind("flags", 0) == 0) {
      std::istringstream words(line.substr(line.find(':') + 1));
      std::set<std::string> flags;
      for (std::string w; words >> w;) flags.insert(w);
      return flags;
    }
  return {};
}

}  // namespace

// Linux lists a vector extension in /proc/cpuinfo only when CPUID has it and the kernel enabled
// its register state: the same as tgpt's "usable".
TEST(CpuFeatures, AgreeWithProcCpuinfo) {
  const CpuFeatures& f = cpu_features();
  if (!f.x86) GTEST_SKIP() << "not an x86 CPU";
  const std::set<std::string> flags = cpuinfo_flags();
  if (flags.empty()) GTEST_SKIP() << "no /proc/cpuinfo flags";
  auto has = [&](const char* s) { return flags.count(s) > 0; };
  EXPECT_EQ(f.sse4_2, has("sse4_2"));
  EXPECT_EQ(f.has_avx(), has("avx"));
  EXPECT_EQ(f.avx2 && f.os_ymm, has("avx2"));
  EXPECT_EQ(f.fma && f.os_ymm, has("fma"));
  EXPECT_EQ(f.avx512f && f.os_zmm, has("avx512f"));
  EXPECT_EQ(f.avx512bw && f.os_zmm, has("avx512bw"));
  EXPECT_EQ(f.avx512dq && f.os_zmm, has("avx512dq"));
  EXPECT_EQ(f.avx512vl && f.os_zmm, has("avx512vl"));
  EXPECT_EQ(f.avx512cd && f.os_zmm, has("avx512cd"));
  EXPECT_EQ(f.avx512_bf16 && f.os_zmm, has("avx512_bf16"));
  EXPECT_FALSE(f.vendor.empty());
  EXPECT_FALSE(f.summary().empty());
}

TEST(BlasSetup, SelfTestPassesOnThisMachine) {
  std::string detail;
  EXPECT_TRUE(blas_self_test(&detail)) << detail;
}

// tests/main.cpp called select_blas_kernels: unless the environment said otherwise, this process
// runs an OpenBLAS core at the CPU's level.
TEST(BlasSetup, ThisProcessRunsTheCpusLevel) {
  const BlasStatus s = blas_status();
  EXPECT_TRUE(s.self_test_ran);
  EXPECT_TRUE(s.self_test_passed) << s.self_test_detail;
  EXPECT_EQ(s.core, std::string(openblas_get_corename()));
  const BlasEnv env = BlasEnv::from_environment();
  if (s.source == BlasCoreSource::User || env.opted_out() || !env.self_test_failed.empty())
    GTEST_SKIP() << "the environment chose the core: " << s.reason;
  if (s.config.find("DYNAMIC_ARCH") == std::string::npos) GTEST_SKIP() << "no DYNAMIC_ARCH";
  const std::string best = openblas_core_for(cpu_features());
  const int level = openblas_core_level(s.core);
  if (best.empty() || level < 0) GTEST_SKIP() << "no core to select here: " << s.core;
  EXPECT_GE(level, openblas_core_level(best)) << s.core << ": " << s.reason;
}

// ---- the tools' --version ---------------------------------------------------------------------

namespace {

fs::path tool(const char* name) {
  return fs::read_symlink("/proc/self/exe").parent_path() / name;
}

// Runs `env -u ... VARS BIN --version`, returning the exit status and the output.
int run_version(const fs::path& bin, const std::string& vars, std::string* out) {
  const fs::path log = fs::temp_directory_path() / ("tgpt_version_" + std::to_string(getpid()));
  const std::string cmd =
      "env -u OPENBLAS_CORETYPE -u TGPT_BLAS_CORE -u TGPT_BLAS_OPENBLAS_CORE "
      "-u TGPT_NO_BLAS_TUNING -u TGPT_BLAS_SELF_TEST_FAILED "
      "-u TGPT_TEST_FAIL_BLAS_SELF_TEST " +
      vars + " '" + bin.string() + "' --version > '" + log.string() + "' 2>&1";
  const int st = std::system(cmd.c_str());
  std::ifstream in(log);
  std::stringstream ss;
  ss << in.rdbuf();
  *out = ss.str();
  fs::remove(log);
  return st == -1 || !WIFEXITED(st) ? -1 : WEXITSTATUS(st);
}

// The "BLAS kernels:" line's core.
std::string kernels_line(const std::string& out) {
  const size_t at = out.find("BLAS kernels:");
  if (at == std::string::npos) return "";
  return out.substr(at, out.find('\n', at) - at);
}

}  // namespace

TEST(BlasSetup, ToolsReportBlasInVersion) {
  const BlasStatus self = blas_status();
  const CpuFeatures& f = cpu_features();
  const bool dynamic = self.config.find("DYNAMIC_ARCH") != std::string::npos;
  int ran = 0;
  for (const char* name : {"tgpt-convert", "tgpt-eval", "tgpt-embed", "tgpt-tokenize"}) {
    const fs::path bin = tool(name);
    if (!fs::exists(bin)) continue;
    ++ran;
    std::string out;
    ASSERT_EQ(run_version(bin, "", &out), 0) << name << ": " << out;
    EXPECT_NE(out.find(name), std::string::npos) << out;
    EXPECT_NE(out.find("BLAS:           OpenBLAS"), std::string::npos) << out;
    EXPECT_NE(out.find("GEMM self-test: passed"), std::string::npos) << out;
    EXPECT_NE(out.find("CPU features:   " + f.summary()), std::string::npos) << out;
    // A fresh start (no tgpt variables): the core this test binary's OpenBLAS picked by itself,
    // raised to the CPU's level when that is lower.
    if (self.source != BlasCoreSource::User && !self.openblas_choice.empty()) {
      const BlasCoreDecision d = decide_blas_core(self.openblas_choice, dynamic, f, {});
      const std::string line = kernels_line(out);
      if (d.restart)
        EXPECT_EQ(line.rfind("BLAS kernels:   " + d.core + ", chosen by tgpt", 0), 0u) << out;
      else
        EXPECT_EQ(line.rfind("BLAS kernels:   " + self.openblas_choice + ", OpenBLAS's choice", 0),
                  0u)
            << out;
    }
    if (!f.x86 || !dynamic) continue;
    // The user's core is kept and said to be theirs.
    ASSERT_EQ(run_version(bin, "OPENBLAS_CORETYPE=Prescott", &out), 0) << out;
    EXPECT_EQ(kernels_line(out).rfind(
                  "BLAS kernels:   Prescott, set by the user: OPENBLAS_CORETYPE=Prescott", 0),
              0u)
        << out;
    // Opted out: OpenBLAS's own choice.
    ASSERT_EQ(run_version(bin, "TGPT_NO_BLAS_TUNING=1", &out), 0) << out;
    EXPECT_NE(kernels_line(out).find("OpenBLAS's choice (TGPT_NO_BLAS_TUNING is set)"),
              std::string::npos)
        << out;
  }
  if (ran == 0) GTEST_SKIP() << "tools not built next to the tests";
}

// Kernels that fail the self-test (simulated with the test hook under the core a fresh start
// runs): the tool falls back, warns on stderr, says so in --version, and still exits 0.
TEST(BlasSetup, ToolFallsBackWhenTheSelfTestFails) {
  const fs::path bin = tool("tgpt-tokenize");
  if (!fs::exists(bin)) GTEST_SKIP() << "tgpt-tokenize not built next to the tests";
  std::string out;
  ASSERT_EQ(run_version(bin, "", &out), 0) << out;
  const std::string line = kernels_line(out);
  const std::string fresh_core =
      line.substr(16, line.find(',') == std::string::npos ? 0 : line.find(',') - 16);
  ASSERT_FALSE(fresh_core.empty()) << out;
  ASSERT_EQ(run_version(bin, "TGPT_TEST_FAIL_BLAS_SELF_TEST=" + fresh_core, &out), 0) << out;
  EXPECT_NE(out.find("warning: OpenBLAS core " + fresh_core), std::string::npos) << out;
  if (line.find("chosen by tgpt") != std::string::npos) {
    // tgpt's core failed: OpenBLAS's own choice, and no further restart.
    EXPECT_NE(out.find("restarting with OpenBLAS's own choice"), std::string::npos) << out;
    EXPECT_NE(kernels_line(out).find("OpenBLAS's choice: core " + fresh_core +
                                     " failed tgpt's GEMM self-test earlier"),
              std::string::npos)
        << out;
    EXPECT_NE(out.find("GEMM self-test: passed"), std::string::npos) << out;
  } else if (fresh_core != "Prescott") {
    // OpenBLAS's core failed: the generic kernels.
    EXPECT_EQ(
        kernels_line(out).rfind(
            "BLAS kernels:   Prescott, chosen by tgpt after core " + fresh_core + " failed", 0),
        0u)
        << out;
  } else {
    EXPECT_NE(out.find("GEMM self-test: FAILED"), std::string::npos) << out;
  }
}
