#!/usr/bin/env bash
# The benchmark harness in one command:  benchmarks/run.sh [--smoke] [--rounds N] [--duration S] [--setups a,b] [--out DIR]
# Installs wrk with apt when it is missing, builds Release, then measures plain Kestrel, KestrelCluster and
# Node.js cluster interleaved, and writes a Markdown table to benchmarks/results/.
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

dotnet build "$here/BenchApp/BenchApp.csproj" -c Release -v quiet -nologo >&2
dotnet build "$here/KestrelCluster.Benchmarks/KestrelCluster.Benchmarks.csproj" -c Release -v quiet -nologo >&2

exec dotnet "$here/KestrelCluster.Benchmarks/bin/Release/net10.0/KestrelCluster.Benchmarks.dll" \
  --benchapp "$here/BenchApp/bin/Release/net10.0/BenchApp.dll" \
  --out "$here/results" \
  "${node_args[@]}" "$@"
