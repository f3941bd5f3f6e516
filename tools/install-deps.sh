#!/usr/bin/env bash
# Installs the Debian packages the build, tests and demo need, when they are missing.
# Usage: tools/install-deps.sh [package...]   (default: the build's packages)
# As root it runs apt-get directly; otherwise through sudo when available. A user without either
# runs:  sudo apt-get install -y libopenblas-dev pkg-config libpng-dev libjpeg62-turbo-dev zlib1g-dev
# The Slurm packages (slurmctld, slurmd, slurm-client, munge) are for the tests that submit to a
# throwaway local cluster (tools/slurm-test-cluster.sh); the build does not need them.
set -euo pipefail
packages=("$@")
[ ${#packages[@]} -gt 0 ] || packages=(libopenblas-dev pkg-config libpng-dev libjpeg62-turbo-dev zlib1g-dev dataset-fashion-mnist \
  slurmctld slurmd slurm-client munge)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0
echo "installing missing Debian packages: ${missing[*]}"
if [ "$(id -u)" -eq 0 ]; then sudo=""; elif command -v sudo >/dev/null; then sudo="sudo"; else
  echo "error: need root to install ${missing[*]}; run: sudo apt-get install -y ${missing[*]}" >&2; exit 1
fi
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -qq || true
$sudo apt-get install -y -qq "${missing[@]}" >/dev/null
