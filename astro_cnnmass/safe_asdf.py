"""Bound what an ASDF file may cost before asdf parses, validates or decompresses it.

An ASDF file is a YAML tree followed by binary blocks (each starting with the magic
``b"\\xd3BLK"``). asdf itself trusts both: a YAML *alias bomb* (a few hundred bytes of anchors
and aliases that expand to 10^9 nodes) makes schema validation run for minutes, and a block
whose header declares a small compressed size and a huge decompressed size (a *zlib bomb*) is
inflated into memory before any digest can refuse it. :func:`prescan` reads only the YAML text
and the fixed-size block headers and refuses, in time linear in the file's YAML size:

* YAML anchors and aliases (astro_cnnmass never writes them), trees with more nodes or a
  deeper nesting than a limit (nodes are counted inside libyaml, without building Python
  objects; the slower event-by-event scan runs only where the text holds ``&`` or ``*`` or the
  file has compressed blocks);
* blocks whose headers are inconsistent or run past the end of the file;
* compressed blocks that would inflate to more than the arrays of the tree that use them
  (``shape`` x ``datatype``), and files whose decompressed blocks exceed a ceiling.

The YAML is scanned with PyYAML's event parser (the libyaml one when available), which never
builds or expands a node graph. Only then is the file handed to ``asdf.open``.

>>> from astro_cnnmass.safe_asdf import prescan                 # doctest: +SKIP
>>> report = prescan("model.asdf", max_decompressed_bytes=2**29)  # doctest: +SKIP
"""

from __future__ import annotations

import os
import re
import struct
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import yaml

__all__ = ["BLOCK_MAGIC", "BlockHeader", "ScanReport", "UnsafeFileError", "prescan"]

#: The magic token that starts every ASDF binary block.
BLOCK_MAGIC = b"\xd3BLK"
_HEADER = struct.Struct(">I4sQQQ16s")  # flags, compression, allocated, used, data, checksum
_STREAMED = 0x1
_Loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
# asdf datatype names that numpy spells differently
_DATATYPES = {"bool8": "bool"}


class UnsafeFileError(ValueError):
    """An ASDF file refused before parsing: it would cost more than the limits allow."""


@dataclass(frozen=True)
class BlockHeader:
    """Header of one ASDF block (sizes in bytes).

    Attributes
    ----------
    index : int
        Block number (the ``source`` of the arrays stored in it).
    offset : int
        Byte offset of the block magic in the file.
    compression : bytes
        4-byte compression code (``b"\\0\\0\\0\\0"`` for none, ``b"zlib"``, ``b"bzp2"``, ...).
    allocated_size, used_size, data_size : int
        Space reserved in the file, bytes used on disk, and size after decompression.
    streamed : bool
        Whether this is a streamed block (it runs to the end of the file).
    """

    index: int
    offset: int
    compression: bytes
    allocated_size: int
    used_size: int
    data_size: int
    streamed: bool

    @property
    def compressed(self) -> bool:
        """True when the block is stored compressed."""
        return self.compression.strip(b"\0") != b""


@dataclass
class ScanReport:
    """What :func:`prescan` found.

    Attributes
    ----------
    yaml_bytes : int
        Length of the YAML tree (bytes before the first block).
    n_nodes : int
        YAML nodes (scalars, sequences and mappings) in the tree.
    max_depth : int
        Deepest nesting of sequences and mappings (-1: not measured, see :func:`prescan`).
    blocks : list of BlockHeader
        The block headers, in file order.
    needed_bytes : dict of int to int
        For each block referenced by an ndarray of the tree, the bytes those arrays need.
    """

    yaml_bytes: int
    n_nodes: int
    max_depth: int
    blocks: list[BlockHeader] = field(default_factory=list)
    needed_bytes: dict[int, int] = field(default_factory=dict)

    @property
    def decompressed_bytes(self) -> int:
        """Sum of the decompressed sizes of all blocks, bytes."""
        return sum(b.data_size for b in self.blocks)


