#!/usr/bin/env bash
# Installs what nspawn-runner and its tests need on a Debian host. Nothing is
# built: the scripts run from source on the Bun that `npm ci` installs from
# the npm registry (bin/bun). Idempotent: a second run only checks. Run as root.
set -euo pipefail
cd "$(dirname "$(readlink -f "$0")")"

# systemd-container: systemd-nspawn, machinectl; util-linux: nsenter;
# debootstrap/mmdebstrap/eatmydata: image creation; btrfs-progs: the btrfs
# backend; ansible (ansible-core and community.general, whose chroot connection
# image playbooks run through): image maintenance; busybox-static: the tests' tiny
# image; sudo: build shells for people; python3: the crash tests' stand-in runner;
# gcc, libc6-dev: the sandbox tests build a static escape probe; rsync:
# gitlab-ci-local's shell executor, which the exec benchmark runs beside exec.
# skopeo, umoci: OCI images from registries (pull, unpack, chroot-push);
# docker-registry (the distribution registry) and apache2-utils (htpasswd -B):
# the tests' own registry on loopback, plain and with authentication.
packages=(systemd-container util-linux debootstrap mmdebstrap eatmydata btrfs-progs ansible busybox-static git sudo python3 gcc libc6-dev rsync
  skopeo umoci docker-registry apache2-utils passt iproute2)

if [[ $(id -u) -ne 0 ]]; then
  echo "setup.sh: run as root (it installs Debian packages)" >&2
  exit 1
fi

updated=
apt_update_once() {
  [[ -n $updated ]] || apt-get update -q
  updated=1
}

# level VERSION: major * 1000 + minor of a Node.js or Debian version (v20.1.0, 1:20.19.2+dfsg-1).
level() {
  local version=${1#v} minor
  version=${version#*:}
  minor=${version#*.}
  echo $((${version%%.*} * 1000 + ${minor%%[!0-9]*}))
}
# The tests run on Node (lib/exec.mts uses process.getBuiltinModule, 20.16 on).
node_needed=20016

missing=()
# Node.js 20.16 or later: the one found in PATH, else Debian's nodejs and npm where
# apt's candidate is (Debian 13 on); older Debian releases have 18.
node_version=$(node --version 2>/dev/null || true)
if [[ -z $node_version ]] || (($(level "$node_version") < node_needed)); then
  candidate() { apt-cache policy nodejs 2>/dev/null | sed -n 's/^ *Candidate: *//p'; }
  node_candidate=$(candidate)
  [[ $node_candidate =~ ^[0-9] ]] || { apt_update_once; node_candidate=$(candidate); }
  [[ $node_candidate =~ ^[0-9] ]] || node_candidate=none
  if [[ $node_candidate == none ]] || (($(level "$node_candidate") < node_needed)); then
    echo "setup.sh: nspawn-runner needs Node.js 20.16 or later (found ${node_version:-none}, apt offers ${node_candidate}): install Node.js 20.16+ with npm, then run setup.sh again" >&2
    exit 1
  fi
  missing+=(nodejs npm)
fi

for package in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q 'install ok installed' || missing+=("$package")
done
if ((${#missing[@]})); then
  echo "setup.sh: installing ${missing[*]}" >&2
  apt_update_once
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}"
  hash -r
fi
# An older node earlier in PATH would still win over the one just installed.
node_version=$(node --version 2>/dev/null || true)
if [[ -z $node_version ]] || (($(level "$node_version") < node_needed)); then
  echo "setup.sh: node in PATH is ${node_version:-missing} ($(command -v node || echo 'not found')); nspawn-runner needs Node.js 20.16 or later first in PATH" >&2
  exit 1
fi

if [[ ! -d node_modules ]] || [[ package-lock.json -nt node_modules/.package-lock.json ]]; then
  npm ci --no-audit --no-fund --loglevel=error
fi
# The x64 build of Bun needs AVX2 (2013 and later CPUs); it dies with SIGILL
# without it. Say so here rather than in every CI stage.
if ! bun_version=$(bin/bun --version 2>&1); then
  echo "setup.sh: bin/bun does not run: ${bun_version:-killed} (is this an x86-64 CPU with AVX2?)" >&2
  exit 1
fi
ln -sf "$PWD/bin/nspawn-runner" /usr/local/bin/nspawn-runner
echo "setup.sh: ready; nspawn-runner is $(command -v nspawn-runner), on Bun $bun_version" >&2
