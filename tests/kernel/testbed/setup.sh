#!/bin/bash
# setup.sh DEST - build the kernel test bed into the empty directory DEST.
#
# Why: Debian bookworm's kernel lacks netdevsim and vDPA, so the bed boots the stock kernel under QEMU
# with seven modules built out of tree from Debian's own linux-source (same tree, same gcc-12, so the
# vermagic and modversions match). Nothing is installed on this machine: packages are downloaded with
# `apt-get download` and unpacked into DEST. Callers (tests/kernel/testbed.py) build into a temporary
# DEST and rename it into the cache, so a half-built bed is never used.
#
# Result in DEST:
#   KV                  the kernel version built for, e.g. 6.1.0-56-amd64
#   vmlinux             the kernel as an ELF with the PVH entry note (QEMU skips the decompressor)
#   initramfs.cpio.gz   static busybox + 9p/overlay modules + init (see init)
#   lib/modules/$KV/    stock modules (minus hardware nobody loads in the guest) + ours in updates/
#   config              the kernel's .config, for reference
#   build.times         seconds per step
#
# Env: KV (default: what linux-image-amd64 depends on). Exit 3: the packages cannot be downloaded.
set -euo pipefail

DEST=${1:?usage: setup.sh DEST}
HERE=$(cd "$(dirname "$0")" && pwd)
DEST=$(cd "$DEST" && pwd)
MODULES_BUILT="netdevsim vdpa vdpa_sim vdpa_sim_net virtio_vdpa vhost_vdpa vringh"

T0=$(date +%s.%N)
step() {
    local now; now=$(date +%s.%N)
    [[ $STEP == start ]] || printf '%-10s %6.2f\n' "$STEP" "$(echo "$now - $T0" | bc)" >>"$DEST/build.times"
    T0=$now; STEP=$1; echo "== $1"
}
STEP=start

resolve_kv() {  # empty when apt knows no linux-image-amd64 (never fails: callers test for empty)
    { apt-cache depends linux-image-amd64 2>/dev/null || true; } | sed -n 's/^ *Depends: linux-image-//p' | head -1
}

