"""A BGZF writer that compresses on worker threads: the blocks htslib's ``bgzf_write`` makes (0xff00 bytes of input
each, raw deflate at zlib's default level, the standard header, CRC32 and size, the empty EOF block), so the file
has the same bytes as ``pysam.BGZFile(path, "wb")`` writes with a zlib-built htslib, while the caller goes on
(zlib releases the GIL; pysam's write holds it)."""

from __future__ import annotations

import struct
import zlib
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from types import TracebackType

BLOCK = 0xFF00  # htslib's BGZF_BLOCK_SIZE: input bytes per block
_HEADER = b"\x1f\x8b\x08\x04\x00\x00\x00\x00\x00\xff\x06\x00BC\x02\x00"  # gzip header with the BC extra field
EOF_BLOCK = bytes.fromhex("1f8b08040000000000ff0600424302001b0003000000000000000000")


def compress_block(data: bytes) -> bytes:
    """One BGZF block of ``data`` (at most :data:`BLOCK` bytes)."""
    c = zlib.compressobj(zlib.Z_DEFAULT_COMPRESSION, zlib.DEFLATED, -15, 8, zlib.Z_DEFAULT_STRATEGY)
    body = c.compress(data) + c.flush()
    return _HEADER + struct.pack("<H", len(body) + 25) + body + struct.pack("<II", zlib.crc32(data), len(data))


class BgzfWriter:
    """``with BgzfWriter(path) as out: out.write(bytes)``: blocks compressed by ``threads`` threads, written in
    order; at most ``in_flight`` blocks wait (memory stays bounded). The EOF block is written on a clean exit."""

    def __init__(self, path: str | Path, threads: int = 2, in_flight: int = 128) -> None:
        self._fh = open(path, "wb")  # noqa: SIM115 - closed by __exit__
        self._pool = ThreadPoolExecutor(max(1, threads), thread_name_prefix="bgzf")
        self._buf = bytearray()
        self._todo: deque[Future[bytes]] = deque()
        self._in_flight = in_flight

    def write(self, data: bytes) -> None:
        self._buf += data
        n = len(self._buf) // BLOCK * BLOCK
        if n:
            self._submit(bytes(self._buf[:n]))
            del self._buf[:n]

    def _submit(self, data: bytes) -> None:
        todo = self._todo
        for i in range(0, len(data), BLOCK):
            todo.append(self._pool.submit(compress_block, data[i:i + BLOCK]))
            while todo and (todo[0].done() or len(todo) > self._in_flight):
                self._fh.write(todo.popleft().result())

    def __enter__(self) -> BgzfWriter:
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        try:
            if kind is None:
                if self._buf:
                    self._submit(bytes(self._buf))
                while self._todo:
                    self._fh.write(self._todo.popleft().result())
                self._fh.write(EOF_BLOCK)
        finally:
            for f in self._todo:
                f.cancel()
            self._pool.shutdown(wait=True)
            self._fh.close()
