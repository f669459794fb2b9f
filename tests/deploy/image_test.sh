#!/usr/bin/env bash
# `make test-image`: the image make image built, run as a pod would run it,
# without a container runtime (podman run needs cgroup delegation, which
# these machines lack). The image's filesystem is mounted (podman mount) and
# its own ENTRYPOINT started in a chroot of it, as its own USER, with its
# own ENV plus deploy/k8s's environment for the rowgate container (the
# Secret's placeholder DATABASE_URL replaced by one for the test database
# reached as a pod reaches its database: by name (localhost, from the
# /etc/hosts the kubelet would provide) over TCP (tests/deploy/tcp_forward.py
# bridges to the test Postgres' unix socket), and a fresh directory as the
# emptyDir at /run/rowgate. The example-app image is started the same way
# over that shared directory. Checks: health SERVING and a BatchGet
# answered, over the unix socket (from the app image and from this
# checkout's example app) and over 0.0.0.0:50051; the process is not root
# (its /proc status); the image has no shell; SIGTERM exits 0.
# It runs in private network and mount namespaces, so the fixed ports and
# mounts touch nothing else. Needs root (chroot, mount).
#   tests/deploy/image_test.sh   (needs ROWGATE_TEST_DATABASE_URL)
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
: "${ROWGATE_TEST_DATABASE_URL:?run with make test-image}"
image=${IMAGE:-localhost/rowgate:latest}
app_image=${APP_IMAGE:-localhost/rowgate-example-app:latest}
[ "$(id -u)" -eq 0 ] || { echo "FAILED: needs root (chroot and mount)" >&2; exit 1; }
# shellcheck source=deploy/image/podman.sh
source "$root/deploy/image/podman.sh"
start_time=$(date +%s)

if [ -z "${ROWGATE_IMAGE_TEST_NS:-}" ]; then
  # Outside the namespaces: podman makes writable containers of both images
  # (not started) and gives their root directories.
  for i in "$image" "$app_image"; do
    pm image exists "$i" || { echo "FAILED: no image $i (make image)" >&2; exit 1; }
  done
  ctr=$(pm create "$image") && app_ctr=$(pm create "$app_image") || exit 1
  trap 'pm umount "$ctr" "$app_ctr" >/dev/null; pm rm -f "$ctr" "$app_ctr" >/dev/null' EXIT
  rootfs=$(pm mount "$ctr") && app_rootfs=$(pm mount "$app_ctr") || exit 1
  inspect() { pm image inspect --format "$1" "$2"; }
  status=0
  ROWGATE_IMAGE_TEST_NS=1 ROOTFS=$rootfs APP_ROOTFS=$app_rootfs \
    IMAGE_USER=$(inspect '{{.Config.User}}' "$image") \
    IMAGE_ENTRYPOINT=$(inspect '{{json .Config.Entrypoint}}' "$image") \
    IMAGE_ENV=$(inspect '{{json .Config.Env}}' "$image") \
    APP_USER=$(inspect '{{.Config.User}}' "$app_image") \
    APP_ENTRYPOINT=$(inspect '{{json .Config.Entrypoint}}' "$app_image") \
    APP_IMAGE_ENV=$(inspect '{{json .Config.Env}}' "$app_image") \
    unshare --net --mount --propagation private bash "$0" || status=$?
  echo "image: $image $(inspect '{{.Size}}' "$image" | awk '{printf "%.1f MB", $1 / 1e6}'); test took $(( $(date +%s) - start_time )) s"
  exit $status
fi

validate=$root/deploy/k8s/validate
if ! (cd "$validate" && node -e 'require("yaml")') 2>/dev/null; then
  (cd "$validate" && npm ci --no-audit --no-fund --loglevel=error) || exit 1
fi
dir=$(mktemp -d)
server=
forwarder=
cleanup() {
  [ -n "$server" ] && kill -KILL "$server" 2>/dev/null
  [ -n "$forwarder" ] && kill -KILL "$forwarder" 2>/dev/null
  rm -rf "$dir"
}
trap cleanup EXIT
passed=0 failed=0
check() {  # check NAME CONDITION...
  local name=$1; shift
  if "$@"; then passed=$((passed + 1)); echo "ok: $name"; else failed=$((failed + 1)); echo "FAILED: $name"; fi
}
finish() { echo "$passed passed, $failed failed"; [ "$failed" -eq 0 ]; exit; }

# JSON lists from podman inspect, one item per line.
lines() { /usr/bin/python3 -c 'import json, sys; [print(x) for x in (json.loads(sys.argv[1]) or [])]' "$1"; }
mapfile -t entrypoint < <(lines "$IMAGE_ENTRYPOINT")
mapfile -t image_env < <(lines "$IMAGE_ENV")
mapfile -t app_entrypoint < <(lines "$APP_ENTRYPOINT")
mapfile -t app_image_env < <(lines "$APP_IMAGE_ENV")
kubectl kustomize "$root/deploy/k8s" >"$dir/rendered.yaml" || exit 1
envof() { NODE_PATH=$validate/node_modules node "$root/tests/k8s_env.js" "$dir/rendered.yaml" "$@"; }
mapfile -t pod_env < <(envof rowgate | grep -v '^DATABASE_URL=')
mapfile -t app_env < <(envof app)

