#!/usr/bin/env bash
# Installs the system packages drainer's build and tests need, when missing (Debian 12).
# Runs as root, or through sudo. Safe to run again: it installs only what is missing.
set -euo pipefail

# Each package for a stated reason:
#   mariadb-server  mariadbd and mariadb-install-db: the integration tests start real servers
#   librocksdb-dev  the RocksDB library the checkpoint crate links (see checkpoint/src/lib.rs)
#   libclang-dev    bindgen, run by librocksdb-sys at build time
#   sysbench        the workloads of the replication benchmark (bench replication)
#   openssl         the tests make their CAs and certificates with it (never committed)
#   socat           the cross-site tests join network namespaces through Unix sockets
#   iproute2        ip netns, for the cross-site tests' namespaces
packages=(mariadb-server librocksdb-dev libclang-dev sysbench openssl socat iproute2)

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]} == 0)); then
  exit 0
fi
echo "setup: installing ${missing[*]}"
sudo=""
[ "$(id -u)" -eq 0 ] || sudo="sudo"
$sudo apt-get update -qq
DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
