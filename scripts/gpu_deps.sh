#!/usr/bin/env bash
# gpu_deps.sh — gathers, on this Debian 12 machine, the build dependencies that the GPU machine's
# image lacks (OpenBLAS (OpenMP build) and its Fortran runtime, zlib, libjpeg-turbo,
# nlohmann-json, stb, CLI11 headers, GoogleTest sources) into .gpu-deps/ (git-ignored). Carry that folder to the GPU
# machine, with .pydeps/ (ftfy for the tokenizer's golden reference, installed by
# scripts/install-deps.sh): `bash scripts/gpu_check.sh $OUT` with carry [".gpu-deps", ".pydeps"].
# scripts/gpu_check.sh configures with -DTGPT_DEPS_PREFIX=.gpu-deps when it is present.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-deps.sh
arch=$(gcc -dumpmachine)  # x86_64-linux-gnu
dest=.gpu-deps
rm -rf "$dest"
mkdir -p "$dest/include" "$dest/lib" "$dest/share/cmake"
cp -r /usr/include/nlohmann /usr/include/stb /usr/include/CLI "$dest/include/"
cp /usr/include/zlib.h /usr/include/zconf.h "$dest/include/"
cp /usr/include/jpeglib.h /usr/include/jmorecfg.h /usr/include/jerror.h \
  "/usr/include/$arch/jconfig.h" "$dest/include/"
cp -L "/usr/include/$arch/openblas-openmp/cblas.h" "/usr/include/$arch/openblas-openmp/openblas_config.h" \
  "$dest/include/"
cp -L "/usr/lib/$arch/openblas-openmp/libopenblas.so.0" "$dest/lib/libopenblas.so.0"
ln -s libopenblas.so.0 "$dest/lib/libopenblas.so"
cp -L "/usr/lib/$arch/libgfortran.so.5" "/usr/lib/$arch/libquadmath.so.0" "$dest/lib/"
cp -L "/lib/$arch/libz.so.1" "$dest/lib/libz.so.1"
ln -s libz.so.1 "$dest/lib/libz.so"
cp -L "/usr/lib/$arch/libjpeg.so.62" "$dest/lib/libjpeg.so.62"
ln -s libjpeg.so.62 "$dest/lib/libjpeg.so"
cp -r /usr/share/cmake/nlohmann_json "$dest/share/cmake/"
cp -r /usr/src/googletest "$dest/googletest"
du -sh "$dest"