# --- download ----------------------------------------------------------------------------------------------------
step download
KV=${KV:-$(resolve_kv)}
W=$DEST/work
mkdir -p "$W/debs"
download() {
    local kser abi
    kser=$(echo "$KV" | cut -d. -f1-2)         # 6.1.0-56-amd64 -> 6.1
    abi=${KV%-amd64}                           # 6.1.0-56
    rm -f "$W"/debs/*.deb
    # APT::Sandbox::User=root: the _apt user cannot write into a private temp dir; nothing else changes.
    (cd "$W/debs" && apt-get -q -o APT::Sandbox::User=root download \
        "linux-image-$KV" "linux-headers-$KV" "linux-headers-$abi-common" \
        "linux-kbuild-$kser" "linux-source-$kser")
}
if [[ -z $KV ]] || ! download; then
    echo "download failed or no kernel known for linux-image-amd64; running apt-get update and retrying"
    apt-get update -qq || true
    KV=$(resolve_kv)
    [[ -n $KV ]] || { echo "apt-cache knows no linux-image-amd64 dependency" >&2; exit 3; }
    download || { echo "apt-get download of the $KV kernel packages failed" >&2; exit 3; }
fi
KSER=$(echo "$KV" | cut -d. -f1-2)
ABI=${KV%-amd64}
echo "$KV" >"$DEST/KV"

# --- extract -----------------------------------------------------------------------------------------------------
step extract
mkdir -p "$W/image" "$W/kb" "$W/src" "$DEST/lib/modules"
dpkg-deb -x "$W"/debs/linux-image-"${KV}"_*.deb "$W/image"
mv "$W/image/lib/modules/$KV" "$DEST/lib/modules/$KV"
cp "$W/image/boot/config-$KV" "$DEST/config"
for p in "linux-headers-$KV" "linux-headers-$ABI-common" "linux-kbuild-$KSER"; do
    dpkg-deb -x "$W"/debs/"${p}"_*.deb "$W/kb"
done
HDR=$W/kb/usr/src/linux-headers-$KV
# The headers' Makefile includes the -common tree by its installed path; point it at our copy.
echo "include $W/kb/usr/src/linux-headers-$ABI-common/Makefile" >"$HDR/Makefile"
L=linux-source-$KSER
dpkg-deb --fsys-tarfile "$W"/debs/"${L}"_*.deb | tar -xO "./usr/src/$L.tar.xz" | tar -xJ -C "$W/src" \
    "$L/drivers/net/netdevsim" "$L/drivers/vdpa/vdpa.c" "$L/drivers/vdpa/vdpa_sim" \
    "$L/drivers/vhost" "$L/drivers/virtio/virtio_vdpa.c"
rm -rf "$W/debs"                               # 224 MB we no longer need

step vmlinux
python3 "$HERE/extract_vmlinux.py" "$W/image/boot/vmlinuz-$KV" "$DEST/vmlinux"
rm -rf "$W/image"

# --- build the missing modules -----------------------------------------------------------------------------------
step modules
R=$W/src/$L/drivers
M=$W/mods
mkdir -p "$M/netdevsim" "$M/vdpa/vdpa_sim" "$M/vhost" "$M/virtio"
cp "$R"/net/netdevsim/*.[ch] "$R/net/netdevsim/Makefile" "$M/netdevsim/"   # its Makefile reads auto.conf
cp "$R/vdpa/vdpa.c" "$M/vdpa/"
cp "$R"/vdpa/vdpa_sim/*.[ch] "$M/vdpa/vdpa_sim/"
cp "$R/vhost/vringh.c" "$R/vhost/vdpa.c" "$R/vhost/vhost.h" "$M/vhost/"
cp "$R/virtio/virtio_vdpa.c" "$M/virtio/"
echo 'obj-m += netdevsim/ vdpa/ vhost/ virtio/' >"$M/Kbuild"
echo 'obj-m += vdpa.o vdpa_sim/' >"$M/vdpa/Kbuild"
echo 'obj-m += vdpa_sim.o vdpa_sim_net.o' >"$M/vdpa/vdpa_sim/Kbuild"
printf 'obj-m += vringh.o vhost_vdpa.o\nvhost_vdpa-y := vdpa.o\n' >"$M/vhost/Kbuild"
echo 'obj-m += virtio_vdpa.o' >"$M/virtio/Kbuild"
# CC=gcc-12: the compiler Debian built this kernel with (checked by the kernel's Makefile).
make -s -C "$HDR" M="$M" CC=gcc-12 CONFIG_NETDEVSIM=m -j"$(nproc)" modules 2>&1 | { grep -v 'Skipping BTF' || true; }
UPD=$DEST/lib/modules/$KV/updates
mkdir -p "$UPD"
for m in $MODULES_BUILT; do
    ko=$(find "$M" -name "$m.ko" | head -1)
    [[ -n $ko ]] || { echo "module $m was not built" >&2; exit 1; }
    cp "$ko" "$UPD/"
done
rm -rf "$W"                                    # sources, headers, objects

# --- trim and index the module tree ------------------------------------------------------------------------------
step depmod
# Hardware the guest never has (about 270 of 400 MB). Network, filesystems, crypto, virtio and vhost stay.
K=$DEST/lib/modules/$KV/kernel
rm -rf "$K/sound" "$K/net/wireless" "$K/net/mac80211" "$K/net/bluetooth" "$K/drivers/net/wireless"
for d in gpu media scsi usb iio infiniband staging hwmon hid input comedi mtd video target isdn bluetooth \
         mmc ata nvme platform md iommu firewire leds power regulator mfd rtc gnss thunderbolt; do
    rm -rf "${K:?}/drivers/$d"
done
depmod -b "$DEST" "$KV"
for m in $MODULES_BUILT; do
    grep -q "updates/$m.ko:" "$DEST/lib/modules/$KV/modules.dep" || { echo "depmod did not index $m" >&2; exit 1; }
done

# --- initramfs ---------------------------------------------------------------------------------------------------
step initramfs
bash "$HERE/build-initramfs.sh" "$DEST/lib/modules/$KV" "$DEST/initramfs.cpio.gz"
step done
echo "built the $KV bed in $DEST ($(du -sh "$DEST" | cut -f1))"