check "the image's entrypoint is rowgate (${entrypoint[*]})" test "${entrypoint[0]:-}" = /usr/local/bin/rowgate
check "the image's user is not root ($IMAGE_USER)" bash -c "[[ '$IMAGE_USER' =~ ^[1-9][0-9]*(:[0-9]+)?$ ]]"
check "the image has no shell" bash -c "[ ! -e '$ROOTFS/bin/sh' ] && [ ! -e '$ROOTFS/usr/bin/sh' ]"
echo "image: $(du -sh "$ROOTFS" | cut -f1) on disk; files: $(find "$ROOTFS" -type f | wc -l)"

# The pod's world: loopback up (the probes' 0.0.0.0:50051), the emptyDir
# shared by both containers, and the test Postgres' socket directory.
/usr/bin/python3 -c '
import fcntl, socket, struct
fcntl.ioctl(socket.socket(), 0x8914, struct.pack("16sH", b"lo", 0x1 | 0x8 | 0x40))'
pgdir=$(echo "$ROWGATE_TEST_DATABASE_URL" | sed -n 's/.*[?&]host=\([^&]*\).*/\1/p')
db=$(echo "$ROWGATE_TEST_DATABASE_URL" | sed -n 's#^postgresql://[^/]*/\([^?]*\).*#\1#p')
[ -S "$pgdir/.s.PGSQL.5432" ] && [ -n "$db" ] || {
  echo "FAILED: no Postgres socket or database in $ROWGATE_TEST_DATABASE_URL" >&2; exit 1; }
/usr/bin/python3 "$here/tcp_forward.py" 5432 "$pgdir/.s.PGSQL.5432" >"$dir/forward.out" 2>&1 &
forwarder=$!
disown "$forwarder"   # no "Killed" line when the cleanup ends it
for _ in $(seq 1 100); do grep -q ready "$dir/forward.out" && break; sleep 0.1; done
mkdir -p "$dir/emptydir" && chmod 1777 "$dir/emptydir"
for r in "$ROOTFS" "$APP_ROOTFS"; do
  mkdir -p "$r/run/rowgate" "$r/etc" && mount --bind "$dir/emptydir" "$r/run/rowgate" || exit 1
  printf '127.0.0.1\tlocalhost\n::1\tlocalhost\n' >"$r/etc/hosts"  # the kubelet's /etc/hosts
done

# The entrypoint, as the image's user, with the image's ENV then the pod's.
env -i "${image_env[@]}" "${pod_env[@]}" DATABASE_URL="postgresql://postgres@localhost:5432/$db" \
  /usr/sbin/chroot --userspec="$IMAGE_USER" "$ROOTFS" "${entrypoint[@]}" >"$dir/log" 2>&1 &
server=$!
sock=$dir/emptydir/rowgate.sock
for _ in $(seq 1 300); do
  grep -q '"msg":"serving"' "$dir/log" && break
  kill -0 $server 2>/dev/null || break
  sleep 0.1
done
check "the entrypoint starts serving in the chroot" grep -q '"msg":"serving"' "$dir/log"
kill -0 $server 2>/dev/null || { echo "rowgate exited:"; cat "$dir/log"; finish; }
check "it serves the pod's unix socket" test -S "$sock"
uids=$(awk '/^Uid:/ {print $2, $3, $4, $5}' "/proc/$server/status")
check "the process runs as the image's user, not root (uids $uids)" \
  bash -c "[ '$uids' = '${IMAGE_USER%%:*} ${IMAGE_USER%%:*} ${IMAGE_USER%%:*} ${IMAGE_USER%%:*}' ]"

# The example-app image, as its user, over the shared socket.
env -i "${app_image_env[@]}" "${app_env[@]}" \
  /usr/sbin/chroot --userspec="$APP_USER" "$APP_ROOTFS" "${app_entrypoint[@]}" --once --expect-found \
  >"$dir/app.out" 2>&1; code=$?
cat "$dir/app.out"
check "the example-app image: health SERVING over the socket" grep -q '"health": "SERVING"' "$dir/app.out"
check "the example-app image: its BatchGet is answered and finds the row" test "$code" -eq 0

# This checkout's example app from the host, over the socket and over TCP.
stubs=$dir/stubs
mkdir -p "$stubs"
protoc --python_out="$stubs" --grpc_out="$stubs" --plugin=protoc-gen-grpc=/usr/bin/grpc_python_plugin \
  -I "$root/proto" -I /usr/include rowgate/v1/rowgate.proto &&
protoc --python_out="$stubs" --grpc_out="$stubs" --plugin=protoc-gen-grpc=/usr/bin/grpc_python_plugin \
  -I /usr/share/grpc-proto/grpc/health/v1 health.proto || exit 1
for target in "unix://$sock" 127.0.0.1:50051; do
  APP_STUBS_DIR=$stubs APP_ROWGATE_TARGET=$target \
    /usr/bin/python3 "$root/deploy/image/example_app.py" --once --expect-found >"$dir/app.out" 2>&1; code=$?
  cat "$dir/app.out"
  check "health SERVING and one BatchGet answered over $target" test "$code" -eq 0
done

kill -TERM $server
wait $server; code=$?
server=
check "SIGTERM: the entrypoint exits 0 (got $code)" test "$code" -eq 0
check "it logged no error" bash -c "! grep -q '\"level\":\"error\"' '$dir/log'"
[ "$failed" -eq 0 ] || cat "$dir/log"
finish
