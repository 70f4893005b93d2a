#!/usr/bin/env bash
# Unpacks Debian's nginx with lua-nginx-module into a private folder ($1,
# default build/nginx-ref) for the benchmark's reference row. The module needs
# OpenResty's libluajit2, which conflicts with the stock LuaJIT lubeck builds
# against, so nothing is installed: the packages are downloaded and unpacked,
# and nginx runs with LD_LIBRARY_PATH pointing into the folder.
set -euo pipefail
dest=${1:-build/nginx-ref}
[ -x "$dest/usr/sbin/nginx" ] && exit 0
mkdir -p "$dest"
dest=$(cd "$dest" && pwd)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cd "$work"
apt-get download nginx nginx-common libnginx-mod-http-lua libnginx-mod-http-ndk \
    libluajit2-5.1-2 lua-resty-core lua-resty-lrucache >/dev/null 2>&1
for deb in ./*.deb; do dpkg -x "$deb" "$dest"; done
echo "nginx with lua-nginx-module unpacked in $dest"
