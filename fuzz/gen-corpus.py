#!/usr/bin/env python3
"""Write the seed corpus of the libFuzzer harness (fuzz/harness.c) into
fuzz/corpus/: one small input per feature, in the harness's input format.

    python3 fuzz/gen-corpus.py [DIR]

Format (fuzz/harness.c; each call's arguments: fuzz/input.c and the call's
fz_do_* function): 6 header bytes, two per mapper:
  c1: log2 chunk = 12 + c1 % 5; bit 3 block_signals; bit 4 disable_names;
      bit 5 the real kernel (no test OS layer); bit 6 test OS without names;
      bit 7 test OS without THP
  c2: bit 0 test OS ignores MAP_FIXED_NOREPLACE; bit 1 with bit 5 of c1:
      mmapper_os_default() instead of NULL; bit 7 (mappers 1, 2) absent
then calls, each one byte (low nibble: the call, high nibble % 3: the mapper)
and its arguments."""
import os
import struct
import sys

MAP, QUAR, MARK, PROT, DECOMMIT, UNMAP, ANY, FOREIGN, FAULT, LOOKUP, BAD, RECREATE, TOUCH, CHECK, \
    STALE = 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 15
T_MMAP, T_MUNMAP, T_MPROTECT, T_MADVISE, T_NAME, T_ANY = range(6)
ENOMEM, EAGAIN, EPERM, EINVAL, EEXIST = range(5)


def hdr(m0=(0, 0), m1=(1, 0), m2=(4, 0)):
    return bytes([m0[0], m0[1], m1[0], m1[1], m2[0], m2[1]])


def call(op, mapper=0):
    return bytes([op | (mapper << 4)])


def rng(op, mapper=0, first=0, length=0, area=0, mis=0, opts=None):
    """length: 0..3 -> 1..4 chunks; ('n', k) -> 1 + k % 48 chunks; 'all' -> whole area."""
    if length == 'all':
        lb = 250
    elif isinstance(length, tuple):
        lb = 128 + length[1]
    else:
        lb = length
    b = call(op, mapper) + bytes([area]) + struct.pack('<H', first) + bytes([lb, mis])
    if op in (MAP, QUAR):
        b += bytes([0xf0 if opts is None else opts])
    return b


def touch(mapper=0, first=0, length=0, area=0):
    return rng(TOUCH, mapper, first, length, area) + b'\x2a'


def fault(mapper, kind, at=1, err=ENOMEM, sticky=False, holes=False, partial=False):
    k = next(k for k in range(256) if k % 6 == kind and (k >> 3) % 4 == at - 1)
    return call(FAULT, mapper) + bytes([k, err | sticky << 3 | holes << 4 | partial << 5])


def check(mapper=0, reclaim=False):
    return call(CHECK, mapper) + bytes([1 if reclaim else 0])


seeds = {}
# Every state of every mapper, data kept across protect.
life = b''
for m in range(3):
    life += rng(MAP, m, 10, 2) + touch(m, 10, 2) + rng(PROT, m, 10, 2) + rng(MAP, m, 10, 3)
    life += rng(DECOMMIT, m, 11, 0) + rng(QUAR, m, 20, 3) + rng(MAP, m, 20, 1, opts=1)
    life += rng(UNMAP, m, 10, ('n', 20)) + check(m)
seeds['lifecycle'] = hdr() + life
# Options: RWX, huge page advice, names, invalid ones.
opts = b''.join(rng(MAP, 0, 4 * i, 1, opts=o) for i, o in enumerate(
    [0, 1, 2, 4, 8, 16, 24, 32, 0x0b, 0x13, 0xc0, 0xc1, 0xc2, 0xc6, 0xcb]))
seeds['options'] = hdr() + opts + rng(QUAR, 0, 100, 3, opts=0x1c) + rng(MAP, 0, 100, 3, opts=0x0a)
seeds['options-kernels'] = hdr((0x40, 0), (0x81, 0), (0xc2, 1)) + opts
# Mappers in each other's way, and the harness's own memory.
seeds['conflicts'] = hdr((0, 0), (4, 0), (2, 0)) + rng(MAP, 0, 33, 0) + rng(MAP, 1, 2, 0) + \
    rng(QUAR, 1, 0, 3) + rng(MAP, 2, 8, 3) + rng(UNMAP, 1, 0, 'all') + rng(MAP, 2, 8, 3)
