#!/usr/bin/env bash
# install-deps.sh: installs the Debian packages playbookd needs to build and test, if any are missing.
# Safe to run again: it only calls apt-get when a package is absent. Used by `make deps` and `make test`;
# with arguments it installs those packages instead (bench/install-deps.sh).
set -euo pipefail

packages=(
  build-essential pkg-config clang-format
  libnats-dev libcurl4-openssl-dev libcjson-dev libyaml-dev libcmocka-dev libmicrohttpd-dev libssl-dev libgnutls28-dev
  nats-server
  python3 python3-pytest python3-yaml python3-cryptography python3-jsonschema
)
[[ $# -gt 0 ]] && packages=("$@")

missing=()
for p in "${packages[@]}"; do
  status=$(dpkg-query -W -f='${Status}' "$p" 2>/dev/null || true)
  [[ "$status" == "install ok installed" ]] || missing+=("$p")
done

if [[ ${#missing[@]} -eq 0 ]]; then
  echo "deps: all ${#packages[@]} packages present"
  exit 0
fi

echo "deps: installing ${missing[*]}"
sudo=""
if [[ $(id -u) -ne 0 ]]; then
  if command -v sudo >/dev/null; then sudo="sudo"; else
    echo "deps: not root and no sudo; install these packages: ${missing[*]}" >&2
    exit 1
  fi
fi
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -qq
$sudo apt-get install -y -qq --no-install-recommends "${missing[@]}"
