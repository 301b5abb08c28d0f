#!/usr/bin/env bash
# Installs the Debian 12 packages zflow needs, if any are missing, and makes sure
# LibTorch's BLAS alternative points at OpenBLAS rather than the slow reference BLAS.
# Run as root, or as a user with sudo.
set -euo pipefail

packages=(
  build-essential cmake ninja-build ccache pkg-config
  libtorch-dev libopenblas0-pthread libgloo-dev python3-torch
  libcli11-dev nlohmann-json3-dev libfmt-dev libspdlog-dev libstb-dev zlib1g-dev libpng-dev
  libgtest-dev libgmock-dev libbenchmark-dev libxml2-dev
  dataset-fashion-mnist time chromium
)

sudo_cmd=()
if [ "$(id -u)" -ne 0 ]; then
  command -v sudo >/dev/null 2>&1 || { echo "setup: run as root or install sudo" >&2; exit 1; }
  sudo_cmd=(sudo)
fi

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done

if [ "${#missing[@]}" -gt 0 ]; then
  echo "setup: installing ${missing[*]}" >&2
  export DEBIAN_FRONTEND=noninteractive
  "${sudo_cmd[@]}" apt-get update -qq
  "${sudo_cmd[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# Debian's LibTorch calls whatever libblas.so.3 the alternatives system selects.
# Installing OpenBLAS normally raises it above the reference BLAS; make that explicit.
arch_dir=/usr/lib/x86_64-linux-gnu
if [ -d "$arch_dir/openblas-pthread" ] && command -v update-alternatives >/dev/null 2>&1; then
  for name in libblas.so.3-x86_64-linux-gnu liblapack.so.3-x86_64-linux-gnu; do
    lib=${name%%-x86_64-linux-gnu}
    target="$arch_dir/openblas-pthread/$lib"
    if [ -e "$target" ] && update-alternatives --query "$name" >/dev/null 2>&1; then
      current=$(update-alternatives --query "$name" | awk '/^Value:/ {print $2}')
      [ "$current" = "$target" ] || "${sudo_cmd[@]}" update-alternatives --set "$name" "$target" >/dev/null
    fi
  done
fi