seeds['foreign'] = hdr() + call(FOREIGN) + bytes([3]) + struct.pack('<H', 40) + \
    rng(MAP, 0, 39, 3) + rng(QUAR, 1, 8, 1) + rng(UNMAP, 0, 38, 3) + rng(MARK, 0, 40, 1) + \
    call(FOREIGN) + bytes([0x45]) + struct.pack('<H', 200) + rng(QUAR, 2, 0, 'all') + \
    call(FOREIGN) + bytes([0x25]) + struct.pack('<H', 200) + rng(MARK, 2, 12, 3)
seeds['noreplace-ignored'] = hdr((0, 1), (1, 1), (2, 1)) + seeds['conflicts'][6:] + \
    seeds['foreign'][6:]
# mark_as_mapped from every state.
seeds['mark'] = hdr() + rng(QUAR, 0, 0, 3) + rng(MAP, 0, 1, 0) + rng(PROT, 0, 1, 0) + \
    touch(0, 1, 0) + rng(MARK, 0, 0, ('n', 8)) + rng(MARK, 1, 0, 3) + check(0)
# Large ranges: slabs and windows (4 KiB chunks: 40 slabs).
seeds['windows'] = hdr((0, 0), (0, 0x80), (0, 0x80)) + rng(QUAR, 0, 0, 'all') + \
    rng(MAP, 0, 1000, ('n', 47)) + rng(PROT, 0, 0, 'all') + rng(UNMAP, 0, 1020, 1) + \
    rng(PROT, 0, 0, 'all') + rng(MAP, 0, 0, 'all') + rng(PROT, 0, 0, 'all') + \
    rng(DECOMMIT, 0, 0, 'all') + rng(UNMAP, 0, 3000, 'all') + check(0, True) + \
    rng(MAP, 0, 0, 'all') + rng(UNMAP, 0, 9000, 0) + rng(PROT, 0, 0, 'all') + \
    call(LOOKUP) + bytes([0x21]) + call(LOOKUP) + bytes([0x63])
# quarantine_anywhere and calls on its areas.
seeds['anywhere'] = hdr((0, 0), (2, 0), (4, 0)) + \
    call(ANY, 1) + bytes([5, 0x08]) + call(ANY, 0) + bytes([3, 0xf0]) + \
    rng(MAP, 1, 1, 1, area=1) + rng(PROT, 1, 1, 0, area=1) + rng(MAP, 0, 0, 3, area=1) + \
    rng(DECOMMIT, 1, 0, 3, area=1) + rng(MARK, 1, 4, 0, area=1) + rng(UNMAP, 1, 0, 0, area=1) + \
    call(ANY, 2) + bytes([15, 0]) + call(ANY, 2) + bytes([1, 1]) + call(ANY, 2) + bytes([2, 2]) + \
    call(ANY, 2) + bytes([0, 0xc1]) + check(2)
# Faults: every system call kind, once and sticky, with and without holes.
f = b''
for kind in range(6):
    for err, sticky in ((ENOMEM, False), (EAGAIN, True), (EINVAL, False)):
        f += rng(MAP, 0, 10, 3) + rng(PROT, 0, 11, 0)
        f += fault(0, kind, 1 + kind % 3, err, sticky) + rng(MAP, 0, 9, ('n', 6), opts=0x0a)
        f += fault(0, kind, 1, err, sticky) + rng(DECOMMIT, 0, 9, ('n', 6))
        f += fault(0, kind, 2, err, sticky) + rng(PROT, 0, 9, ('n', 6))
        f += fault(0, kind, 1, err, sticky) + rng(QUAR, 0, 30, 3, opts=0x12)
        f += fault(0, kind, 1, err, sticky) + rng(UNMAP, 0, 0, ('n', 40))
