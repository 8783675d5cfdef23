"""Extract the uncompressed ELF kernel from a bzImage, for QEMU's PVH entry.

Why: under TCG, the bzImage's own decompressor costs about 3 s of every boot. QEMU boots an ELF `vmlinux`
directly when it carries the PVH entry note (XEN_ELFNOTE_PHYS32_ENTRY, CONFIG_PVH=y), so we decompress once
at build time. The payload is located through the boot protocol header (payload_offset/payload_length,
protocol >= 2.08) rather than by searching for a magic number, so a stray magic inside the setup code cannot
fool it.

Usage: python3 extract_vmlinux.py BZIMAGE OUT
"""

from __future__ import annotations

import bz2
import lzma
import struct
import sys
import zlib
from pathlib import Path

XEN_ELFNOTE_PHYS32_ENTRY = 18


def payload(image: bytes) -> bytes:
    """The compressed kernel inside a bzImage."""
    if image[0x202:0x206] != b"HdrS":
        raise SystemExit("not a bzImage: no HdrS boot header")
    version = struct.unpack_from("<H", image, 0x206)[0]
    if version < 0x208:
        raise SystemExit(f"boot protocol {version:#x} has no payload fields (need >= 0x208)")
    setup_sects = image[0x1F1] or 4
    start = (setup_sects + 1) * 512
    offset, length = struct.unpack_from("<II", image, 0x248)
    return image[start + offset : start + offset + length]


def decompress(data: bytes) -> bytes:
    if data.startswith(b"\xfd7zXZ\x00"):
        # The kernel appends the uncompressed size after the stream; the decompressor stops at the stream end.
        return lzma.LZMADecompressor(format=lzma.FORMAT_XZ).decompress(data)
    if data.startswith(b"\x1f\x8b"):
        return zlib.decompressobj(wbits=31).decompress(data)  # ignores the appended size
    if data.startswith(b"BZh"):
        return bz2.BZ2Decompressor().decompress(data)
    if data.startswith(b"\x5d\x00\x00"):
        return lzma.LZMADecompressor(format=lzma.FORMAT_ALONE).decompress(data)
    raise SystemExit(f"unsupported kernel compression (magic {data[:4].hex()}); known: xz, gzip, bzip2, lzma")


def has_pvh_note(elf: bytes) -> bool:
    """True when a PT_NOTE segment holds the Xen PHYS32_ENTRY note that QEMU's PVH loader looks for."""
    if elf[:4] != b"\x7fELF" or elf[4] != 2:
        raise SystemExit("the decompressed kernel is not a 64-bit ELF")
    phoff = struct.unpack_from("<Q", elf, 0x20)[0]
    phentsize, phnum = struct.unpack_from("<HH", elf, 0x36)
    for i in range(phnum):
        p_type, _flags, p_offset, _vaddr, _paddr, p_filesz = struct.unpack_from("<IIQQQQ", elf, phoff + i * phentsize)
        if p_type != 4:  # PT_NOTE
            continue
        pos, end = p_offset, p_offset + p_filesz
        while pos + 12 <= end:
            namesz, descsz, ntype = struct.unpack_from("<III", elf, pos)
            name = elf[pos + 12 : pos + 12 + namesz].rstrip(b"\0")
            if name == b"Xen" and ntype == XEN_ELFNOTE_PHYS32_ENTRY:
                return True
            pos += 12 + (namesz + 3) // 4 * 4 + (descsz + 3) // 4 * 4
    return False


def main(argv: list[str]) -> int:
    if len(argv) != 3:
        print(__doc__, file=sys.stderr)
        return 2
    elf = decompress(payload(Path(argv[1]).read_bytes()))
    if not has_pvh_note(elf):
        raise SystemExit("the kernel has no PVH entry note (CONFIG_PVH); QEMU cannot boot it as an ELF")
    Path(argv[2]).write_bytes(elf)
    print(f"vmlinux: {len(elf) / 1e6:.1f} MB, PVH entry note present")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
