/*
 * activation.h — the one activation enum of tgpt, shared by the CPU and CUDA kernels, the engine's
 * ops (bias_activation, the MLP layer) and model configs (CLIP's quick_gelu or gelu).
 *
 *   relu        max(x, 0)
 *   gelu        x · ½ · (1 + erf(x / √2))        (exact, PyTorch's default GELU)
 *   quick_gelu  x · sigmoid(1.702 x)              (OpenAI CLIP)
 *
 * Plain C++17 (included by CUDA sources).
 */
#pragma once

#include <cstdint>
#include <string>

namespace tgpt {

enum class Activation : uint8_t { relu, gelu, quick_gelu };

// "relu" / "gelu" / "quick_gelu"
inline const char* activation_name(Activation a) {
  switch (a) {
    case Activation::relu: return "relu";
    case Activation::gelu: return "gelu";
    case Activation::quick_gelu: return "quick_gelu";
  }
  return "?";
}

// Parses one of the names above; false for anything else.
inline bool parse_activation(const std::string& s, Activation* out) {
  for (Activation a : {Activation::relu, Activation::gelu, Activation::quick_gelu}) {
    if (s == activation_name(a)) {
      *out = a;
      return true;
    }
  }
  return false;
}

}  // namespace tgpt
