/*
 * cpu_features.h — what the CPU running tgpt can execute: the x86-64 vector extensions that
 * matter to GEMM kernels (AVX, AVX2, FMA, AVX-512 F/CD/BW/DQ/VL, AVX512-BF16, AMX), read with
 * CPUID, and whether the operating system saves the registers they use (XGETBV: XCR0's YMM,
 * ZMM/opmask and AMX tile bits). A feature counts as usable only when both say yes: a hypervisor
 * or kernel that does not enable the AVX-512 state makes AVX-512 code fault even though CPUID
 * lists it.
 *
 * On other architectures every flag is false and `x86` says so.
 */
#pragma once

#include <string>

namespace tgpt {

struct CpuFeatures {
  bool x86 = false;           // x86-64 (or x86): the fields below were read from CPUID
  std::string vendor;         // "GenuineIntel", "AuthenticAMD", ...
  std::string brand;          // CPUID brand string, e.g. "Intel(R) Xeon(R) Processor"
  int family = 0, model = 0;  // display family and model (extended fields folded in)

  // CPUID says the instructions exist.
  bool sse3 = false, ssse3 = false, sse4_1 = false, sse4_2 = false;
  bool avx = false, avx2 = false, fma = false, f16c = false;
  bool avx512f = false, avx512cd = false, avx512bw = false, avx512dq = false, avx512vl = false;
  bool avx512_bf16 = false, avx512_fp16 = false;
  bool amx_tile = false, amx_bf16 = false, amx_int8 = false;

  // The OS saves the register state (XCR0): YMM (AVX), ZMM + opmask (AVX-512), AMX tiles.
  bool os_ymm = false, os_zmm = false, os_amx = false;

  // Usable: instructions present and their registers enabled by the OS.
  bool has_avx() const { return avx && os_ymm; }
  bool has_avx2_fma() const { return avx2 && fma && has_avx(); }
  // The Skylake-X set that AVX-512 GEMM kernels use.
  bool has_avx512() const {
    return avx512f && avx512cd && avx512bw && avx512dq && avx512vl && os_zmm && has_avx2_fma();
  }
  bool has_avx512_bf16() const { return avx512_bf16 && has_avx512(); }
  bool has_amx_bf16() const { return amx_tile && amx_bf16 && os_amx; }

  // One line, e.g. "AVX AVX2 FMA F16C AVX-512(F CD BW DQ VL) AVX512-BF16 AVX512-FP16"; features
  // that CPUID lists but the OS has not enabled are marked "(not enabled by the OS)".
  std::string summary() const;
};

// Reads CPUID/XGETBV once and caches the result.
const CpuFeatures& cpu_features();

// Reads them now (no caching).
CpuFeatures detect_cpu_features();

}  // namespace tgpt
