#!/usr/bin/env bash
# deploy/k8s's configuration is one rowgate accepts: rowgate (built from this
# tree) is started with exactly the environment the manifests give its
# container (ConfigMap through envFrom, DATABASE_URL from the Secret; only
# the Secret's placeholder URL is replaced by the test database's), and the
# example app (deploy/image/example_app.py) with exactly its container's
# environment dials it over the unix socket.
# Checks: every ROWGATE_* name is one of rowgate's flags (rowgate ignores
# names it does not know, so a typo would pass unnoticed); start-up logs the
# ConfigMap's values; health is SERVING and a BatchGet is answered over the
# socket and over loopback; /metrics answers on ROWGATE_METRICS_LISTEN;
# SIGTERM ends rowgate with status 0 within terminationGracePeriodSeconds.
# It runs in private network and mount namespaces (unshare), so the
# manifest's fixed ports and /run/rowgate collide with nothing on this
# machine.
#   k8s_env_test.sh ROWGATE_BINARY   (needs ROWGATE_TEST_DATABASE_URL)
set -uo pipefail
bin=$(realpath "$1")
here=$(cd "$(dirname "$0")" && pwd)
root=$here/..
: "${ROWGATE_TEST_DATABASE_URL:?run with make test}"

if [ -z "${ROWGATE_K8S_ENV_TEST_NS:-}" ]; then
  ns=(unshare --net --mount --propagation private)
  "${ns[@]}" true 2>/dev/null || ns=(unshare --map-root-user --net --mount --propagation private)
  "${ns[@]}" true 2>/dev/null || {
    echo "FAILED: unshare cannot make network and mount namespaces here (needs root or user namespaces)" >&2
    exit 1; }
  ROWGATE_K8S_ENV_TEST_NS=1 exec "${ns[@]}" bash "$0" "$bin"
fi

validate=$root/deploy/k8s/validate
if ! (cd "$validate" && node -e 'require("yaml")') 2>/dev/null; then
  (cd "$validate" && npm ci --no-audit --no-fund --loglevel=error) || exit 1
fi
dir=$(mktemp -d)
server=
cleanup() {
  [ -n "$server" ] && kill -KILL "$server" 2>/dev/null
  rm -rf "$dir"
}
trap cleanup EXIT
passed=0 failed=0
check() {  # check NAME CONDITION...
  local name=$1; shift
  if "$@"; then passed=$((passed + 1)); echo "ok: $name"; else failed=$((failed + 1)); echo "FAILED: $name"; fi
}
finish() { echo "$passed passed, $failed failed"; [ "$failed" -eq 0 ]; exit; }

kubectl kustomize "$root/deploy/k8s" >"$dir/rendered.yaml" || exit 1
envof() { NODE_PATH=$validate/node_modules node "$here/k8s_env.js" "$dir/rendered.yaml" "$@"; }
envof rowgate >"$dir/rowgate.env" && envof app >"$dir/app.env" || exit 1
grace=$(NODE_PATH=$validate/node_modules node -e '
  const YAML = require("yaml"), fs = require("fs");
  const d = YAML.parseAllDocuments(fs.readFileSync(process.argv[1], "utf8")).map((x) => x.toJS())
    .find((x) => x && x.kind === "Deployment");
  console.log(d.spec.template.spec.terminationGracePeriodSeconds ?? 30)' "$dir/rendered.yaml")

# Every ROWGATE_* name is a flag of rowgate's (those of service/main.cc,
# which are the ones it reads from the environment).
"$bin" --help >"$dir/help" 2>&1
awk '/^  Flags from /{on = ($0 ~ /service\/main\.cc:/)} on && /^    --[a-z0-9_]+ /{
  sub(/^    --/, ""); sub(/ .*/, ""); print}' "$dir/help" >"$dir/flags"
check "rowgate --help lists its flags" test -s "$dir/flags"
while IFS='=' read -r name _; do
  case $name in
    ROWGATE_*) flag=$(echo "${name#ROWGATE_}" | tr 'A-Z' 'a-z')
      check "$name is rowgate's --$flag" grep -qx "$flag" "$dir/flags" ;;
    DATABASE_URL) ;;
    *) check "$name is a variable rowgate reads" false ;;
  esac
done <"$dir/rowgate.env"

# The kubelet's world: loopback up, the pod's volumes as fresh directories.
/usr/bin/python3 -c '
import fcntl, socket, struct
fcntl.ioctl(socket.socket(), 0x8914, struct.pack("16sH", b"lo", 0x1 | 0x8 | 0x40))'  # SIOCSIFFLAGS UP|LOOPBACK|RUNNING
case $ROWGATE_TEST_DATABASE_URL in
  *host=/run*) echo "FAILED: the test database's socket is under /run, which this test covers" >&2; exit 1 ;;
