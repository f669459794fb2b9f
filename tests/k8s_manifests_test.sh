#!/usr/bin/env bash
# deploy/k8s: `kubectl kustomize` renders it; every rendered object passes the
# Kubernetes OpenAPI schemas, strictly (deploy/k8s/validate, offline); the
# validator rejects a misspelt field and a mistyped value (so it can fail);
# and the objects fit together as README "Run in Kubernetes" says
# (tests/k8s_manifests_check.js). No cluster is needed.
#   k8s_manifests_test.sh
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$here/..
validate=$root/deploy/k8s/validate

command -v kubectl >/dev/null || {
  echo "kubectl is missing: make deps installs Debian's kubernetes-client" >&2; exit 1; }
# The validator's packages, pinned by package-lock.json, into the git-ignored
# node_modules (as examples/run.sh does for the Node example).
if ! (cd "$validate" && node -e 'require("kubernetes-models/v1"); require("yaml")') 2>/dev/null; then
  echo "k8s: npm ci in deploy/k8s/validate" >&2
  (cd "$validate" && npm ci --no-audit --no-fund --loglevel=error)
fi

dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
kubectl kustomize "$root/deploy/k8s" >"$dir/rendered.yaml"
echo "== kubectl kustomize deploy/k8s: $(grep -c '^kind:' "$dir/rendered.yaml") objects ($(kubectl version --client 2>/dev/null | head -1))"

echo "== schemas (kubernetes-models $(node -p 'require(process.argv[1]).version' "$validate/node_modules/kubernetes-models/package.json"))"
node "$validate/validate.js" "$dir/rendered.yaml"

echo "== the validator rejects broken objects"
expect_rejected() {  # expect_rejected WHAT SED-EXPRESSION MESSAGE
  sed "$2" "$dir/rendered.yaml" >"$dir/broken.yaml"
  if cmp -s "$dir/rendered.yaml" "$dir/broken.yaml"; then
    echo "FAILED: $1: the edit changed nothing"; return 1; fi
  if node "$validate/validate.js" "$dir/broken.yaml" >"$dir/out"; then
    echo "FAILED: $1 passed the validator"; cat "$dir/out"; return 1; fi
  grep -q -- "$3" "$dir/out" || { echo "FAILED: $1: no '$3' in"; cat "$dir/out"; return 1; }
  echo "ok: $1 is rejected ($3)"
}
expect_rejected "a misspelt field" 's/readinessProbe:/readinesProbe:/' "readinesProbe: unknown field"
expect_rejected "a list where a quantity belongs" 's/memory: 256Mi/memory: [256Mi]/' "limits/memory must be"
expect_rejected "a string port in a gRPC probe" 's/port: 50051/port: grpc/' "grpc/port must be integer"
expect_rejected "an unknown kind" 's/^kind: NetworkPolicy/kind: NetworkPolicyy/' "no schema for"

echo "== how the objects fit together"
NODE_PATH=$validate/node_modules node "$here/k8s_manifests_check.js" "$dir/rendered.yaml"
