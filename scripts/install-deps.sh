#!/usr/bin/env bash
# install-deps.sh — installs tgpt's build and test dependencies from Debian 12 packages, and the
# test-only Python package ftfy (not in Debian 12) from PyPI into the repo's .pydeps, for the
# tokenizer's golden reference. Idempotent: does nothing when everything is already installed.
# CUDA is not installed here; the build uses /usr/local/cuda when it exists.
set -euo pipefail

repo="$(cd "$(dirname "$0")/.." && pwd)"
FTFY_VERSION=6.3.1

PACKAGES=(
  cmake ninja-build g++ pkg-config
  libopenblas-dev libopenblas-openmp-dev libdnnl-dev libcli11-dev libstb-dev nlohmann-json3-dev zlib1g-dev
  libjpeg62-turbo-dev libwebp-dev libtiff-dev libyaml-cpp-dev
  libgtest-dev libexpat1-dev libbenchmark-dev
  python3 python3-torch python3-numpy python3-pil python3-torchvision python3-pip
)

missing=()
for p in "${PACKAGES[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done
if [ ${#missing[@]} -ne 0 ]; then
  echo "install-deps: installing ${missing[*]}"
  SUDO=""
  if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
  export DEBIAN_FRONTEND=noninteractive
  $SUDO apt-get update -q
  $SUDO apt-get install -y -q --no-install-recommends "${missing[@]}"
fi

# ftfy for tests/golden/clip_tokenizer_ref.py (CLIP cleans text with ftfy.fix_text).
if [ ! -d "$repo/.pydeps/ftfy-$FTFY_VERSION.dist-info" ]; then
  echo "install-deps: installing ftfy==$FTFY_VERSION into $repo/.pydeps"
  /usr/bin/python3 -m pip install --quiet --upgrade --target "$repo/.pydeps" "ftfy==$FTFY_VERSION"
fi