seeds['faults'] = hdr() + f
seeds['faults-16k'] = hdr((2, 0), (1, 0x80), (1, 0x80)) + f
seeds['decommit-holes'] = hdr() + rng(MAP, 0, 0, ('n', 8)) + rng(PROT, 0, 3, 0) + \
    fault(0, T_MMAP, 1, ENOMEM, False, True) + rng(DECOMMIT, 0, 0, ('n', 8)) + \
    rng(MAP, 0, 0, ('n', 8)) + fault(0, T_MMAP, 1, ENOMEM, True, True) + \
    rng(DECOMMIT, 0, 0, ('n', 8)) + check(0) + \
    call(ANY) + bytes([7, 0]) + rng(MAP, 0, 0, 3, area=1) + \
    fault(0, T_MMAP, 1, ENOMEM, True, True) + rng(DECOMMIT, 0, 0, 3, area=1)
# A failing mprotect that changed its first VMAs: the retry chunk by chunk.
seeds['mprotect-partial'] = hdr() + b''.join(
    rng(MAP, 0, 20, ('n', 10)) + rng(PROT, 0, 22, 0) + fault(0, T_MPROTECT, at, ENOMEM, False, False, True) +
    rng(op, 0, 20, ('n', 10)) for op in (PROT, MAP, PROT, MAP) for at in (1, 2)) + check(0)
seeds['anywhere-faults'] = hdr() + b''.join(
    fault(0, k, at, e, s) + call(ANY) + bytes([7, 0x0a])
    for k in range(6) for at in (1, 2, 3) for e, s in ((ENOMEM, False), (EPERM, True)))
# Lookups of every kind of address.
look = call(LOOKUP) + bytes([32])
for i in range(32):
    k = [0, 1, 5, 13, 21, 29, 37, 45, 53, 6, 0x86, 7][i % 12]
    look += bytes([k])
    if k % 8 < 5:
        look += struct.pack('<H', i * 37)
    elif k % 8 == 7:
        look += struct.pack('>Q', 0x3dffffc00000 + i * 4096)
seeds['lookups'] = hdr() + rng(MAP, 0, 0, ('n', 30)) + rng(PROT, 0, 3, 3) + look + \
    call(LOOKUP) + bytes([0xc5, 0, 0, 0, 5, 13, 21, 29])
seeds['bad-arguments'] = hdr() + b''.join(call(BAD, m) + bytes([b]) for m in range(3)
                                           for b in (0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11,
                                                     0x14, 0x25, 0x36, 0x37, 0x38, 0x19))
# Destroying mappers that still have memory (it becomes foreign).
seeds['recreate'] = hdr() + rng(MAP, 1, 0, 3) + rng(QUAR, 1, 4, 3) + call(ANY, 1) + \
    bytes([3, 0]) + call(RECREATE, 1) + bytes([2, 0]) + rng(MAP, 1, 0, 3) + \
    rng(MAP, 0, 0, 3) + call(RECREATE, 2) + bytes([0x28, 0]) + rng(QUAR, 2, 0, 'all') + \
    call(RECREATE, 0) + bytes([0x0c, 0]) + rng(MAP, 0, 50, 2) + check(0)
seeds['real-kernel'] = hdr((0x20, 0), (0x21, 2), (0x3c, 0)) + life + seeds['anywhere'][6:] + \
    seeds['bad-arguments'][6:40]
# Memory marked mapped and unmapped behind the mapper's back, then handed out
# again by the kernel to quarantine_anywhere (its conflict path).
seeds['stale-record'] = hdr((0, 0), (2, 0), (24, 0)) + b''.join(
    call(STALE, m) + bytes([b]) for m in range(3) for b in (0, 9, 7, 0x3f, 0x1b)) + \
    check(0) + check(1) + check(2)
seeds['signals-nonames'] = hdr((0x18, 0), (0x19, 0), (0x1b, 0)) + life + opts

out = sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.path.dirname(__file__), 'corpus')
os.makedirs(out, exist_ok=True)
for name, data in seeds.items():
    with open(os.path.join(out, name), 'wb') as fh:
        fh.write(data)
print(f"{len(seeds)} seeds, {sum(len(d) for d in seeds.values())} bytes in {out}")
