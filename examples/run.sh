#!/usr/bin/env bash
# Runs the Python and Node client examples against a live rowgate.
#
#   examples/run.sh HOST:PORT
#
# Installs what is missing first: Debian's python3-grpcio, python3-protobuf,
# protobuf-compiler and protobuf-compiler-grpc (for grpc_python_plugin), and
# examples/node/node_modules (npm ci). Runs both examples even if the first
# fails; exits non-zero if either failed.
set -uo pipefail

if [ $# -ne 1 ]; then
  echo "usage: $0 HOST:PORT" >&2
  exit 2
fi
target=$1
here=$(cd "$(dirname "$0")" && pwd)
python=/usr/bin/python3   # Debian's: the grpc and protobuf modules are installed for it

# ------------------------------------------------------------------ deps

apt_install() {
  local sudo=
  if [ "$(id -u)" -ne 0 ]; then sudo=sudo; fi
  echo "examples: installing $*" >&2
  if ! $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -q "$@" >/dev/null; then
    $sudo apt-get update -q >/dev/null && \
      $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -q "$@" >/dev/null
  fi
}

missing=()
"$python" -c 'import grpc' 2>/dev/null || missing+=(python3-grpcio)
"$python" -c 'import google.protobuf' 2>/dev/null || missing+=(python3-protobuf)
command -v protoc >/dev/null || missing+=(protobuf-compiler)
[ -x /usr/bin/grpc_python_plugin ] || missing+=(protobuf-compiler-grpc)
[ -f /usr/include/google/protobuf/struct.proto ] || missing+=(libprotobuf-dev)
command -v node >/dev/null || missing+=(nodejs)
command -v npm >/dev/null || missing+=(npm)
if [ ${#missing[@]} -gt 0 ]; then
  apt_install "${missing[@]}" || { echo "examples: could not install ${missing[*]}" >&2; exit 1; }
fi

if [ ! -d "$here/node/node_modules" ]; then
  echo "examples: npm ci in examples/node" >&2
  (cd "$here/node" && npm ci --no-audit --no-fund --loglevel=error) || {
    echo "examples: npm ci failed" >&2; exit 1; }
fi

# ------------------------------------------------------------------ run

status=0
echo "== python: examples/python/rowgate_example.py $target"
"$python" "$here/python/rowgate_example.py" "$target" || status=1
echo "== node: examples/node/rowgate_example.js $target"
node "$here/node/rowgate_example.js" "$target" || status=1

if [ $status -eq 0 ]; then
  echo "examples: python and node passed"
else
  echo "examples: FAILED (see the FAIL lines above)" >&2
fi
exit $status
