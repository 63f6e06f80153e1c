#!/usr/bin/env bash
# Builds the real gitlab-runner for the end-to-end tests from the source archive
# in ../shared/gitlab-runner/ and caches the binary on the machine, keyed by the
# archive's checksum:
#   $NSPAWN_RUNNER_TEST_CACHE/gitlab-runner-<sha256 prefix>/gitlab-runner
# (default cache /var/cache/nspawn-runner-tests). A cached binary is reused.
#
# Why from an archive: the Go module proxy refuses the gitlab-runner module at
# every release, but serves every dependency of v17.9.3. So the tree is built as
# a main module, with the version flags its Makefile sets. CGO is off: a static
# binary also runs inside any image it is shared into.
#
# Go: the first of PATH, /usr/local/go; else Debian's golang-go when it is 1.21
# or later (it then fetches the toolchain go.mod asks for); else Go's own
# toolchain module from the module proxy, bootstrapped by Debian's older Go.
#
# Prints the binary's path and exits 0, or exits non-zero with the reason.
set -euo pipefail

here=$(dirname "$(readlink -f "$0")")
# Not readlink -f: in a clone with no shared/ beside it, that fails silently under set -e.
source_dir=${NSPAWN_RUNNER_GITLAB_RUNNER_SOURCE:-$here/../../../shared/gitlab-runner}
archive=$source_dir/gitlab-runner-17.9.3-src.tar.gz
version=17.9.3
revision=f6927248
# The archive this script builds, pinned (its README says the same): the cache
# key, so a binary built once serves a clone that has no shared/ beside it.
sha256=b40172aa19cfb5644459765cfee8080e312bc4f209fd312f9ddaa75fde3a7584
cache=${NSPAWN_RUNNER_TEST_CACHE:-/var/cache/nspawn-runner-tests}

say() { echo "install-gitlab-runner: $*" >&2; }
fail() { say "$*"; exit 3; }

dest=$cache/gitlab-runner-${sha256:0:16}
binary=$dest/gitlab-runner
if [[ -x $binary ]]; then
  echo "$binary"
  exit 0
fi

[[ -f $archive ]] || fail "no source archive at $archive: clone beside shared/ (see ../shared/gitlab-runner/README.md), or set NSPAWN_RUNNER_GITLAB_RUNNER_SOURCE"
actual=$(sha256sum "$archive" | cut -d' ' -f1)
[[ $actual == "$sha256" ]] || fail "$archive: sha256 $actual, expected $sha256 (gitlab-runner $version)"

# go_at_least MAJOR.MINOR GO: true when GO's version is at least that.
go_at_least() {
  local have
  have=$("$2" env GOVERSION 2>/dev/null) || return 1
  have=${have#go}
  printf '%s\n%s\n' "$1" "$have" | sort -V -C
}

find_go() {
  local candidate
  for candidate in "$(command -v go || true)" /usr/local/go/bin/go /usr/lib/go/bin/go; do
    [[ -n $candidate && -x $candidate ]] && go_at_least 1.21 "$candidate" && { echo "$candidate"; return; }
  done
  return 1
}

# Debian 12's golang-go is 1.19, too old to read go.mod's toolchain line; it can
# still download Go's own toolchain module, which is a complete Go.
install_go() {
  say "no Go 1.21 or later; installing one"
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends golang-go ca-certificates >&2 ||
    { apt-get update -q >&2 && DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends golang-go ca-certificates >&2; } ||
    fail "apt-get could not install golang-go"
  local debian_go=/usr/lib/go/bin/go
  if go_at_least 1.21 "$debian_go"; then echo "$debian_go"; return; fi
  local toolchain=golang.org/toolchain@v0.0.1-go1.23.4.linux-amd64 json dir
  json=$(cd /tmp && GOFLAGS=-mod=mod GOTOOLCHAIN=local "$debian_go" mod download -json "$toolchain" 2>&1) ||
    fail "could not download Go's toolchain module $toolchain: $json"
  dir=$(sed -n 's/^\t"Dir": "\(.*\)",$/\1/p' <<<"$json")
  [[ -x $dir/bin/go ]] || fail "the toolchain module $toolchain has no bin/go: $json"
  echo "$dir/bin/go"
}

go=$(find_go) || go=$(install_go)
say "building gitlab-runner $version with $("$go" env GOVERSION) ($go); about 3.5 min on 2 cores the first time"

work=$(mktemp -d)
trap 'chmod -R u+w "$work" 2>/dev/null; rm -rf "$work"' EXIT
tar -xzf "$archive" -C "$work"
cd "$work/gitlab-runner-$version"
module=gitlab.com/gitlab-org/gitlab-runner
ldflags="-X $module/common.NAME=gitlab-runner -X $module/common.VERSION=$version"
ldflags+=" -X $module/common.REVISION=$revision -X $module/common.BRANCH=v$version"
started=$SECONDS
# GOTOOLCHAIN=auto: an older Go fetches the toolchain go.mod asks for.
if ! GOTOOLCHAIN=auto CGO_ENABLED=0 "$go" build -trimpath -ldflags "$ldflags" -o "$work/gitlab-runner" . >"$work/build.log" 2>&1; then
  fail "go build failed: $(grep -v '^go: downloading' "$work/build.log" | tail -20)"
fi
say "built in $((SECONDS - started)) s"

mkdir -p "$dest"
mv "$work/gitlab-runner" "$binary.tmp"
mv "$binary.tmp" "$binary"
echo "$binary"
