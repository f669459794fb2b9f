#!/usr/bin/env bash
# Runs tests/readme_test.py (README's buf curl session) with buf on PATH:
# the machine's, or one the project installs from npm into .rowgate/tools.
#   readme_test.sh ROWGATE_BINARY
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/.." && pwd)
if ! command -v buf >/dev/null; then
  tools=$root/.rowgate/tools
  if [ ! -x "$tools/node_modules/.bin/buf" ]; then
    npm install --prefix "$tools" --no-audit --no-fund --loglevel=error \
      @bufbuild/buf@1.75.0 >&2
  fi
  export PATH="$tools/node_modules/.bin:$PATH"
fi
exec /usr/bin/python3 "$here/readme_test.py" "$1"
