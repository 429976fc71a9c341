/*
 * dtype.cpp — dtype sizes and names, f16 conversion, generic element conversion.
 */
#include "base/dtype.h"

#include <cmath>

#include "base/error.h"

namespace tgpt {

size_t dtype_size(DType t) {
  switch (t) {
    case DType::f32: return 4;
    case DType::f64: return 8;
    case DType::f16: return 2;
    case DType::bf16: return 2;
    case DType::i32: return 4;
    case DType::i64: return 8;
    case DType::u8: return 1;
  }
  TGPT_FAIL("unknown dtype ", static_cast<int>(t));
}

const char* dtype_name(DType t) {
  switch (t) {
    case DType::f32: return "f32";
    case DType::f64: return "f64";
    case DType::f16: return "f16";
    case DType::bf16: return "bf16";
    case DType::i32: return "i32";
    case DType::i64: return "i64";
    case DType::u8: return "u8";
  }
  return "?";
}

bool dtype_is_float(DType t) {
  return t == DType::f32 || t == DType::f64 || t == DType::f16 || t == DType::bf16;
}

float f16_to_f32(f16 h) {
  uint32_t sign = (h.bits & 0x8000u) << 16;
  uint32_t exp = (h.bits >> 10) & 0x1fu;
  uint32_t mant = h.bits & 0x3ffu;
  uint32_t u;
  if (exp == 0) {
    if (mant == 0) {
      u = sign;
    } else {  // subnormal: normalise
      int e = -1;
      do {
        ++e;
        mant <<= 1;
      } while ((mant & 0x400u) == 0);
      u = sign | static_cast<uint32_t>(127 - 15 - e) << 23 | (mant & 0x3ffu) << 13;
    }
  } else if (exp == 0x1f) {
    u = sign | 0x7f800000u | mant << 13;  // inf / nan
  } else {
    u = sign | (exp + 127 - 15) << 23 | mant << 13;
  }
  float f;
  std::memcpy(&f, &u, 4);
  return f;
}

f16 f32_to_f16(float f) {
  uint32_t u;
  std::memcpy(&u, &f, 4);
  uint16_t sign = static_cast<uint16_t>((u >> 16) & 0x8000u);
  uint32_t absu = u & 0x7fffffffu;
  if (absu > 0x7f800000u) return f16{static_cast<uint16_t>(sign | 0x7e00u)};  // NaN
  if (absu >= 0x477ff000u) return f16{static_cast<uint16_t>(sign | 0x7c00u)};  // overflow -> inf
  if (absu < 0x38800000u) {
    // Result is subnormal (or zero) in f16: value / 2^-24 rounded to nearest even.
    float a;
    std::memcpy(&a, &absu, 4);
    float scaled = a * 16777216.0f;  // exact (power of two scaling)
    float r = std::nearbyint(scaled);  // default rounding mode: nearest even
    return f16{static_cast<uint16_t>(sign | static_cast<uint16_t>(r))};
  }
  uint32_t exp = (absu >> 23) - 127 + 15;
  uint32_t mant = absu & 0x7fffffu;
  uint32_t h = exp << 10 | mant >> 13;
  uint32_t rest = mant & 0x1fffu;
  if (rest > 0x1000u || (rest == 0x1000u && (h & 1u))) ++h;  // may carry into exponent: correct
  return f16{static_cast<uint16_t>(sign | h)};
}

double load_as_double(const void* data, DType t, size_t i) {
  switch (t) {
    case DType::f32: return static_cast<const float*>(data)[i];
    case DType::f64: return static_cast<const double*>(data)[i];
    case DType::f16: return f16_to_f32(static_cast<const f16*>(data)[i]);
    case DType::bf16: return bf16_to_f32(static_cast<const bf16*>(data)[i]);
    case DType::i32: return static_cast<const int32_t*>(data)[i];
    case DType::i64: return static_cast<double>(static_cast<const int64_t*>(data)[i]);
    case DType::u8: return static_cast<const uint8_t*>(data)[i];
  }
  TGPT_FAIL("unknown dtype");
}

void store_from_double(void* data, DType t, size_t i, double v) {
  switch (t) {
    case DType::f32: static_cast<float*>(data)[i] = static_cast<float>(v); return;
    case DType::f64: static_cast<double*>(data)[i] = v; return;
    case DType::f16: static_cast<f16*>(data)[i] = f32_to_f16(static_cast<float>(v)); return;
    case DType::bf16: static_cast<bf16*>(data)[i] = f32_to_bf16(static_cast<float>(v)); return;
    case DType::i32: static_cast<int32_t*>(data)[i] = static_cast<int32_t>(v); return;
    case DType::i64: static_cast<int64_t*>(data)[i] = static_cast<int64_t>(v); return;
    case DType::u8: static_cast<uint8_t*>(data)[i] = static_cast<uint8_t>(static_cast<int64_t>(v)); return;
  }
  TGPT_FAIL("unknown dtype");
}

namespace {
template <typename S, typename D>
void convert_loop(const S* s, D* d, size_t n) {
  for (size_t i = 0; i < n; ++i) d[i] = static_cast<D>(s[i]);
}
}  // namespace

void convert_elements(const void* src, DType st, void* dst, DType dt, size_t n) {
  if (st == dt) {
    std::memcpy(dst, src, n * dtype_size(st));
    return;
  }
  // Fast paths for the conversions on hot paths; everything else goes through double.
  if (st == DType::f16 && dt == DType::f32) {
    auto* s = static_cast<const f16*>(src);
    auto* d = static_cast<float*>(dst);
    for (size_t i = 0; i < n; ++i) d[i] = f16_to_f32(s[i]);
  } else if (st == DType::bf16 && dt == DType::f32) {
    auto* s = static_cast<const bf16*>(src);
    auto* d = static_cast<float*>(dst);
    for (size_t i = 0; i < n; ++i) d[i] = bf16_to_f32(s[i]);
  } else if (st == DType::f32 && dt == DType::f16) {
    auto* s = static_cast<const float*>(src);
    auto* d = static_cast<f16*>(dst);
    for (size_t i = 0; i < n; ++i) d[i] = f32_to_f16(s[i]);
  } else if (st == DType::f32 && dt == DType::bf16) {
    auto* s = static_cast<const float*>(src);
    auto* d = static_cast<bf16*>(dst);
    for (size_t i = 0; i < n; ++i) d[i] = f32_to_bf16(s[i]);
  } else if (st == DType::f32 && dt == DType::f64) {
    convert_loop(static_cast<const float*>(src), static_cast<double*>(dst), n);
  } else if (st == DType::f64 && dt == DType::f32) {
    convert_loop(static_cast<const double*>(src), static_cast<float*>(dst), n);
  } else {
    for (size_t i = 0; i < n; ++i) store_from_double(dst, dt, i, load_as_double(src, st, i));
  }
}

}  // namespace tgpt
