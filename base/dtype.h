/*
 * dtype.h — element types of tgpt tensors and scalar conversions.
 *
 * f32 is the working type; f64 exists on the CPU for gradient checks; f16 and bf16 are storage
 * types (weights, activations on the GPU) that CPU kernels convert to f32; i32/i64 hold token ids
 * and indices; u8 holds images. Conversions f32<->f16/bf16 round to nearest even, as PyTorch does.
 */
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <string>

namespace tgpt {

enum class DType : uint8_t { f32, f64, f16, bf16, i32, i64, u8 };

size_t dtype_size(DType t);
const char* dtype_name(DType t);  // "f32", "f64", ...
bool dtype_is_float(DType t);     // f32, f64, f16, bf16

// 16-bit float storage types. They are plain bit containers; arithmetic happens in f32.
struct f16 {
  uint16_t bits;
};
struct bf16 {
  uint16_t bits;
};

inline float bf16_to_f32(bf16 h) {
  uint32_t u = static_cast<uint32_t>(h.bits) << 16;
  float f;
  std::memcpy(&f, &u, 4);
  return f;
}

inline bf16 f32_to_bf16(float f) {
  uint32_t u;
  std::memcpy(&u, &f, 4);
  if ((u & 0x7fffffffu) > 0x7f800000u) return bf16{static_cast<uint16_t>((u >> 16) | 0x40)};  // NaN
  uint32_t rounding_bias = 0x7fffu + ((u >> 16) & 1u);  // round to nearest even
  return bf16{static_cast<uint16_t>((u + rounding_bias) >> 16)};
}

float f16_to_f32(f16 h);
f16 f32_to_f16(float f);

// Maps a C++ element type to its DType.
template <typename T>
struct dtype_of;
template <>
struct dtype_of<float> {
  static constexpr DType value = DType::f32;
};
template <>
struct dtype_of<double> {
  static constexpr DType value = DType::f64;
};
template <>
struct dtype_of<f16> {
  static constexpr DType value = DType::f16;
};
template <>
struct dtype_of<bf16> {
  static constexpr DType value = DType::bf16;
};
template <>
struct dtype_of<int32_t> {
  static constexpr DType value = DType::i32;
};
template <>
struct dtype_of<int64_t> {
  static constexpr DType value = DType::i64;
};
template <>
struct dtype_of<uint8_t> {
  static constexpr DType value = DType::u8;
};

// Reads element i of a buffer of dtype t as double / writes a double into it (casts and rounds).
double load_as_double(const void* data, DType t, size_t i);
void store_from_double(void* data, DType t, size_t i, double v);

// Converts n elements between dtypes (any pair; float->int truncates toward zero like a C cast).
void convert_elements(const void* src, DType src_t, void* dst, DType dst_t, size_t n);

}  // namespace tgpt