def prescan(
    path: str | os.PathLike,
    *,
    max_yaml_bytes: int = 64 * 2**20,
    max_nodes: int = 500_000,
    max_depth: int = 100,
    max_decompressed_bytes: int | None = 2**30,
    max_blocks: int = 100_000,
) -> ScanReport:
    """Check an ASDF file's YAML tree and block headers against cost limits.

    Parameters
    ----------
    path : str or os.PathLike
        The file.
    max_yaml_bytes : int
        Longest YAML tree accepted, bytes.
    max_nodes : int
        Most YAML nodes accepted.
    max_depth : int
        Deepest nesting of mappings and sequences accepted where the tree is scanned event by
        event (it holds ``&`` or ``*`` or the file has compressed blocks); elsewhere libyaml's
        own limit (1000 levels) applies.
    max_decompressed_bytes : int or None
        Ceiling on the summed decompressed size of the *compressed* blocks, bytes (None: no
        ceiling). Uncompressed blocks are bounded by the file itself.
    max_blocks : int
        Most blocks accepted.

    Returns
    -------
    ScanReport

    Raises
    ------
    UnsafeFileError
        The file uses YAML anchors or aliases, exceeds a limit, has inconsistent or truncated
        block headers, or has a compressed block that inflates beyond its arrays.
    OSError
        The file cannot be read.
    """
    path = Path(path)
    size = path.stat().st_size
    with open(path, "rb") as f:
        text = _read_yaml_part(f, max_yaml_bytes, path)
        yaml_end = len(text)
        blocks = _read_block_headers(f, yaml_end, size, path, max_blocks)
    n_events = _count_events(text, path)
    if n_events is not None and n_events > max_nodes:
        raise UnsafeFileError(
            f"{path}: the YAML tree has more than {max_nodes} nodes: refusing to parse it"
        )
    if n_events is not None and not (
        b"&" in text
        or b"*" in text
        or any(b.compressed for b in blocks)
        or _depth_bound(text) > max_depth
    ):
        # no anchor or alias can be written without '&' / '*', no array size is needed, and
        # the nesting is bounded: the libyaml count is enough
        n_nodes, depth, arrays = n_events, -1, []
    else:
        n_nodes, depth, arrays = _scan_yaml(text, path, max_nodes, max_depth)
    needed: dict[int, int] = {}
    for source, nbytes in arrays:
        needed[source] = max(needed.get(source, 0), nbytes)
    report = ScanReport(yaml_end, n_nodes, depth, blocks, needed)
    total = 0
    for b in blocks:
        if not b.compressed:
            continue
        want = needed.get(b.index, 0)
        if b.data_size > want:
            raise UnsafeFileError(
                f"{path}: compressed block {b.index} declares {b.data_size} bytes after "
                f"decompression but the arrays that use it need {want}: refusing to inflate it"
            )
        total += b.data_size
    if max_decompressed_bytes is not None and total > max_decompressed_bytes:
        raise UnsafeFileError(
            f"{path}: compressed blocks would inflate to {total} bytes, more than the "
            f"{max_decompressed_bytes} allowed for this kind of file"
        )
    for b in blocks:
        want = needed.get(b.index)
        if want is not None and not b.streamed and b.data_size < want:
            raise UnsafeFileError(
                f"{path}: block {b.index} holds {b.data_size} bytes but its arrays need {want} "
                "(truncated or altered file)"
            )
    return report


def _read_yaml_part(f, max_yaml_bytes: int, path: Path) -> bytes:
    """The bytes before the first block magic (at most ``max_yaml_bytes``)."""
    buf = bytearray()
    chunk = 1 << 20
    while True:
        piece = f.read(chunk)
        if not piece:
            break
        start = max(0, len(buf) - len(BLOCK_MAGIC) + 1)
        buf += piece
        hit = buf.find(BLOCK_MAGIC, start)
        if hit >= 0:
            del buf[hit:]
            break
        if len(buf) > max_yaml_bytes:
            break
    if len(buf) > max_yaml_bytes:
        raise UnsafeFileError(
            f"{path}: the YAML tree is longer than {max_yaml_bytes} bytes: refusing to parse it"
        )
    index = buf.find(b"\n#ASDF BLOCK INDEX")
    if index >= 0:  # a file without blocks may still end with an (empty) index
        del buf[index + 1 :]
    return bytes(buf)


