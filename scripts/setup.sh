#!/usr/bin/env bash
# Installs the system packages Kiln needs on Debian 12. As root it installs what is missing;
# otherwise it prints the exact apt-get line and fails, so nothing half-builds.
set -euo pipefail
# zlib1g-dev is one of Swift's own Linux prerequisites; it is checked so a partial install still builds.
# gcc is the C compiler the C99 backend (KILN_BACKEND=c) compiles kernels with, and the one
# `kiln compile` builds an artifact's runtime library with. gcc-aarch64-linux-gnu (with its libc,
# libc6-dev-arm64-cross) and qemu-user let the tests cross-compile an artifact and run it.
# libopenmpi-dev and openmpi-bin (Open MPI, mpirun): KilnDistributed builds on it and its tests
# train under `mpirun -np 2` and `-np 4`.
packages=(llvm-15-dev libopenblas-dev ocl-icd-opencl-dev pocl-opencl-icd zlib1g-dev gcc gcc-aarch64-linux-gnu libc6-dev-arm64-cross qemu-user libopenmpi-dev openmpi-bin)
missing=()
for p in "${packages[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0
if [ "$(id -u)" -eq 0 ]; then
    echo "kiln setup: installing ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${missing[@]}"
else
    echo "kiln setup: missing system packages. Run:" >&2
    echo "  sudo apt-get update && sudo apt-get install -y ${missing[*]}" >&2
    exit 1
fi
