#!/usr/bin/env bash
# Installs the Debian packages Fovea builds and tests on, if any is missing.
# oneDNN (kernels), libjpeg-turbo + libpng + zlib (codecs), Fashion-MNIST (real data for the quick start and tests),
# ONNX's onnx.proto and conformance cases (libonnx-dev, libonnx-testdata: the ONNX tests), Chromium and its WebDriver
# (the browser test of fovea serve's page), wrk (scripts/load-serve.sh), Open MPI (data-parallel training: mpirun,
# libmpi and its headers).
set -euo pipefail
packages=(libdnnl-dev libjpeg62-turbo-dev libturbojpeg0-dev libpng-dev zlib1g-dev dataset-fashion-mnist libonnx-dev libonnx-testdata
          chromium chromium-driver wrk openmpi-bin libopenmpi-dev)
missing=()
for package in "${packages[@]}"; do
    dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed" || missing+=("$package")
done
if [ ${#missing[@]} -eq 0 ]; then exit 0; fi
echo "installing: ${missing[*]}" >&2
if [ "$(id -u)" -eq 0 ]; then sudo=(); else sudo=(sudo); fi
"${sudo[@]}" apt-get update -qq
DEBIAN_FRONTEND=noninteractive "${sudo[@]}" apt-get install -y -qq "${missing[@]}" >/dev/null
