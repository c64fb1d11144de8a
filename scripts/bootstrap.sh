#!/usr/bin/env bash
# Creates (or refreshes) the project's virtual environment in .venv and, when running as
# root, installs the Debian packages it needs. Idempotent and quiet.
#
#   scripts/bootstrap.sh          what the tool needs to run (./demo): its run-time Debian
#                                 packages and Python dependencies, no test tool, no browser
#   scripts/bootstrap.sh --test   also the test tools (./test): pytest, mypy, ruff,
#                                 Playwright with Debian's Chromium, the booted test hosts'
#                                 tools, the shells the completion tests run
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
cd "$top"

mode=run
case "${1:-}" in
  --test) mode=test ;;
  "") ;;
  *) echo "usage: $0 [--test]" >&2; exit 2 ;;
esac

# What `au` runs: ip (the Upgrade Side's link), unshare/nsenter/mount/setpriv, ps, cp.
runtime_packages=(iproute2 util-linux procps coreutils python3-venv)
# The tests' tools: a browser for the web console test; XFS and btrfs tools, mmdebstrap,
# systemd-nspawn, dpkg-dev and apt-utils (apt-ftparchive: the local update repositories) for
# the booted Debian test hosts (tests/host), the chroot tests (tests/side) and the Debian
# package's build and install test; the shells and man whose completion and manual page
# are tested; Debian's nginx, Redis and PostgreSQL that the services tests drive as plain
# processes (tests/services/test_nginx.py, test_data.py; bench/daemons.py); the SSH client
# Ansible reaches the fleet tests' hosts with; rsync, the benchmarks' baseline (bench/).
test_packages=(chromium xfsprogs btrfs-progs mmdebstrap systemd-container dpkg-dev apt-utils zsh
  fish nginx redis-server postgresql openssh-client
  man-db groff-base rsync)
wanted=("${runtime_packages[@]}")
[ "$mode" = test ] && wanted+=("${test_packages[@]}")

if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
  missing=()
  for p in "${wanted[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
  done
  if [ ${#missing[@]} -gt 0 ]; then
    echo "bootstrap: installing Debian packages: ${missing[*]}" >&2
    apt-get update -qq >&2
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >&2
  fi
fi

python=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  "$python" -m venv .venv
fi
stamp=.venv/.installed-$mode
if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ]; then
  .venv/bin/python -m pip install -q --upgrade pip >&2
  if [ "$mode" = test ]; then
    .venv/bin/python -m pip install -q -e ".[test]" >&2
  else
    .venv/bin/python -m pip install -q -e . >&2
  fi
  touch "$stamp"
fi
# Byte-compile the tool (quietly, only what changed): every `au` command imports it, and
# where PYTHONDONTWRITEBYTECODE is set nothing would ever be cached, each command compiling
# its modules again (a Debian install compiles them too, at installation).
.venv/bin/python -m compileall -q -j 0 src >&2 || true
