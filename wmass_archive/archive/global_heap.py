"""A pre-flight check of the HDF5 global heap collections of a file, before libhdf5 reads them.

Variable-length data (the root attributes' strings of format 1.0 archives, written by h5py as
variable-length UTF-8) lives in *global heap collections* (HDF5 file format specification,
section III.E): a header ``"GCOL"``, version 1, three reserved bytes, the collection's size, then
objects, each an index (2 bytes), a reference count (2), 4 reserved bytes, a size (the file's
"size of lengths", usually 8) and the data padded to 8 bytes. Object 0 is the free space; its
size already counts its header.

libhdf5 (2.0.0 here) decodes a collection by stepping from one object to the next by the
object's stored size. A record that does not advance (object 0 of size 0, or a size that wraps
the step to 0 in C's ``size_t``) makes ``H5HG__cache_heap_deserialize`` loop forever, inside
the C library where no Python timeout reaches (the symptom of HDFGroup/hdf5#1707). Every other
malformation of a collection is refused by libhdf5 itself with an error.

:func:`check_global_heaps` finds the collections by their header and walks each one as libhdf5
would, refusing a file in which a step would be shorter than an object header (a well-formed
collection never has one: objects are at least a header long, and libhdf5 writes an explicit
free-space record only when it fits a header). A signature inside a collection already walked
is data, not another collection. The walk reads the file through ``mmap`` without copying a
collection (a few milliseconds for the 18 MB default archive), and its time is bounded: an
archive keeps variable-length data only in a few attributes (docs/format.md section 1), so a
file with more than :data:`MAX_COLLECTIONS` collections or :data:`MAX_OBJECTS` objects is
refused rather than walked (a real collection holds at most 65 535 objects, libhdf5's index
limit).
"""

from __future__ import annotations

import mmap
import os
import re
from pathlib import Path

from ..errors import CorruptArchiveError

SIGNATURE = b"GCOL"
VERSION = 1
#: the signature, version 1 and the three reserved bytes: the header libhdf5 accepts
_HEADER = re.compile(re.escape(SIGNATURE + bytes([VERSION, 0, 0, 0])))
_ALIGN = 8
_SIZE_T = 2**64  # libhdf5 computes a step in size_t
MAX_COLLECTIONS = 4096
MAX_OBJECTS = 2**20


def _align(n: int) -> int:
    return (n + _ALIGN - 1) // _ALIGN * _ALIGN


def check_global_heaps(path: str | os.PathLike, sizeof_size: int = 8) -> int:
    """Refuse (CorruptArchiveError) a file with a global heap collection that libhdf5 would
    never finish decoding, or with more variable-length data than an archive holds.
    ``sizeof_size``: the superblock's size of lengths in bytes (2, 4, 8, 16 or 32). Returns the
    number of collections checked."""
    path = Path(path)
    with open(path, "rb") as fh:
        size = os.fstat(fh.fileno()).st_size
        if size == 0:
            return 0
        with mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ) as mm:
            n_coll = n_obj = 0
            m = _HEADER.search(mm)
            while m is not None:
                at = m.start()
                walked = _walk(mm, at, size, sizeof_size, path.name)
                if walked is None:  # not a collection: look on from the next byte
                    m = _HEADER.search(mm, at + 1)
                    continue
                end, objects = walked
                n_coll, n_obj = n_coll + 1, n_obj + objects
                if n_coll > MAX_COLLECTIONS or n_obj > MAX_OBJECTS:
                    raise CorruptArchiveError(
                        f"{path.name}: more than {MAX_COLLECTIONS} HDF5 global heap "
                        f"collections or {MAX_OBJECTS} objects in them: far more "
                        f"variable-length data than an archive holds"
                    )
                m = _HEADER.search(mm, end)
            return n_coll


def _walk(mm: mmap.mmap, at: int, file_size: int, sizeof_size: int, name: str):
    """Walk the collection whose header is at byte ``at``: (its end, its number of records),
    or None when its size does not fit the file (a chance match in data, or damage libhdf5
    reports itself)."""
    hdr = _align(4 + 1 + 3 + sizeof_size)
    objhdr = _align(2 + 2 + 4 + sizeof_size)
    if at + hdr > file_size:
        return None
    coll_size = int.from_bytes(mm[at + 8 : at + 8 + sizeof_size], "little")
    end = at + coll_size
    if coll_size < hdr or end > file_size:
        return None
    p, records = at + hdr, 0
    while p + objhdr <= end:  # a tail shorter than a header is free space
        idx = int.from_bytes(mm[p : p + 2], "little")
        obj_size = int.from_bytes(mm[p + 8 : p + 8 + sizeof_size], "little")
        step = (objhdr + _align(obj_size) if idx > 0 else obj_size) % _SIZE_T
        if step < objhdr:
            what = "free-space record" if idx == 0 else f"object {idx}"
            raise CorruptArchiveError(
                f"{name}: the HDF5 global heap collection at byte {at} is damaged (its "
                f"{what} at byte {p} has size {obj_size}, shorter than its own header), "
                f"which would make the HDF5 library loop for ever; the file cannot be read"
            )
        p += step
        records += 1
        if records > MAX_OBJECTS:
            break  # the caller refuses the file
    return end, records  # end > at: coll_size >= hdr
