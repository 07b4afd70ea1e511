#!/bin/sh
# Builds the chart renderer (helm/tools/render) offline, from Debian's Go packages:
# golang-go, golang-github-masterminds-sprig-dev, golang-gopkg-yaml.v3-dev.
# Debian installs their sources under /usr/share/gocode/src (GOPATH layout, without the
# /v3 suffixes of module paths): a GOPATH of symlinks adds those, and `go build` runs in
# GOPATH mode, so nothing is downloaded.
# Usage: helm/tools/build-render.sh OUTPUT
set -eu
out=${1:?usage: build-render.sh OUTPUT}
case $out in /*) ;; *) out="$PWD/$out" ;; esac
gocode=/usr/share/gocode/src
for need in "$gocode/github.com/Masterminds/sprig" "$gocode/gopkg.in/yaml.v3"; do
    [ -d "$need" ] || { echo "missing $need: apt-get install golang-github-masterminds-sprig-dev golang-gopkg-yaml.v3-dev" >&2; exit 3; }
done
command -v go >/dev/null || { echo "missing go: apt-get install golang-go" >&2; exit 3; }
here=$(cd "$(dirname "$0")" && pwd)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
mkdir -p "$work/src/github.com/Masterminds/sprig" "$work/src/github.com/Masterminds/semver" \
         "$work/src/evmpp"
ln -s "$gocode/github.com/Masterminds/sprig" "$work/src/github.com/Masterminds/sprig/v3"
ln -s "$gocode/github.com/Masterminds/semver" "$work/src/github.com/Masterminds/semver/v3"
cp "$here/render/main.go" "$work/src/evmpp/"
cd "$work/src/evmpp"
GO111MODULE=off GOPATH="$work:/usr/share/gocode" GOCACHE="$work/cache" GOFLAGS= \
    go build -o "$out" .
