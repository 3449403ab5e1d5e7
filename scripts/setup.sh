#!/usr/bin/env bash
# setup.sh — installs the Debian 12 packages this project needs, and nothing
# that is already there. Idempotent; safe to run before every build.
# Runs as root (CI and the build machines) or through sudo when available.
set -euo pipefail

PKGS=(
  # build
  gcc make cmake pkg-config clang
  # libraries the operator links (libcurl in its OpenSSL flavour)
  libcurl4-openssl-dev libssl-dev libyaml-dev libwebsockets-dev libjansson-dev libsqlite3-dev
  # local control plane: etcd + a kube-apiserver built from Debian's source package
  etcd-server etcd-client golang-go rsync golang-github-modern-go-reflect2-dev dpkg-dev
  # tools the scripts call
  openssl curl ca-certificates python3 procps psmisc iproute2 util-linux
)

have_cmd() { command -v "$1" >/dev/null 2>&1; }
# kubectl: the machines ship 1.32; a fresh Debian gets kubernetes-client (1.20).
have_cmd kubectl || PKGS+=(kubernetes-client)
# Node.js and npm run Microsoft's Azure SDK conformance tests against the emulator.
have_cmd node || PKGS+=(nodejs)
have_cmd npm || PKGS+=(npm)

missing=()
for p in "${PKGS[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done

if ((${#missing[@]})); then
  echo "setup: installing ${missing[*]}" >&2
  SUDO=""
  if [[ $(id -u) -ne 0 ]]; then
    have_cmd sudo || { echo "setup: need root (or sudo) to install: ${missing[*]}" >&2; exit 1; }
    SUDO=sudo
  fi
  export DEBIAN_FRONTEND=noninteractive
  $SUDO apt-get update -qq
  $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
else
  echo "setup: all packages present" >&2
fi