def _depth_bound(text: bytes) -> int:
    """An upper bound of the nesting depth: flow brackets + indentation + compact dashes."""
    arr = np.frombuffer(text, dtype=np.uint8)
    step = np.zeros(arr.size, dtype=np.int64)
    step[(arr == ord("[")) | (arr == ord("{"))] = 1
    step[(arr == ord("]")) | (arr == ord("}"))] = -1
    flow = int(np.cumsum(step).max(initial=0))
    indent = max((len(m) for m in re.findall(rb"\n( *)", text)), default=0)
    dashes = max((len(m) // 2 for m in re.findall(rb"(?:- )+", text)), default=0)
    return flow + indent + dashes + 2


def _count_events(text: bytes, path: Path) -> int | None:
    """Number of YAML events, counted inside libyaml (no Python objects); None without it."""
    try:
        from yaml._yaml import CParser as parser  # libyaml's parser (PyYAML's C extension)
    except ImportError:
        return None
    if not hasattr(parser, "raw_parse"):
        return None
    try:
        return int(parser(text).raw_parse())
    except yaml.YAMLError as exc:
        raise UnsafeFileError(f"{path}: the YAML tree is not valid YAML: {exc}") from exc


def _scan_yaml(
    text: bytes, path: Path, max_nodes: int, max_depth: int
) -> tuple[int, int, list[tuple[int, int]]]:
    """Count nodes and depth, refuse anchors/aliases, and collect (source, nbytes) of ndarrays."""
    # frames: [kind, is_ndarray, expecting_key, current_key, info]
    stack: list[list] = []
    arrays: list[tuple[int, int]] = []
    n_nodes = 0
    depth = 0
    try:
        for event in yaml.parse(text, Loader=_Loader):
            if isinstance(event, yaml.AliasEvent):
                raise UnsafeFileError(
                    f"{path}: the YAML tree uses an alias (*{event.anchor}); "
                    "astro_cnnmass files never do (it is how YAML 'bombs' expand)"
                )
            if not isinstance(event, yaml.NodeEvent):
                if isinstance(event, yaml.CollectionEndEvent) and stack:
                    frame = stack.pop()
                    if frame[1]:
                        nbytes = _ndarray_nbytes(frame[4])
                        if nbytes is not None:
                            arrays.append(nbytes)
                    _value_done(stack)
                continue
            if event.anchor is not None:
                raise UnsafeFileError(
                    f"{path}: the YAML tree defines an anchor (&{event.anchor}); "
                    "astro_cnnmass files never do (it is how YAML 'bombs' expand)"
                )
            n_nodes += 1
            if n_nodes > max_nodes:
                raise UnsafeFileError(
                    f"{path}: the YAML tree has more than {max_nodes} nodes: refusing to parse it"
                )
            parent = stack[-1] if stack else None
            if isinstance(event, yaml.ScalarEvent):
                _scalar(parent, event.value)
                continue
            kind = "map" if isinstance(event, yaml.MappingStartEvent) else "seq"
            tag = event.tag or ""
            is_array = kind == "map" and "core/ndarray-" in tag
            info: dict = {}
            if parent is not None and parent[1] and parent[3] == "shape" and kind == "seq":
                parent[4]["shape"] = info.setdefault("items", [])
            stack.append([kind, is_array, True, None, info])
            depth = max(depth, len(stack))
            if depth > max_depth:
                raise UnsafeFileError(f"{path}: the YAML tree nests deeper than {max_depth} levels")
    except yaml.YAMLError as exc:
        raise UnsafeFileError(f"{path}: the YAML tree is not valid YAML: {exc}") from exc
    return n_nodes, depth, arrays


def _scalar(frame: list | None, value: str) -> None:
    if frame is None:
        return
    kind, is_array, expecting_key, key, info = frame
    if kind == "seq":
        if "items" in info:
            info["items"].append(value)
        return
    if expecting_key:
        frame[2], frame[3] = False, value
        return
    if is_array and key in ("source", "datatype", "offset", "byteorder"):
        info[key] = value
    _value_done([frame])


def _value_done(stack: list[list]) -> None:
    """A mapping value (scalar or collection) is complete: the next scalar is a key."""
    if stack and stack[-1][0] == "map":
        stack[-1][2], stack[-1][3] = True, None


def _ndarray_nbytes(info: dict) -> tuple[int, int] | None:
    """(block index, bytes needed) of an ndarray node, or None for inline / odd arrays."""
    try:
        source = int(info["source"])
        shape = [int(s) for s in info["shape"]]
        dtype = np.dtype(_DATATYPES.get(info["datatype"], info["datatype"]))
        offset = int(info.get("offset", 0))
    except (KeyError, TypeError, ValueError):
        return None
    if source < 0 or any(s < 0 for s in shape):
        return None
    return source, offset + int(np.prod(shape, dtype=object)) * dtype.itemsize


def _read_block_headers(f, start: int, size: int, path: Path, max_blocks: int) -> list[BlockHeader]:
    blocks: list[BlockHeader] = []
    pos = start
    while pos < size:
        f.seek(pos)
        head = f.read(6)
        if head[:4] != BLOCK_MAGIC:
            break  # the block index (or trailing text) follows the last block
        if len(head) < 6:
            raise UnsafeFileError(f"{path}: block {len(blocks)} header is truncated")
        (header_size,) = struct.unpack(">H", head[4:6])
        if header_size < _HEADER.size:
            raise UnsafeFileError(
                f"{path}: block {len(blocks)} header is {header_size} bytes, "
                f"expected at least {_HEADER.size}"
            )
        raw = f.read(header_size)
        if len(raw) < header_size:
            raise UnsafeFileError(f"{path}: block {len(blocks)} header is truncated")
        flags, compression, allocated, used, data, _ = _HEADER.unpack(raw[: _HEADER.size])
        streamed = bool(flags & _STREAMED)
        data_start = pos + 6 + header_size
        if not streamed:
            if used > allocated:
                raise UnsafeFileError(
                    f"{path}: block {len(blocks)} uses {used} bytes of {allocated} allocated"
                )
            if data_start + allocated > size:
                raise UnsafeFileError(
                    f"{path}: block {len(blocks)} runs past the end of the file (truncated file)"
                )
            if compression.strip(b"\0") == b"" and used != data:
                raise UnsafeFileError(
                    f"{path}: uncompressed block {len(blocks)} declares {data} bytes of data "
                    f"but {used} on disk"
                )
        blocks.append(
            BlockHeader(
                len(blocks), pos, compression, int(allocated), int(used), int(data), streamed
            )
        )
        if len(blocks) > max_blocks:
            raise UnsafeFileError(f"{path}: more than {max_blocks} blocks")
        if streamed:
            break
        pos = data_start + allocated
    return blocks
