#!/usr/bin/env bash
# Builds, without any registry, OCI images equivalent to images/Dockerfile's and checks them:
# the runtime base is made from the host's Debian bookworm packages that distroless cc-debian12
# is made of (libc6, libgcc-s1; users root and nonroot 65532), each binary goes on top in its own
# layer with the Dockerfile's entrypoint and user, and each image is unpacked again and its
# entrypoint run (`--version`) in a read-only chroot as the image's user. It fails when a binary
# needs a shared object or a file the base does not have.
#
#   images/assemble.sh OUT_DIR CONTROLLER_BINARY SPEAKER_BINARY
#
# OUT_DIR/oci is an OCI image layout with tags `controller` and `speaker` (push it with
# `skopeo copy oci:OUT_DIR/oci:controller docker://...`). Needs root (chroot, mount), umoci,
# dpkg and objcopy.
set -euo pipefail

out=${1:?usage: assemble.sh OUT_DIR CONTROLLER SPEAKER}
controller=${2:?controller binary}
speaker=${3:?speaker binary}
for tool in umoci dpkg-query objcopy chroot unshare; do
  command -v "$tool" >/dev/null || { echo "assemble: $tool not found" >&2; exit 2; }
done
[[ $(id -u) -eq 0 ]] || { echo "assemble: needs root (chroot, mount)" >&2; exit 2; }
[[ $(dpkg --print-architecture) == amd64 ]] || { echo "assemble: amd64 hosts only" >&2; exit 2; }

mkdir -p "$out"
out=$(cd "$out" && pwd)
layout="$out/oci"
rm -rf "$layout" "$out/bundle" "$out/check"

# The base: distroless' merged-/usr layout, the packages' files (no docs), and the users.
base="$out/bundle/rootfs"
umoci init --layout "$layout"
umoci new --image "$layout:base"
umoci unpack --image "$layout:base" "$out/bundle" >/dev/null
mkdir -p "$base/usr/lib/x86_64-linux-gnu" "$base/usr/lib64" "$base/etc" "$base/tmp" "$base/home/nonroot"
ln -s usr/lib "$base/lib"
ln -s usr/lib64 "$base/lib64"
chmod 1777 "$base/tmp"
for package in libc6 libgcc-s1; do
  version=$(dpkg-query -W -f='${Version}' "$package:amd64")
  echo "assemble: base package $package $version"
  dpkg-query -L "$package:amd64" | while read -r path; do
    [[ $path == /usr/share/* ]] && continue
    [[ -f $path || -L $path ]] || continue
    mkdir -p "$base$(dirname "$path")"
    cp -a "$path" "$base$path"
  done
done
printf 'root:x:0:0:root:/root:/sbin/nologin\nnonroot:x:65532:65532:nonroot:/home/nonroot:/sbin/nologin\n' > "$base/etc/passwd"
printf 'root:x:0:\nnonroot:x:65532:\n' > "$base/etc/group"
chown 65532:65532 "$base/home/nonroot"
umoci repack --image "$layout:base" "$out/bundle"
rm -rf "$out/bundle"

# One image per binary: the base plus the (debug-stripped) binary, the Dockerfile's config.
add_binary() {  # add_binary TAG BINARY NAME ENTRYPOINT_ARGS...
  local tag=$1 binary=$2 name=$3
  shift 3
  umoci unpack --image "$layout:base" "$out/bundle" >/dev/null
  objcopy --strip-debug "$binary" "$out/bundle/rootfs/$name"
  chmod 0755 "$out/bundle/rootfs/$name"
  umoci repack --image "$layout:$tag" "$out/bundle"
  rm -rf "$out/bundle"
  umoci config --image "$layout:$tag" --config.user 65532:65532 --config.entrypoint "/$name" "$@" \
    --config.label org.opencontainers.image.title="$name"
}
add_binary controller "$controller" ferrolb-controller --config.cmd run
add_binary speaker "$speaker" ferrolb-speaker

# Unpack each image as a runtime would and run its entrypoint as its user, root file system
# read-only (as the chart runs it).
for tag in controller speaker; do
  umoci unpack --image "$layout:$tag" "$out/check" >/dev/null
  rootfs="$out/check/rootfs"
  entrypoint=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["process"]["args"][0])' "$out/check/config.json")
  user=$(python3 -c 'import json,sys; u=json.load(open(sys.argv[1]))["process"]["user"]; print(u["uid"], u["gid"], sep=":")' "$out/check/config.json")
  size=$(du -sk "$rootfs" | cut -f1)
  version=$(unshare --mount --fork sh -c '
    mount --bind "$1" "$1" && mount -o remount,bind,ro "$1" && exec chroot --userspec="$2" "$1" "$3" --version
  ' sh "$rootfs" "$user" "$entrypoint")
  echo "assemble: $tag: entrypoint $entrypoint, user $user, ${size} KiB unpacked: $version"
  rm -rf "$out/check"
done
