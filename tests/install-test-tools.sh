#!/usr/bin/env bash
# Installs what the tests run besides .NET: systemd-socket-activate (Debian's systemd package), for SystemdTests.
# The test project's build runs this when the tool is missing, so `dotnet test KestrelCluster.sln` needs nothing else.
set -euo pipefail
if command -v systemd-socket-activate >/dev/null 2>&1; then
  exit 0
fi

sudo_cmd=""
if [ "$(id -u)" -ne 0 ]; then
  if command -v sudo >/dev/null 2>&1; then sudo_cmd="sudo -n"; else
    echo "install-test-tools: systemd-socket-activate is missing and this user cannot install it; install Debian's systemd package" >&2
    exit 0
  fi
fi

echo "install-test-tools: systemd-socket-activate is missing; installing Debian's systemd package with apt-get" >&2
$sudo_cmd apt-get update -qq
DEBIAN_FRONTEND=noninteractive $sudo_cmd apt-get install -y -qq --no-install-recommends systemd
