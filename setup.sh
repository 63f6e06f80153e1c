#!/usr/bin/env bash
# Installs what nspawn-runner and its tests need on a Debian host, then builds
# it. Idempotent: a second run only checks. Run as root.
set -euo pipefail
cd "$(dirname "$(readlink -f "$0")")"

# systemd-container: systemd-nspawn, machinectl; util-linux: nsenter;
# debootstrap/mmdebstrap/eatmydata: image creation; btrfs-progs: the btrfs
# backend; ansible (ansible-core and community.general, whose chroot connection
# image playbooks run through): image maintenance; busybox-static: the tests' tiny
# image; sudo: build shells for people; python3: the crash tests' stand-in runner;
# gcc, libc6-dev: the sandbox tests build a static escape probe.
# skopeo, umoci: OCI images from registries (pull, unpack, chroot-push);
# docker-registry (the distribution registry) and apache2-utils (htpasswd -B):
# the tests' own registry on loopback, plain and with authentication.
packages=(systemd-container util-linux debootstrap mmdebstrap eatmydata btrfs-progs ansible busybox-static git sudo python3 gcc libc6-dev
  skopeo umoci docker-registry apache2-utils)

if [[ $(id -u) -ne 0 ]]; then
  echo "setup.sh: run as root (it installs Debian packages)" >&2
  exit 1
fi

missing=()
for package in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q 'install ok installed' || missing+=("$package")
done
if ((${#missing[@]})); then
  echo "setup.sh: installing ${missing[*]}" >&2
  apt-get update -q
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}"
fi

if [[ ! -d node_modules ]] || [[ package-lock.json -nt node_modules/.package-lock.json ]]; then
  npm ci --no-audit --no-fund --loglevel=error
fi
npm run --silent build
ln -sf "$PWD/bin/nspawn-runner" /usr/local/bin/nspawn-runner
echo "setup.sh: ready; nspawn-runner is $(command -v nspawn-runner)" >&2
