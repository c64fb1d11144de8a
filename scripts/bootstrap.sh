#!/usr/bin/env bash
# Creates (or refreshes) the project's virtual environment in .venv and, when running as
# root, installs the Debian packages the tool and its tests use. Idempotent and quiet.
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
cd "$top"

debian_packages=(rsync btrfs-progs xfsprogs iproute2 util-linux procps chromium chromium-driver
  mmdebstrap systemd-container dpkg-dev)  # the last three: the booted Debian test hosts (tests/host)
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
  missing=()
  for p in "${debian_packages[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
  done
  if [ ${#missing[@]} -gt 0 ]; then
    echo "bootstrap: installing Debian packages: ${missing[*]}" >&2
    apt-get update -qq >&2
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >&2
  fi
fi

python=${PYTHON:-python3}
stamp=.venv/.installed
if [ ! -x .venv/bin/python ]; then
  "$python" -m venv .venv
fi
if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ]; then
  .venv/bin/python -m pip install -q --upgrade pip >&2
  .venv/bin/python -m pip install -q -e ".[dev]" >&2
  touch "$stamp"
fi
