#!/usr/bin/env bash
# The benchmark harness in one command:  benchmarks/run.sh [--smoke] [--rounds N] [--duration S] [--setups a,b] [--out DIR]
#                                                          [--modes warm,isolated,pinned,h2,rolling,primary,faults]
# Installs wrk with apt when it is missing (and, for the fault lab, pm2 with npm into benchmarks/.tools), builds
# Release, then measures plain Kestrel, KestrelCluster and Node.js cluster interleaved, and writes Markdown tables
# (the fault lab: a folder with tables, pictures and raw timelines) to benchmarks/results/.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"

if ! command -v wrk >/dev/null 2>&1; then
  echo "wrk is missing; installing it with apt-get" >&2
  sudo_cmd=""
  [ "$(id -u)" -ne 0 ] && sudo_cmd="sudo"
  $sudo_cmd apt-get update -qq
  $sudo_cmd apt-get install -y -qq wrk
fi

node_args=()
if command -v node >/dev/null 2>&1; then
  node_args=(--node-script "$here/node-cluster.js")
else
  echo "node is missing: the Node.js cluster setup is skipped" >&2
fi

fault_args=()
if [[ " $* " == *" faults"* || " $* " == *",faults"* ]]; then
  dotnet build "$here/FaultApp/FaultApp.csproj" -c Release -v quiet -nologo >&2
  fault_args=(--faultapp "$here/FaultApp/bin/Release/net10.0/FaultApp.dll")
  if command -v node >/dev/null 2>&1; then
    fault_args+=(--node-faults "$here/node-faults.js")
    pm2="$here/.tools/node_modules/.bin/pm2"
    if [[ ! -x "$pm2" && " $* " != *" --smoke "* ]]; then
      echo "pm2 is missing; installing it with npm into benchmarks/.tools" >&2
      npm install --silent --no-audit --no-fund --prefix "$here/.tools" pm2@6 >&2 || echo "pm2 could not be installed: its setup is skipped" >&2
    fi
    [[ -x "$pm2" ]] && fault_args+=(--pm2 "$pm2")
  fi
fi

dotnet build "$here/BenchApp/BenchApp.csproj" -c Release -v quiet -nologo >&2
dotnet build "$here/KestrelCluster.Benchmarks/KestrelCluster.Benchmarks.csproj" -c Release -v quiet -nologo >&2

exec dotnet "$here/KestrelCluster.Benchmarks/bin/Release/net10.0/KestrelCluster.Benchmarks.dll" \
  --benchapp "$here/BenchApp/bin/Release/net10.0/BenchApp.dll" \
  --out "$here/results" \
  "${node_args[@]}" "${fault_args[@]}" "$@"
