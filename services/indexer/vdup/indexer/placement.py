"""Which shard owns a video: one pure function shared by the shard client, the replicas and the
resharding tool."""

from __future__ import annotations

import hashlib


def placement(video_id: str, n: int) -> int:
    """The shard (0..n-1) that owns ``video_id``: ``jump_hash`` of the first 8 bytes of
    SHA-1(utf-8 id) read as a big-endian unsigned 64-bit key.

    Why Jump Consistent Hash and not ``key mod n``: going from n to n+1 shards, a video either
    stays where it is or moves to the new shard n, and only ~1/(n+1) of them move (mod would move
    ~n/(n+1), and between old shards too). Buckets are 0..n-1, like StatefulSet ordinals.
    """
    if n < 1:
        raise ValueError(f"placement needs at least one shard, got {n}")
    return jump_hash(int.from_bytes(hashlib.sha1(video_id.encode()).digest()[:8], "big"), n)


def jump_hash(key: int, n: int) -> int:
    """Jump Consistent Hash (Lamping & Veach 2014, arXiv:1406.2294): the bucket in [0, n) of the
    unsigned 64-bit ``key``. The reference C++ loop, with its 64-bit wrap-around made explicit:

        b, j = -1, 0
        while j < n:  b = j;  key = key * 2862933555777941757 + 1 (mod 2^64)
                      j = floor((b + 1) * 2^31 / ((key >> 33) + 1))

    Same results as the published implementations (e.g. jump_hash(256, 1024) = 520).
    """
    b, j = -1, 0
    while j < n:
        b = j
        key = (key * 2862933555777941757 + 1) & 0xFFFF_FFFF_FFFF_FFFF
        j = int((b + 1) * (float(1 << 31) / float((key >> 33) + 1)))
    return b
