/*
 * main.cpp — the GoogleTest main of tgpt_tests and tgpt_cuda_tests: selects the OpenBLAS kernels
 * for this CPU first (kernels/cpu/blas_setup.h; may re-execute the binary once), so the tests run
 * the GEMM kernels the tools run.
 */
#include <gtest/gtest.h>

#include "kernels/cpu/blas_setup.h"

int main(int argc, char** argv) {
  tgpt::select_blas_kernels(argc, argv);
  testing::InitGoogleTest(&argc, argv);
  return RUN_ALL_TESTS();
}
