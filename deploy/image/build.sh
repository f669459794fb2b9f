#!/usr/bin/env bash
# build.sh: builds deploy/Dockerfile with podman (`make image`), with no
# Docker engine and no image registry needed:
#   localhost/rowgate:latest               the runtime image (last stage)
#   localhost/rowgate-example-app:latest   deploy/k8s's example application
#
# The base is BASE_IMAGE if set; else localhost/rowgate-base:bookworm if
# made before (the cache); else docker.io/library/debian:bookworm-slim if a
# registry answers; else a Debian 12 minbase made here by mmdebstrap from
# Debian's own packages (MMDEBSTRAP_MIRROR, default deb.debian.org) and
# imported as localhost/rowgate-base:bookworm. podman keeps every build
# layer, so a second run with unchanged sources takes seconds.
#
# podman runs with the vfs storage driver and builds with buildah's chroot
# isolation (PODMAN_FLAGS, BUILD_FLAGS add to them), which need neither
# overlay mounts nor cgroup delegation. JOBS (default 2) is the compile's -j.
# Prints each image's size and the time taken.
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
# shellcheck source=deploy/image/podman.sh
source "$root/deploy/image/podman.sh"

image=${IMAGE:-localhost/rowgate:latest}
app_image=${APP_IMAGE:-localhost/rowgate-example-app:latest}
local_base=localhost/rowgate-base:bookworm
start=$(date +%s)

base=${BASE_IMAGE:-}
if [ -z "$base" ] && pm image exists "$local_base"; then
  base=$local_base
fi
if [ -z "$base" ] && timeout 60 "${PM[@]}" pull -q docker.io/library/debian:bookworm-slim >/dev/null 2>&1; then
  base=docker.io/library/debian:bookworm-slim
fi
if [ -z "$base" ]; then
  mirror=${MMDEBSTRAP_MIRROR:-http://deb.debian.org}
  echo "image: no registry reachable; making the Debian 12 base with mmdebstrap from $mirror" >&2
  tmp=$(mktemp -d)
  trap 'rm -rf "$tmp"' EXIT
  # minbase, slimmed as debian:bookworm-slim is: no manuals, docs (but the
  # copyrights) or translations.
  mmdebstrap --quiet --variant=minbase --format=tar \
    --dpkgopt='path-exclude=/usr/share/man/*' \
    --dpkgopt='path-exclude=/usr/share/doc/*' \
    --dpkgopt='path-include=/usr/share/doc/*/copyright' \
    --dpkgopt='path-exclude=/usr/share/locale/*' \
    --dpkgopt='path-exclude=/usr/share/info/*' \
    --aptopt='Acquire::Languages "none"' \
    --customize-hook='rm -rf "$1"/var/lib/apt/lists/* "$1"/var/cache/apt/*.bin' \
    bookworm "$tmp/base.tar" \
    "deb $mirror/debian bookworm main" \
    "deb $mirror/debian bookworm-updates main" \
    "deb $mirror/debian-security bookworm-security main"
  pm import --quiet \
    --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
    --change 'CMD ["/bin/bash"]' \
    "$tmp/base.tar" "$local_base" >/dev/null
  base=$local_base
fi
echo "image: base $base" >&2

build() {
  pm build --isolation=chroot --ignorefile "$root/deploy/Dockerfile.dockerignore" \
    -f "$root/deploy/Dockerfile" --build-arg BASE_IMAGE="$base" \
    --build-arg JOBS="${JOBS:-2}" ${BUILD_FLAGS:-} "$@" "$root"
}
build -t "$image"
build --target example-app -t "$app_image"

for i in "$image" "$app_image"; do
  size=$(pm image inspect --format '{{.Size}}' "$i")
  echo "image: $i $(awk -v b="$size" 'BEGIN {printf "%.1f MB", b / 1e6}')"
done
echo "image: built in $(( $(date +%s) - start )) s"
