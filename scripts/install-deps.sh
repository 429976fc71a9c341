#!/usr/bin/env bash
# install-deps.sh — installs tgpt's build and test dependencies from Debian 12 packages.
# Idempotent: does nothing when everything is already installed. CUDA is not installed here;
# the build uses /usr/local/cuda when it exists.
set -euo pipefail

PACKAGES=(
  cmake ninja-build g++ pkg-config
  libopenblas-dev libopenblas-openmp-dev libcli11-dev libstb-dev nlohmann-json3-dev zlib1g-dev
  libgtest-dev libbenchmark-dev
  python3 python3-torch python3-numpy python3-pil python3-torchvision
)

missing=()
for p in "${PACKAGES[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done
if [ ${#missing[@]} -eq 0 ]; then
  exit 0
fi
echo "install-deps: installing ${missing[*]}"
SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -q
$SUDO apt-get install -y -q --no-install-recommends "${missing[@]}"