esac
mount -t tmpfs -o mode=755 tmpfs /run || exit 1
while read -r path; do
  mkdir -p "$path" && chmod 1777 "$path"   # an emptyDir is world-writable
done < <(envof rowgate --mounts)

# Only the Secret's placeholder is replaced.
mapfile -t rowgate_env < <(grep -v '^DATABASE_URL=' "$dir/rowgate.env")
mapfile -t app_env <"$dir/app.env"
env -i PATH=/usr/bin:/bin "${rowgate_env[@]}" DATABASE_URL="$ROWGATE_TEST_DATABASE_URL" \
  "$bin" >"$dir/log" 2>&1 &
server=$!
listen=$(sed -n 's/^ROWGATE_LISTEN=//p' "$dir/rowgate.env")
sock=$(echo "$listen" | tr ',' '\n' | sed -n 's/^unix://p')
port=$(echo "$listen" | tr ',' '\n' | sed -n 's/^0\.0\.0\.0://p')
metrics=$(sed -n 's/^ROWGATE_METRICS_LISTEN=//p' "$dir/rowgate.env")
for _ in $(seq 1 300); do
  [ -S "$sock" ] && grep -q '"stopped"\|"serving"\|listening' "$dir/log" && break
  kill -0 $server 2>/dev/null || break
  sleep 0.1
done
check "rowgate starts with the manifest's environment and serves $sock" test -S "$sock"
kill -0 $server 2>/dev/null || { echo "rowgate exited:"; cat "$dir/log"; finish; }

# Start-up's effective configuration shows the ConfigMap's values.
/usr/bin/python3 - "$dir/log" "$dir/rowgate.env" >"$dir/config-check" <<'EOF'
import json, sys
start = next(json.loads(l) for l in open(sys.argv[1]) if '"starting"' in l)
for line in open(sys.argv[2]):
    name, _, value = line.rstrip("\n").partition("=")
    flag = name[len("ROWGATE_"):].lower()
    if name.startswith("ROWGATE_") and flag in start:
        print(("ok" if str(start[flag]) == value else "FAILED") + f" {flag} {start[flag]!r} {value!r}")
EOF
while read -r verdict flag got want; do
  check "start-up logs $flag=$want (got $got)" test "$verdict" = ok
done <"$dir/config-check"
check "start-up logged some of the ConfigMap's values" test -s "$dir/config-check"

# The example app, with its container's environment, over the unix socket;
# then over loopback, the alternative.
stubs=$dir/stubs
mkdir -p "$stubs"
protoc --python_out="$stubs" --grpc_out="$stubs" --plugin=protoc-gen-grpc=/usr/bin/grpc_python_plugin \
  -I "$root/proto" -I /usr/include rowgate/v1/rowgate.proto &&
protoc --python_out="$stubs" --grpc_out="$stubs" --plugin=protoc-gen-grpc=/usr/bin/grpc_python_plugin \
  -I /usr/share/grpc-proto/grpc/health/v1 health.proto || exit 1
app() {
  env -i PATH=/usr/bin:/bin "${app_env[@]}" APP_STUBS_DIR="$stubs" "$@" \
    /usr/bin/python3 "$root/deploy/image/example_app.py" --once --expect-found
}
app >"$dir/app.out" 2>&1; code=$?
cat "$dir/app.out"
check "the app's health check over the socket says SERVING" grep -q '"health": "SERVING"' "$dir/app.out"
check "the app's BatchGet over the socket finds its row" test "$code" -eq 0
app APP_ROWGATE_TARGET="127.0.0.1:$port" >"$dir/app.out" 2>&1; code=$?
cat "$dir/app.out"
check "the same over loopback 127.0.0.1:$port" test "$code" -eq 0

/usr/bin/python3 -c '
import sys, urllib.request
print(urllib.request.urlopen(f"http://127.0.0.1:{sys.argv[1]}/metrics", timeout=5).read().decode())' \
  "${metrics##*:}" >"$dir/metrics" 2>&1
check "/metrics answers on $metrics with rowgate_up 1" grep -qx 'rowgate_up 1' "$dir/metrics"

kill -TERM $server
for _ in $(seq 1 $((grace * 10))); do kill -0 $server 2>/dev/null || break; sleep 0.1; done
check "SIGTERM ends rowgate within terminationGracePeriodSeconds ($grace s)" bash -c "! kill -0 $server 2>/dev/null"
wait $server; code=$?
server=
check "rowgate exits 0 after SIGTERM (got $code)" test "$code" -eq 0
check "no error was logged" bash -c "! grep -q '\"level\":\"error\"' '$dir/log'"
[ "$failed" -eq 0 ] || cat "$dir/log"
finish
