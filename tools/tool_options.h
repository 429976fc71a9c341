/*
 * tool_options.h — command-line choices the model tools share: where the model runs
 * (--device auto|cpu|cuda) and its compute precision (--precision auto|f32|f16|bf16).
 * auto device: CUDA when a device is present, else the CPU. auto precision: f32 on the CPU,
 * f16 on CUDA (what openai/CLIP's clip.load does on a GPU: OpenAI's f16 weights stay f16).
 * An explicit cuda without a device fails at model load with a message saying so.
 * Every tool also takes --version: its name and what it computes with (the BLAS library, the
 * OpenBLAS kernels in use and who chose them, the GEMM self-test, the CPU's features).
 */
#pragma once

#include <CLI/CLI.hpp>
#include <string>

#include "base/device.h"
#include "base/dtype.h"
#include "kernels/cpu/blas_setup.h"

namespace tgpt::tools {

struct PlacementOptions {
  std::string device = "auto", precision = "auto";
};

struct Placement {
  Device device = Device::CPU;
  DType dtype = DType::f32;
  std::string str() const {
    return std::string(device == Device::CUDA ? "cuda" : "cpu") + " (" + dtype_name(dtype) + ")";
  }
};

// --version: prints `name`, then blas_report() (kernels/cpu/blas_setup.h), and exits 0.
inline void add_version_flag(CLI::App& app, const std::string& name) {
  app.set_version_flag("--version", [name] {
    std::string r = name + " (tgpt)\n" + blas_report();
    while (!r.empty() && r.back() == '\n') r.pop_back();
    return r;
  });
}

inline void add_placement_options(CLI::App& app, PlacementOptions& o) {
  app.add_option("--device", o.device, "where the model runs: auto (cuda if present), cpu, cuda")
      ->check(CLI::IsMember({"auto", "cpu", "cuda"}));
  app.add_option("--precision", o.precision,
                 "compute precision: auto (f32 on cpu, f16 on cuda), f32, f16, bf16")
      ->check(CLI::IsMember({"auto", "f32", "f16", "bf16"}));
}

inline Placement resolve_placement(const PlacementOptions& o) {
  Placement p;
  if (o.device == "cuda" || (o.device == "auto" && cuda_available())) p.device = Device::CUDA;
  if (o.precision == "f16")
    p.dtype = DType::f16;
  else if (o.precision == "bf16")
    p.dtype = DType::bf16;
  else if (o.precision == "auto" && p.device == Device::CUDA)
    p.dtype = DType::f16;
  return p;
}

}  // namespace tgpt::tools
