#!/usr/bin/env bash
# Installs the Debian packages rowgate needs to build, test and run
# (`install-deps.sh image`: also those that build its container image).
# Idempotent and quick when everything is present: apt-get runs only when a
# package is missing.
set -euo pipefail

packages=(
  cmake make g++ pkg-config
  libgrpc++-dev protobuf-compiler protobuf-compiler-grpc libprotobuf-dev grpc-proto
  libpqxx-dev libpq-dev libabsl-dev libgtest-dev libgmock-dev
  postgresql-15 postgresql-contrib
  python3-grpcio python3-protobuf python3-h2 libcpp-httplib-dev
  # bench/rowgate_cache_bench (google benchmark)
  libbenchmark-dev
  # make test-asan, make fuzz, make thread-safety: clang with its sanitizer
  # and libFuzzer runtimes, and llvm-symbolizer for readable reports.
  clang-14 libclang-rt-14-dev llvm-14
  ${EXTRA_PACKAGES:-}
)
# `install-deps.sh image` (make image, make test-image) adds what builds and
# checks the container image with no Docker engine or registry: podman
# (builds with buildah's chroot isolation on vfs storage) and mmdebstrap
# (makes the Debian 12 base from Debian's packages).
if [ "${1:-}" = image ]; then
  packages+=(podman mmdebstrap)
fi

missing=()
for p in "${packages[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done
# Node.js for the Node example client: any install will do (Debian's, or
# NodeSource's, which bundles npm and conflicts with Debian's npm package).
command -v node >/dev/null || missing+=(nodejs)
command -v npm >/dev/null || missing+=(npm)
# kubectl, for `kubectl kustomize deploy/k8s` in make test: any will do
# (Debian's kubernetes-client 1.20 embeds kustomize v2, enough for
# deploy/k8s; Google's or upstream's kubectl packages install the same
# /usr/bin/kubectl).
command -v kubectl >/dev/null || missing+=(kubernetes-client)
[ ${#missing[@]} -eq 0 ] && exit 0

echo "install-deps: installing ${missing[*]}" >&2
sudo=""
if [ "$(id -u)" -ne 0 ]; then sudo="sudo"; fi
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -qq
$sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
