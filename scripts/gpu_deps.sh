#!/usr/bin/env bash
# gpu_deps.sh — gathers, on this Debian 12 machine, the build dependencies that the GPU machine's
# image lacks (OpenBLAS (OpenMP build) and its Fortran runtime, oneDNN, zlib, libjpeg-turbo, libwebp,
# libtiff and the codec libraries it links, nlohmann-json, stb, CLI11 headers, yaml-cpp, expat,
# GoogleTest sources) into .gpu-deps/
# (git-ignored). Carry that folder to the GPU machine, with .pydeps/ (ftfy for the tokenizer's
# golden reference, installed by scripts/install-deps.sh): `bash scripts/gpu_check.sh $OUT` with
# carry [".gpu-deps", ".pydeps"].
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
# oneDNN (libdnnl-dev) and the OpenCL loader libdnnl.so.2 links (no OpenCL device is used).
# libdnnl.so.2 (40 MB) travels xz-compressed (7 MB) to keep the carried folder under the 64 MiB a
# device call carries; scripts/gpu_check.sh unpacks it (libdnnl.so is the link to the unpacked).
mkdir -p "$dest/include/oneapi"
cp -r /usr/include/oneapi/dnnl "$dest/include/oneapi/"
xz -9 -T2 -c "/usr/lib/$arch/libdnnl.so.2" > "$dest/lib/libdnnl.so.2.xz"
ln -s libdnnl.so.2 "$dest/lib/libdnnl.so"
cp -L "/usr/lib/$arch/libOpenCL.so.1" "$dest/lib/libOpenCL.so.1"
cp -L "/usr/lib/$arch/libgfortran.so.5" "/usr/lib/$arch/libquadmath.so.0" "$dest/lib/"
cp -L "/lib/$arch/libz.so.1" "$dest/lib/libz.so.1"
ln -s libz.so.1 "$dest/lib/libz.so"
cp -L "/usr/lib/$arch/libjpeg.so.62" "$dest/lib/libjpeg.so.62"
ln -s libjpeg.so.62 "$dest/lib/libjpeg.so"
# libwebp (+ libwebpdemux) and libtiff with the codec libraries libtiff.so.6 links
cp -r /usr/include/webp "$dest/include/"
cp "/usr/include/$arch/tiff.h" "/usr/include/$arch/tiffconf.h" "/usr/include/$arch/tiffio.h" \
  "/usr/include/$arch/tiffvers.h" "$dest/include/"
for so in libwebp.so.7 libwebpdemux.so.2 libtiff.so.6 libzstd.so.1 liblzma.so.5 \
  libLerc.so.4 libjbig.so.0 libdeflate.so.0; do
  if [ -e "/usr/lib/$arch/$so" ]; then cp -L "/usr/lib/$arch/$so" "$dest/lib/$so"; fi
done
ln -s libwebp.so.7 "$dest/lib/libwebp.so"
ln -s libwebpdemux.so.2 "$dest/lib/libwebpdemux.so"
ln -s libtiff.so.6 "$dest/lib/libtiff.so"
cp -r /usr/share/cmake/nlohmann_json "$dest/share/cmake/"
# yaml-cpp with its CMake config (which finds the library at <prefix>/lib/<arch>/ from its own path)
cp -r /usr/include/yaml-cpp "$dest/include/"
mkdir -p "$dest/lib/$arch/cmake"
cp -r "/usr/lib/$arch/cmake/yaml-cpp" "$dest/lib/$arch/cmake/"
yaml_so=$(basename "$(readlink -f "/usr/lib/$arch/libyaml-cpp.so")")  # libyaml-cpp.so.0.7.0
yaml_soname=$(basename "$(readlink "/usr/lib/$arch/libyaml-cpp.so")")  # libyaml-cpp.so.0.7
cp "/usr/lib/$arch/$yaml_so" "$dest/lib/$arch/"
ln -s "$yaml_so" "$dest/lib/$arch/$yaml_soname"
ln -s "$arch/$yaml_so" "$dest/lib/$yaml_soname"  # found through LD_LIBRARY_PATH=.gpu-deps/lib
# expat (the tests parse the SVG plots of tgpt-eval summarize)
cp /usr/include/expat.h /usr/include/expat_external.h "$dest/include/"
cp -L "/usr/lib/$arch/libexpat.so.1" "$dest/lib/libexpat.so.1"
ln -s libexpat.so.1 "$dest/lib/libexpat.so"
cp -r /usr/src/googletest "$dest/googletest"
du -sh "$dest"
