"""Hash functions Envoy's consistent-hashing balancers use, in pure Python.

:func:`xxh64` is xxHash64 (Envoy's ``HashUtil::xxHash64``: ring hash entries,
Maglev offsets/skips, hash-policy keys); :func:`murmur2_64` is the 64-bit
MurmurHash2 of libstdc++'s ``std::hash`` (Envoy's ring-hash ``MURMUR_HASH_2``
option, seed 0xc70f6907).  Both are bit-exact with the reference C code (the
tests pin the xxHash sanity vectors and Envoy's own hash test vectors).

:func:`xxh64_batch` hashes many short keys at once with numpy (same results,
used to build large rings), and :func:`hash_key` turns request attributes
(client id, header value, source address) into the 64-bit key that
``Balancer.pick(now_ms, key)`` takes.

:func:`mt19937_words` and :func:`bounded_load_probe_order` reproduce the
probe order of Envoy's bounded-load hashing (``hash_balance_factor``): a
Fisher-Yates shuffle of the host indices driven by ``std::mt19937`` seeded
with the request's hash.  Envoy writes the shuffle and its bounded integer
draw itself (not ``std::shuffle``/``std::uniform_int_distribution``, whose
results differ between standard libraries), so the order is bit-exact.

>>> hex(xxh64(b""))
'0xef46db3751d8e999'
>>> xxh64("foo") == 3728699739546630719    # Envoy's test/common/common/hash_test.cc
True
>>> murmur2_64("foo") == 9631199822919835226
True
>>> [int(h) for h in xxh64_batch([b"foo", b"bar"])] == [xxh64(b"foo"), xxh64(b"bar")]
True
>>> hash_key(client_id="alice") == xxh64("alice")
True
>>> int(mt19937_words(5489, 10000)[-1])     # the C++ standard's check of std::mt19937
4123659995
>>> bounded_load_probe_order(xxh64("alice"), 6)
[5, 1, 4, 3, 0, 2]
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from functools import lru_cache

import numpy as np

__all__ = ["MURMUR_STD_SEED", "bounded_load_probe_order", "hash_key", "murmur2_64", "mt19937_words", "xxh64",
           "xxh64_batch"]

_M64 = 0xFFFFFFFFFFFFFFFF
_P1 = 0x9E3779B185EBCA87
_P2 = 0xC2B2AE3D27D4EB4F
_P3 = 0x165667B19E3779F9
_P4 = 0x85EBCA77C2B2AE63
_P5 = 0x27D4EB2F165667C5

#: libstdc++'s std::hash seed, Envoy's ``MurmurHash::STD_HASH_SEED``
MURMUR_STD_SEED = 0xC70F6907
_MUL = 0xC6A4A7935BD1E995


def _as_bytes(data: bytes | bytearray | memoryview | str) -> bytes:
    if isinstance(data, str):
        return data.encode("utf-8")
    return bytes(data)


def _round(acc: int, lane: int) -> int:
    acc = (acc + lane * _P2) & _M64
    acc = ((acc << 31) | (acc >> 33)) & _M64
    return (acc * _P1) & _M64


def _merge(h: int, acc: int) -> int:
    h ^= _round(0, acc)
    return (h * _P1 + _P4) & _M64


def xxh64(data: bytes | bytearray | memoryview | str, seed: int = 0) -> int:
    """xxHash64 of ``data`` (``str`` is UTF-8 encoded) as an unsigned 64-bit int.

    >>> hex(xxh64(b"", 0x9E3779B1))        # xxHash sanity vector: len 0, seed PRIME32
    '0xac75fda2929b17ef'
    """
    b = _as_bytes(data)
    n = len(b)
    seed &= _M64
    p = 0
    if n >= 32:
        v1 = (seed + _P1 + _P2) & _M64
        v2 = (seed + _P2) & _M64
        v3 = seed
        v4 = (seed - _P1) & _M64
        limit = n - 32
        while p <= limit:
            l1, l2, l3, l4 = (int.from_bytes(b[p + k : p + k + 8], "little") for k in (0, 8, 16, 24))
            v1 = _round(v1, l1)
            v2 = _round(v2, l2)
            v3 = _round(v3, l3)
            v4 = _round(v4, l4)
            p += 32
        h = (
            ((v1 << 1) | (v1 >> 63))
            + ((v2 << 7) | (v2 >> 57))
            + ((v3 << 12) | (v3 >> 52))
            + ((v4 << 18) | (v4 >> 46))
        ) & _M64
        h = _merge(_merge(_merge(_merge(h, v1), v2), v3), v4)
    else:
        h = (seed + _P5) & _M64
    h = (h + n) & _M64
    while p + 8 <= n:
        k1 = _round(0, int.from_bytes(b[p : p + 8], "little"))
        h ^= k1
        h = ((((h << 27) | (h >> 37)) & _M64) * _P1 + _P4) & _M64
        p += 8
    if p + 4 <= n:
        h ^= (int.from_bytes(b[p : p + 4], "little") * _P1) & _M64
        h = ((((h << 23) | (h >> 41)) & _M64) * _P2 + _P3) & _M64
        p += 4
    while p < n:
        h ^= (b[p] * _P5) & _M64
        h = ((((h << 11) | (h >> 53)) & _M64) * _P1) & _M64
        p += 1
    h ^= h >> 33
    h = (h * _P2) & _M64
    h ^= h >> 29
    h = (h * _P3) & _M64
    return h ^ (h >> 32)


def _rotl(x: np.ndarray, r: int) -> np.ndarray:
    return (x << np.uint64(r)) | (x >> np.uint64(64 - r))


def _round_np(acc: np.ndarray, lane: np.ndarray) -> np.ndarray:
    return _rotl(acc + lane * np.uint64(_P2), 31) * np.uint64(_P1)


def _xxh64_same_length(buf: np.ndarray, seed: int) -> np.ndarray:
    """xxh64 of each row of a (keys, n) uint8 array; rows all have n < 32 bytes."""
    rows, n = buf.shape
    h = np.full(rows, (seed + _P5 + n) & _M64, dtype=np.uint64)
    p = 0
    while p + 8 <= n:
        lane = np.ascontiguousarray(buf[:, p : p + 8]).view("<u8").ravel().astype(np.uint64)
        h ^= _round_np(np.zeros(rows, dtype=np.uint64), lane)
        h = _rotl(h, 27) * np.uint64(_P1) + np.uint64(_P4)
        p += 8
    if p + 4 <= n:
        lane = np.ascontiguousarray(buf[:, p : p + 4]).view("<u4").ravel().astype(np.uint64)
        h ^= lane * np.uint64(_P1)
        h = _rotl(h, 23) * np.uint64(_P2) + np.uint64(_P3)
        p += 4
    while p < n:
        h ^= buf[:, p].astype(np.uint64) * np.uint64(_P5)
        h = _rotl(h, 11) * np.uint64(_P1)
        p += 1
    h ^= h >> np.uint64(33)
    h *= np.uint64(_P2)
    h ^= h >> np.uint64(29)
    h *= np.uint64(_P3)
    return h ^ (h >> np.uint64(32))


def xxh64_batch(keys: Sequence[bytes | str], seed: int = 0) -> np.ndarray:
    """xxh64 of every key, as a uint64 array; vectorised for keys under 32 bytes.

    Equal to ``[xxh64(k, seed) for k in keys]``, but fast enough to build rings
    of hundreds of thousands of entries.

    >>> xxh64_batch(["a", "bb", "x" * 40]).tolist() == [xxh64(k) for k in ["a", "bb", "x" * 40]]
    True
    """
    raw = [_as_bytes(k) for k in keys]
    out = np.empty(len(raw), dtype=np.uint64)
    by_len: dict[int, list[int]] = {}
    for i, k in enumerate(raw):
        by_len.setdefault(len(k), []).append(i)
    with np.errstate(over="ignore"):
        for n, idx in by_len.items():
            if n >= 32:
                out[idx] = [xxh64(raw[i], seed) for i in idx]
                continue
            joined = b"".join(raw[i] for i in idx)
            buf = np.frombuffer(joined, dtype=np.uint8).reshape(len(idx), n)
            out[idx] = _xxh64_same_length(buf, seed)
    return out


def murmur2_64(data: bytes | bytearray | memoryview | str, seed: int = MURMUR_STD_SEED) -> int:
    """64-bit MurmurHash2 as in libstdc++ ``_Hash_bytes`` (Envoy ``murmurHash2``).

    >>> murmur2_64("") == 6142509188972423790      # Envoy hash_test.cc
    True
    """
    b = _as_bytes(data)
    n = len(b)
    h = (seed ^ (n * _MUL)) & _M64
    aligned = n & ~7
    for p in range(0, aligned, 8):
        d = (int.from_bytes(b[p : p + 8], "little") * _MUL) & _M64
        d = ((d ^ (d >> 47)) * _MUL) & _M64
        h = ((h ^ d) * _MUL) & _M64
    if n & 7:
        h = ((h ^ int.from_bytes(b[aligned:], "little")) * _MUL) & _M64
    h = ((h ^ (h >> 47)) * _MUL) & _M64
    return h ^ (h >> 47)


def hash_key(
    client_id: str | None = None,
    *,
    header: str | None = None,
    source_address: str | None = None,
    seed: int = 0,
) -> int:
    """The 64-bit hash key of a request, from the first attribute given.

    Mirrors an Envoy ``hash_policy`` list that hashes one attribute with
    xxh64: a client id (e.g. a user or session id), a header value, or the
    downstream source address (``connection_properties.source_ip``).

    >>> hash_key(header="x-user: 42") == xxh64("x-user: 42")
    True
    >>> hash_key()
    Traceback (most recent call last):
    ...
    ValueError: hash_key needs one of client_id, header, source_address
    """
    for value in (client_id, header, source_address):
        if value is not None:
            return xxh64(value, seed)
    raise ValueError("hash_key needs one of client_id, header, source_address")


# --------------------------------------------------------------------------- Envoy's bounded-load probe order

_M32 = 0xFFFFFFFF
_local = threading.local()


def mt19937_words(seed: int, count: int) -> np.ndarray:
    """The first ``count`` outputs (uint32) of C++'s ``std::mt19937(seed)``.

    ``std::mt19937`` keeps ``seed mod 2**32`` and seeds with Matsumoto and
    Nishimura's ``init_genrand``, which is also how numpy's legacy
    ``RandomState.seed(int)`` seeds its MT19937; a full-range ``uint32``
    ``randint`` of ``RandomState`` returns the raw words.  The C++ standard
    requires the 10000th output of the default seed 5489 to be 4123659995.

    >>> [int(w) for w in mt19937_words(5489, 2)]
    [3499211612, 581869302]
    """
    rs = getattr(_local, "rs", None)
    if rs is None:
        rs = _local.rs = np.random.RandomState(0)
    rs.seed(seed & _M32)
    return rs.randint(0, 1 << 32, size=count, dtype=np.uint32)


def bounded_load_probe_order(h: int, n: int) -> list[int]:
    """The order in which Envoy's bounded-load hashing probes ``n`` hosts for hash ``h``.

    Envoy's ``BoundedLoadHashingLoadBalancer::chooseHost`` (source
    ``thread_aware_lb_impl.cc``): when the hashed host is overloaded it
    shuffles the indices ``0..n-1`` of its normalised host list with
    ``std::mt19937 random(hash)`` (so the seed is ``h mod 2**32``),
    ``j = uniform_int(n - i)`` and ``swap(index[i], index[i + j])`` for
    ``i = 0..n-1``, where ``uniform_int(k)`` draws ``x = word / (2**32 // k)``
    until ``x < k``; it visits ``index[i]`` as it goes, skipping the hashed
    host.  This returns the whole shuffled list (the hashed host included,
    wherever it falls).  Same hash, same order (a request keeps its fallback
    hosts); different hashes, independent orders: the "random jump" of Chen,
    Coleman and Shrivastava (arXiv:1908.08762) that avoids the cascading
    overflow of walking the ring.

    >>> bounded_load_probe_order(7, 4) == bounded_load_probe_order(7 + 2**32, 4)   # only the low 32 bits seed
    True
    >>> sorted(bounded_load_probe_order(12345, 10)) == list(range(10))
    True
    """
    return list(_probe_order(h & _M32, n))


@lru_cache(maxsize=4096)
def _probe_order(seed: int, n: int) -> tuple[int, ...]:
    # cached: the hosts behind a hot key are probed on every request that finds them full, with the same order
    # (uncached, a 3-key hot spot spent about a quarter of its run time here under cProfile)
    if n <= 0:
        return ()
    h = seed
    words = mt19937_words(h, n).tolist()
    extra = n
    order = list(range(n))
    w = 0
    for i in range(n):
        k = n - i
        step = (1 << 32) // k
        while True:
            if w == len(words):  # a rejected draw (probability < k / 2**32): draw on
                extra += n
                words = mt19937_words(h, extra).tolist()
            x = words[w] // step
            w += 1
            if x < k:
                break
        order[i], order[i + x] = order[i + x], order[i]
    return tuple(order)
