#!/usr/bin/env bash
# Builds the real gitlab-runner for the end-to-end tests from its Go module,
# with the ordinary Go client, and caches the binary on the machine:
#   $NSPAWN_RUNNER_TEST_CACHE/gitlab-runner-<version>/gitlab-runner
# (default cache /var/cache/nspawn-runner-tests). A cached binary is reused.
#
# Why not `go install module@version`: release tags carry no /vN suffix and
# their versions are refused, and newer module versions carry a local
# `replace` that `go install` rejects. So: `go mod download` the pinned
# pseudo-version, copy its (read-only) module directory, and `go build`
# there with the version flags its Makefile sets.
#
# Exit 0 and print the binary's path; exit 3 when gitlab-runner cannot be
# built here (the module or one of its dependencies cannot be had), printing
# why. The tests then skip what needs the real runner and say so.
set -euo pipefail

module=gitlab.com/gitlab-org/gitlab-runner
# main of 2026-09-03, VERSION 19.4.0, go 1.26.5: the version the module proxy serves as @latest.
version=v1.11.1-0.20260903214710-fc1f1862bd91
cache=${NSPAWN_RUNNER_TEST_CACHE:-/var/cache/nspawn-runner-tests}
dest=$cache/gitlab-runner-$version
binary=$dest/gitlab-runner

if [[ -x $binary ]]; then
  echo "$binary"
  exit 0
fi

blocked() {
  echo "install-gitlab-runner: blocked: $*" >&2
  mkdir -p "$dest"
  printf '%s\n' "$*" > "$dest/blocked"
  exit 3
}

go=$(command -v go || true)
[[ -n $go ]] || go=/usr/local/go/bin/go
[[ -x $go ]] || blocked "no go command (install Go 1.21 or later; it fetches the toolchain go.mod asks for)"

echo "install-gitlab-runner: downloading $module@$version" >&2
json=$("$go" mod download -json "$module@$version" 2>&1) || blocked "go mod download failed: $json"
dir=$(sed -n 's/^\t"Dir": "\(.*\)",$/\1/p' <<<"$json")
[[ -n $dir && -d $dir ]] || blocked "go mod download gave no module directory: $json"

work=$(mktemp -d)
trap 'chmod -R u+w "$work" 2>/dev/null; rm -rf "$work"' EXIT
cp -r "$dir" "$work/src"
chmod -R u+w "$work/src"

revision=${version##*-}
app_version=$(cat "$work/src/VERSION")
ldflags="-X $module/common.NAME=gitlab-runner -X $module/common.VERSION=$app_version"
ldflags+=" -X $module/common.REVISION=${revision:0:8} -X $module/common.BRANCH=main"
ldflags+=" -X $module/common.BUILT=$(date -u +%Y-%m-%dT%H:%M:%S%z) -w"

echo "install-gitlab-runner: building gitlab-runner $app_version (${revision:0:8}); several minutes on 2 cores" >&2
started=$SECONDS
# CGO off as in its Makefile: a static binary also runs inside any image it is shared into.
if ! (cd "$work/src" && CGO_ENABLED=0 "$go" build -trimpath -ldflags "$ldflags" -o "$work/gitlab-runner" .) >"$work/build.log" 2>&1; then
  # One line per module that could not be had, not one per importing file.
  reasons=$(grep -v '^go: downloading' "$work/build.log" | grep -oE '[^ ]+@[^: ]+: (reading [^ ]+: [0-9]{3} [A-Za-z ]+|replacement directory [^ ]+ does not exist)' | sort -u)
  blocked "go build failed:${reasons:+$'\n'}${reasons:-$(tail -5 "$work/build.log")}"
fi
echo "install-gitlab-runner: built in $((SECONDS - started)) s" >&2

mkdir -p "$dest"
rm -f "$dest/blocked"
mv "$work/gitlab-runner" "$binary.tmp"
mv "$binary.tmp" "$binary"
echo "$binary"
