#!/bin/bash
# build-initramfs.sh MODDIR OUT - a tiny initramfs: static busybox, the modules needed to mount the host
# root over virtio-9p with a tmpfs overlay (in modules.dep order), and our `init`.
#
# Why so small: the guest borrows the host's whole userland (python, pytest, iproute2, OVS) through 9p,
# so the initramfs only has to get that far. About 1.5 MB; built in well under a second.
set -euo pipefail
MODDIR=${1:?usage: build-initramfs.sh MODDIR OUT}
OUT=${2:?usage: build-initramfs.sh MODDIR OUT}
HERE=$(cd "$(dirname "$0")" && pwd)
BUSYBOX=${BUSYBOX:-/bin/busybox}

# A dynamic busybox (package `busybox`) would need the host's libc before 9p is mounted.
if LC_ALL=C readelf -l "$BUSYBOX" 2>/dev/null | grep -q 'INTERP'; then
    echo "$BUSYBOX is dynamically linked; install busybox-static" >&2
    exit 1
fi

W=$(mktemp -d)
trap 'rm -rf "$W"' EXIT
mkdir -p "$W"/{bin,dev,proc,sys,mods,host,rw,newroot}
cp "$BUSYBOX" "$W/bin/busybox"

declare -A seen=()
order=()
add() {  # add MODULE: its dependencies first, then itself
    local line path dep
    line=$(grep -E "(^|/)$1\.ko(\.[gx]z|\.zst)?:" "$MODDIR/modules.dep" | head -1) || true
    if [[ -z $line ]]; then
        # Built into the kernel: nothing to load.
        grep -qE "(^|/)$1\.ko$" "$MODDIR/modules.builtin" && return 0
        echo "module $1 is neither in modules.dep nor built in" >&2
        exit 1
    fi
    path=${line%%:*}
    for dep in ${line#*:}; do
        dep=$(basename "$dep"); dep=${dep%%.ko*}
        [[ -n ${seen[$dep]:-} ]] || add "$dep"
    done
    if [[ -z ${seen[$1]:-} ]]; then
        seen[$1]=1
        order+=("$1")
        cp "$MODDIR/$path" "$W/mods/$1.ko"
    fi
}
for m in virtio_pci 9pnet_virtio 9p overlay; do add "$m"; done
printf '%s\n' "${order[@]}" >"$W/mods/order"
install -m 0755 "$HERE/init" "$W/init"
(cd "$W" && find . | cpio -o -H newc --quiet | gzip -1 >"$OUT")
echo "initramfs: ${#order[@]} modules (${order[*]}), $(du -k "$OUT" | cut -f1) KiB"
