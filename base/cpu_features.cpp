/*
 * cpu_features.cpp — CPUID / XGETBV reading for cpu_features.h (bit positions from the Intel SDM,
 * vol. 2A "CPUID", and vol. 1 13.3 "XCR0").
 */
#include "base/cpu_features.h"

#include <cstdint>
#include <cstring>

#if defined(__x86_64__) || defined(__i386__)
#include <cpuid.h>
#define TGPT_X86 1
#endif

namespace tgpt {

namespace {

#ifdef TGPT_X86
struct Regs {
  unsigned a = 0, b = 0, c = 0, d = 0;
};

Regs cpuid(unsigned leaf, unsigned subleaf = 0) {
  Regs r;
  __cpuid_count(leaf, subleaf, r.a, r.b, r.c, r.d);
  return r;
}

bool bit(unsigned reg, int i) {
  return (reg >> i) & 1u;
}

uint64_t xgetbv0() {
  unsigned lo = 0, hi = 0;
  __asm__ volatile("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
  return (static_cast<uint64_t>(hi) << 32) | lo;
}
#endif

}  // namespace

CpuFeatures detect_cpu_features() {
  CpuFeatures f;
#ifdef TGPT_X86
  f.x86 = true;
  const Regs r0 = cpuid(0);
  const unsigned max_leaf = r0.a;
  char vendor[13] = {};
  std::memcpy(vendor, &r0.b, 4);
  std::memcpy(vendor + 4, &r0.d, 4);
  std::memcpy(vendor + 8, &r0.c, 4);
  f.vendor = vendor;
  if (max_leaf >= 1) {
    const Regs r1 = cpuid(1);
    const unsigned base_family = (r1.a >> 8) & 0xF, base_model = (r1.a >> 4) & 0xF;
    f.family =
        static_cast<int>(base_family == 0xF ? base_family + ((r1.a >> 20) & 0xFF) : base_family);
    f.model = static_cast<int>(base_family == 0x6 || base_family == 0xF
                                   ? base_model + (((r1.a >> 16) & 0xF) << 4)
                                   : base_model);
    f.sse3 = bit(r1.c, 0);
    f.ssse3 = bit(r1.c, 9);
    f.fma = bit(r1.c, 12);
    f.sse4_1 = bit(r1.c, 19);
    f.sse4_2 = bit(r1.c, 20);
    f.avx = bit(r1.c, 28);
    f.f16c = bit(r1.c, 29);
    if (bit(r1.c, 27)) {  // OSXSAVE: XGETBV is available
      const uint64_t xcr0 = xgetbv0();
      f.os_ymm = (xcr0 & 0x6) == 0x6;          // SSE + AVX state
      f.os_zmm = (xcr0 & 0xE6) == 0xE6;        // + opmask, ZMM0-15 upper, ZMM16-31
      f.os_amx = (xcr0 & 0x60000) == 0x60000;  // XTILECFG + XTILEDATA
    }
  }
  if (max_leaf >= 7) {
    const Regs r7 = cpuid(7, 0);
    f.avx2 = bit(r7.b, 5);
    f.avx512f = bit(r7.b, 16);
    f.avx512dq = bit(r7.b, 17);
    f.avx512cd = bit(r7.b, 28);
    f.avx512bw = bit(r7.b, 30);
    f.avx512vl = bit(r7.b, 31);
    f.amx_bf16 = bit(r7.d, 22);
    f.avx512_fp16 = bit(r7.d, 23);
    f.amx_tile = bit(r7.d, 24);
    f.amx_int8 = bit(r7.d, 25);
    if (r7.a >= 1) f.avx512_bf16 = bit(cpuid(7, 1).a, 5);
  }
  if (cpuid(0x80000000).a >= 0x80000004) {
    char brand[49] = {};
    for (unsigned i = 0; i < 3; ++i) {
      const Regs r = cpuid(0x80000002 + i);
      std::memcpy(brand + 16 * i, &r.a, 4);
      std::memcpy(brand + 16 * i + 4, &r.b, 4);
      std::memcpy(brand + 16 * i + 8, &r.c, 4);
      std::memcpy(brand + 16 * i + 12, &r.d, 4);
    }
    std::string b = brand;
    const size_t first = b.find_first_not_of(' '), last = b.find_last_not_of(' ');
    f.brand = first == std::string::npos ? "" : b.substr(first, last - first + 1);
  }
#endif
  return f;
}

const CpuFeatures& cpu_features() {
  static const CpuFeatures f = detect_cpu_features();
  return f;
}

std::string CpuFeatures::summary() const {
  if (!x86) return "not x86-64 (no x86 vector features)";
  std::string s;
  auto add = [&s](bool on, const char* name) {
    if (!on) return;
    if (!s.empty()) s += ' ';
    s += name;
  };
  add(sse4_2, "SSE4.2");
  add(has_avx(), "AVX");
  add(avx2 && has_avx(), "AVX2");
  add(fma && has_avx(), "FMA");
  add(f16c && has_avx(), "F16C");
  if (avx512f && os_zmm) {
    std::string parts = "AVX-512(F";
    if (avx512cd) parts += " CD";
    if (avx512bw) parts += " BW";
    if (avx512dq) parts += " DQ";
    if (avx512vl) parts += " VL";
    parts += ')';
    add(true, parts.c_str());
  }
  add(avx512_bf16 && avx512f && os_zmm, "AVX512-BF16");
  add(avx512_fp16 && avx512f && os_zmm, "AVX512-FP16");
  add(amx_tile && os_amx, "AMX-TILE");
  add(amx_bf16 && os_amx, "AMX-BF16");
  add(amx_int8 && os_amx, "AMX-INT8");
  if (s.empty()) s = "no AVX";
  std::string off;
  if (avx && !os_ymm) off += " AVX";
  if (avx512f && !os_zmm) off += " AVX-512";
  if ((amx_tile || amx_bf16) && !os_amx) off += " AMX";
  if (!off.empty()) s += "; listed by CPUID but not enabled by the OS:" + off;
  return s;
}

}  // namespace tgpt
