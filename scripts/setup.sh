#!/usr/bin/env bash
# Installs the Debian packages emlab needs (if missing) and builds it into build/ (or $EMLAB_BUILD_DIR).
set -euo pipefail
cd "$(dirname "$0")/.."

PACKAGES=(g++ cmake ninja-build pkg-config
  libtorch-dev libopenblas0-openmp   # tensors/autograd; OpenBLAS-OpenMP makes matmul ~25x faster than the reference BLAS
  nlohmann-json3-dev libyaml-cpp-dev libpcre2-dev libicu-dev libcurl4-openssl-dev libcpp-httplib-dev
  libcli11-dev libgtest-dev libgmock-dev zlib1g-dev
  libgloo-dev                        # c10d ProcessGroupGloo headers: data-parallel training on CPU
  libgoogle-perftools-dev)           # tcmalloc: faster training steps than glibc malloc (bench/malloc_bench.sh)
[ "${EMLAB_WITH_PYTORCH:-0}" = 1 ] && PACKAGES+=(python3-torch)  # reference for bench/

missing=()
for p in "${PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "installing: ${missing[*]}"
  SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  $SUDO apt-get update -q
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q --no-install-recommends "${missing[@]}"
fi

BUILD_DIR="${EMLAB_BUILD_DIR:-build}"
cmake -S . -B "$BUILD_DIR" -G Ninja -DCMAKE_BUILD_TYPE=Release ${EMLAB_CMAKE_ARGS:-} >/dev/null
cmake --build "$BUILD_DIR" -j "$(nproc)"
