#!/usr/bin/env bash
# Installs what the tests run besides .NET: systemd-socket-activate (Debian's systemd package), for SystemdTests, and
# wrk, for UpgradeTests (a load generator that never retries). The test project's build runs this when one is missing,
# so `dotnet test KestrelCluster.sln` needs nothing else.
set -euo pipefail
packages=()
command -v systemd-socket-activate >/dev/null 2>&1 || packages+=(systemd)
command -v wrk >/dev/null 2>&1 || packages+=(wrk)
if [ ${#packages[@]} -eq 0 ]; then
  exit 0
fi

sudo_cmd=""
if [ "$(id -u)" -ne 0 ]; then
  if command -v sudo >/dev/null 2>&1; then sudo_cmd="sudo -n"; else
    echo "install-test-tools: missing Debian packages ${packages[*]}, and this user cannot install them; install them" >&2
    exit 0
  fi
fi

echo "install-test-tools: installing the missing Debian packages ${packages[*]} with apt-get" >&2
$sudo_cmd apt-get update -qq
DEBIAN_FRONTEND=noninteractive $sudo_cmd apt-get install -y -qq --no-install-recommends "${packages[@]}"
