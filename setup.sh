#!/usr/bin/env bash
# Make .venv with boxloop and its pinned dependencies; re-runs are no-ops until the pins change.
#   ./setup.sh          the local engine (what `boxloop demo` needs)
#   ./setup.sh --dev    everything: local engine, CDK app, test tools, the pinned CDK CLI (npm),
#                       and Debian's chromium + chromium-driver for tests/browser (as root)
set -euo pipefail
cd "$(dirname "$0")"

extras=local
[[ "${1:-}" == "--dev" ]] && extras=dev
python=${PYTHON:-python3}
export JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION=20

if ! "$python" -c 'import sys; sys.exit(sys.version_info < (3, 11))'; then
  echo "setup.sh: boxloop needs Python 3.11 or newer; set PYTHON=/path/to/python3.11" >&2
  exit 1
fi

pins=$(cat pyproject.toml requirements/constraints.txt package-lock.json | sha256sum | cut -c1-16)
stamp=".venv/.installed-$extras-$pins"
if [[ ! -f "$stamp" ]]; then
  echo "setup.sh: installing boxloop[$extras] into .venv (first run takes a few minutes)..."
  [[ -x .venv/bin/python ]] || "$python" -m venv .venv
  log=.venv/install.log
  {
    .venv/bin/python -m pip install --upgrade pip
    # torch first and pinned: an unpinned torch pulled in by a dependency means GBs of CUDA wheels.
    .venv/bin/python -m pip install "torch==2.13.0"
    .venv/bin/python -m pip install -c requirements/constraints.txt -e ".[$extras]"
  } >"$log" 2>&1 || { tail -n 40 "$log" >&2; echo "setup.sh: pip failed, full log in $log" >&2; exit 1; }
  if [[ "$extras" == dev ]]; then
    npm ci --no-audit --no-fund --loglevel=error >>"$log" 2>&1 \
      || { tail -n 20 "$log" >&2; echo "setup.sh: npm ci failed (needs Node 20+)" >&2; exit 1; }
  fi
  rm -f .venv/.installed-*
  touch "$stamp"
  echo "setup.sh: done."
fi

# The labeling app's browser tests drive the system Chromium through its matching driver (both from
# Debian, so their versions always agree); nothing downloads a browser. Skipped once both exist.
if [[ "$extras" == dev && ! ( -x /usr/bin/chromium && -x /usr/bin/chromedriver ) ]]; then
  if [[ "$(id -u)" == 0 ]] && command -v apt-get >/dev/null; then
    echo "setup.sh: installing chromium and chromium-driver (apt) for tests/browser..."
    { apt-get update -qq && DEBIAN_FRONTEND=noninteractive \
        apt-get install -y -qq --no-install-recommends chromium chromium-driver; } >.venv/apt.log 2>&1 \
      || { tail -n 20 .venv/apt.log >&2; echo "setup.sh: apt-get failed, log in .venv/apt.log" >&2; exit 1; }
  else
    echo "setup.sh: tests/browser need /usr/bin/chromium and /usr/bin/chromedriver; they will be" \
      "skipped. Install them as root: apt-get install --no-install-recommends chromium chromium-driver" >&2
  fi
fi
