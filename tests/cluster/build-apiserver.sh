#!/usr/bin/env bash
# Print the path of a kube-apiserver binary built from Debian's kubernetes source
# package, building it first if the cache does not have it yet (about 4-5 minutes
# on 2 cores). Progress goes to stderr; stdout carries only the path.
#
#   bin=$(tests/cluster/build-apiserver.sh)
#
# Env: XDG_CACHE_HOME (cache root, default ~/.cache), KEEP_BUILD_DIR=1 (keep scratch tree).
# Recipe: shared design LOCAL-STACK.md, "Kubernetes" section.
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=lib.sh
. "$here/lib.sh"

KUBE_VERSION=1.20.2   # upstream version inside Debian's 1.20.5+really1.20.2 package
cache_dir="${XDG_CACHE_HOME:-$HOME/.cache}/sqltde/kube-apiserver-$KUBE_VERSION"
bin="$cache_dir/kube-apiserver"

if [ -x "$bin" ]; then echo "$bin"; exit 0; fi

mkdir -p "$cache_dir"
# One builder at a time: a second caller waits here, then finds the binary.
exec 9>"$cache_dir/.lock"
flock 9
if [ -x "$bin" ]; then echo "$bin"; exit 0; fi

# rsync must be there before the first make (the build copies with it).
ensure_pkgs golang-go rsync golang-github-modern-go-reflect2-dev make tar gzip

# Enable deb-src for the archive debian.sources already uses, unless some deb-src exists.
enable_deb_src() {
  if grep -rqsE '^[[:space:]]*(deb-src[[:space:]]|Types:.*deb-src)' \
       /etc/apt/sources.list /etc/apt/sources.list.d/; then
    return 1   # already enabled: no new entry, and no forced apt-get update
  fi
  if [ -f /etc/apt/sources.list.d/debian.sources ]; then
    sed -E 's/^Types:.*/Types: deb-src/' /etc/apt/sources.list.d/debian.sources \
      > /etc/apt/sources.list.d/sqltde-src.sources
  elif grep -qsE '^[[:space:]]*deb[[:space:]]' /etc/apt/sources.list; then
    # Older one-line format.
    sed -nE 's/^[[:space:]]*deb[[:space:]]/deb-src /p' /etc/apt/sources.list \
      > /etc/apt/sources.list.d/sqltde-src.list
  else
    die "no Debian apt source found to derive a deb-src entry from"
  fi
  log "enabled Debian source packages (/etc/apt/sources.list.d/sqltde-src.*)"
}
if enable_deb_src || ! compgen -G '/var/lib/apt/lists/*_Sources*' >/dev/null; then
  log "apt-get update"
  DEBIAN_FRONTEND=noninteractive apt-get update -qq >&2
fi

work=$(mktemp -d "${TMPDIR:-/tmp}/sqltde-kube-build.XXXXXX")
mkdir "$work/dl"
# apt downloads as user _apt when that user can write the target dir (else it warns).
chown _apt "$work/dl" 2>/dev/null || true
cleanup() {
  if [ "${KEEP_BUILD_DIR:-0}" = 1 ]; then log "build tree kept in $work"
  else chmod -R u+w "$work" 2>/dev/null || true; rm -rf "$work"; fi
}
trap cleanup EXIT

log "downloading Debian source package kubernetes into $work"
(cd "$work/dl" && apt-get source --download-only kubernetes >&2)
orig=$(ls "$work"/dl/kubernetes_*"$KUBE_VERSION"*.orig.tar.* 2>/dev/null | head -n1 || true)
[ -n "$orig" ] || die "no kubernetes orig tarball for $KUBE_VERSION in: $(ls "$work/dl")"

log "unpacking $(basename "$orig")"
mkdir "$work/src"
tar -xf "$orig" -C "$work/src" --strip-components=1
src="$work/src"
[ -d "$src/vendor" ] && [ -d "$src/cmd/kube-apiserver" ] || die "unexpected tarball layout"

# Required patch: vendored reflect2 v1.0.1 faults in mapiterinit under Go >= 1.18
# as soon as a custom resource is created. Debian's reflect2 1.0.2 is fine.
reflect2=/usr/share/gocode/src/github.com/modern-go/reflect2
[ -d "$reflect2" ] || die "$reflect2 missing"
rm -rf "$src/vendor/github.com/modern-go/reflect2"
cp -r "$reflect2" "$src/vendor/github.com/modern-go/reflect2"

# GOPATH build, as Debian's debian/rules does it.
mkdir -p "$src/.go/src/k8s.io" "$work/home"
ln -s ../../.. "$src/.go/src/k8s.io/kubernetes"
log "building cmd/kube-apiserver (several minutes; log: $cache_dir/build.log)"
start=$(date +%s)
if ! (cd "$src" &&
      env GOPATH="$src/.go" CGO_ENABLED=0 HOME="$work/home" GO111MODULE=off \
          make WHAT=cmd/kube-apiserver) >"$cache_dir/build.log" 2>&1; then
  tail -n 40 "$cache_dir/build.log" >&2
  die "kube-apiserver build failed (full log: $cache_dir/build.log)"
fi
log "built in $(( $(date +%s) - start ))s"

out=$(find "$src/_output" -type f -name kube-apiserver -path '*/bin/*' | head -n1)
[ -n "$out" ] || die "build finished but no kube-apiserver binary under _output/"
# Copy to a temp name in the cache dir, then rename: readers never see half a file.
cp "$out" "$bin.tmp.$$"
chmod 755 "$bin.tmp.$$"
mv -f "$bin.tmp.$$" "$bin"
echo "$bin"
