"""How fast, and in how much memory, do the blob stores take files in and give them back?

Goals, each measured against a floor in the same run:

* local folder: storing 1 GiB in files of 200 KiB with ``put`` and reading it back with
  ``open`` takes at most 2x ``cp -r`` of the same files plus ``cat`` of the copies;
* S3 (moto's server, started here in a process of its own): the same takes at most 1.5x
  a bare boto3 loop (``put_object`` of each file, ``get_object`` read in chunks);
* memory: storing and reading back ONE file of 1 GiB grows the peak resident size of
  the process (``VmHWM``) by at most 100 MB, for either store.

The local store runs three ways: without fsync into a store in use (its fan-out folders
exist) and into an empty one (``put`` makes a folder for nearly every file), both against
plain ``cp -r``; and as the app runs it, with an ``fsync`` of each blob before its
rename, against ``cp -r`` followed by ``sync`` of each copy (coreutils' ``sync FILE…``
fsyncs each file: the same durability, file by file). Every round runs the floor and
the store alternately on the same files (generated once, random, so every file is a new
blob) into fresh folders and buckets, each pass after an untimed ``sync`` so that none
pays for the previous one's write-back; the best round counts. When a bar is missed
(``--profile``: always) one more store pass runs under cProfile. Memory is measured in
a child process per store, so the figures of one do not hide the other's.

    PYTHONPATH=. .venv/bin/python bench/blob_store.py [--total-mb 1024] [--file-kb 200]
                                                      [--quick] [--only local|s3]

The exit code is 1 when a bar is missed, 0 when all are met.
"""

from __future__ import annotations

import argparse
import cProfile
import hashlib
import json
import os
import pstats
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from app.storage import CHUNK, LocalBlobStore, fan_out
from tests.s3server import S3Server, create_bucket, delete_bucket, use_fake_aws_credentials

LOCAL_LIMIT = 2.0
S3_LIMIT = 1.5
MEMORY_LIMIT_MB = 100.0
KiB, MiB = 1024, 1024 * 1024


@dataclass
class Files:
    folder: Path
    paths: list[Path]
    keys: list[str]
    total: int

    @property
    def names(self) -> list[str]:
        return [fan_out(key) for key in self.keys]


def generate(folder: Path, total: int, size: int) -> Files:
    """``total`` bytes of random files of ``size`` bytes (the last one shorter)."""
    folder.mkdir(parents=True)
    paths, keys, left, n = [], [], total, 0
    while left > 0:
        data = os.urandom(min(size, left))
        path = folder / f"{n:06d}.bin"
        path.write_bytes(data)
        paths.append(path)
        keys.append(hashlib.sha256(data).hexdigest())
        left -= len(data)
        n += 1
    return Files(folder, paths, keys, total)


def big_file(path: Path, size: int) -> str:
    digest = hashlib.sha256()
    with path.open("wb") as out:
        left = size
        while left > 0:
            chunk = os.urandom(min(16 * MiB, left))
            digest.update(chunk)
            out.write(chunk)
            left -= len(chunk)
    return digest.hexdigest()


def timed(fn: Callable[[], object]) -> float:
    """Seconds ``fn`` takes, started with no dirty pages of an earlier pass to write."""
    os.sync()
    started = time.perf_counter()
    fn()
    return time.perf_counter() - started


def drain(fh) -> int:
    n = 0
    while chunk := fh.read(CHUNK):
        n += len(chunk)
    return n


@dataclass
class Pair:
    """Best seconds to store (``put``) and read back (``get``) everything."""

    put: float = float("inf")
    get: float = float("inf")

    def keep(self, put: float, get: float) -> None:
        if put + get < self.put + self.get:
            self.put, self.get = put, get

    @property
    def total(self) -> float:
        return self.put + self.get


def report(label: str, files: Files, floor: Pair, store: Pair, floor_label: str, limit: float):
    gb = files.total / (1024**3)
    ratio = store.total / floor.total
    ok = ratio <= limit
    print(
        f"    {floor_label:<34} store {floor.put:7.2f} s  read {floor.get:6.2f} s  "
        f"total {floor.total:7.2f} s  {gb / floor.total * 1024:7.0f} MiB/s"
    )
    print(
        f"    {label:<34} store {store.put:7.2f} s  read {store.get:6.2f} s  "
        f"total {store.total:7.2f} s  {gb / store.total * 1024:7.0f} MiB/s"
    )
    print(
        f"    ratio {ratio:5.2f}x (store {store.put / floor.put:4.2f}x, read "
        f"{store.get / floor.get:4.2f}x)   limit {limit:.1f}x   {'PASS' if ok else 'FAIL'}"
    )
    return ok


# --- local ---------------------------------------------------------------------------------


def local_floor(files: Files, dst: Path, *, sync: bool) -> tuple[float, float]:
    def copy():
        subprocess.run(["cp", "-r", str(files.folder), str(dst)], check=True)
        if sync:  # coreutils' sync with files fsyncs each of them, as put does
            subprocess.run(f"find {dst} -type f -exec sync {{}} +", shell=True, check=True)

    put = timed(copy)
    get = timed(
        lambda: subprocess.run(
            f"find {dst} -type f -exec cat {{}} + > /dev/null", shell=True, check=True
        )
    )
    shutil.rmtree(dst)
    return put, get


def local_store(files: Files, root: Path, *, fsync: bool, in_use: bool) -> tuple[float, float]:
    """``put`` every file, then read every blob back. ``in_use``: the fan-out folders of
    the files' keys exist beforehand (made untimed), as in a store that holds some
    100,000 blobs, where nearly all 65,536 of them do; else the store is empty and
    ``put`` makes them as it goes."""
    store = LocalBlobStore(root, fsync=fsync)
    if in_use:
        for key in files.keys:
            (root / fan_out(key)).parent.mkdir(parents=True, exist_ok=True)
    keys: list[str] = []

    def put():
        for path in files.paths:
            with path.open("rb") as fh:
                keys.append(store.put(fh))

    def get():
        for key in keys:
            with store.open(key) as fh:
                drain(fh)

    seconds = timed(put), timed(get)
    assert keys == files.keys, "the local store returned wrong keys"
    shutil.rmtree(root)
    return seconds


LOCAL_CASES = [
    # label, floor label, fsync (and sync of each copy for the floor), fan-out folders present
    ("put/open, store in use", "cp -r; cat", False, True),
    ("put/open, empty store", "cp -r; cat", False, False),
    ("put/open + fsync (the app), in use", "cp -r + sync each file; cat", True, True),
]


def run_local(files: Files, tmp: Path, rounds: int, profile: bool) -> bool:
    print(f"local folder ({tmp}); LocalBlobStore against cp -r of the same files")
    ok = True
    for label, floor_label, durable, in_use in LOCAL_CASES:
        floor, store = Pair(), Pair()
        for round_ in range(rounds):
            order = ("floor", "store") if round_ % 2 == 0 else ("store", "floor")
            for kind in order:
                if kind == "floor":
                    floor.keep(*local_floor(files, tmp / "cp", sync=durable))
                else:
                    store.keep(*local_store(files, tmp / "blobs", fsync=durable, in_use=in_use))
        passed = report(label, files, floor, store, floor_label, LOCAL_LIMIT)
        ok &= passed
        if profile or not passed:
            profiled(
                lambda d=durable, u=in_use: local_store(files, tmp / "blobs", fsync=d, in_use=u)
            )
    return ok


# --- S3 --------------------------------------------------------------------------------------


def s3_floor(files: Files, url: str) -> tuple[float, float]:
    import boto3

    client = boto3.session.Session().client("s3", endpoint_url=url)
    bucket = create_bucket(url)
    names = files.names

    def put():
        for path, name in zip(files.paths, names, strict=True):
            with path.open("rb") as fh:
                client.put_object(Bucket=bucket, Key=name, Body=fh)

    def get():
        for name in names:
            drain(client.get_object(Bucket=bucket, Key=name)["Body"])

    seconds = timed(put), timed(get)
    delete_bucket(url, bucket)
    return seconds


def s3_store(files: Files, url: str) -> tuple[float, float]:
    from app.storage.s3 import S3BlobStore, s3_client

    bucket = create_bucket(url)
    store = S3BlobStore(s3_client(url), bucket)
    keys: list[str] = []

    def put():
        for path in files.paths:
            with path.open("rb") as fh:
                keys.append(store.put(fh))

    def get():
        for key in keys:
            with store.open(key) as fh:
                drain(fh)

    seconds = timed(put), timed(get)
    assert keys == files.keys, "the S3 store returned wrong keys"
    delete_bucket(url, bucket)
    return seconds


def run_s3(files: Files, url: str, rounds: int, profile: bool) -> bool:
    print(f"S3 (moto server at {url}, its own process)")
    floor, store = Pair(), Pair()
    for round_ in range(rounds):
        for kind in ("floor", "store") if round_ % 2 == 0 else ("store", "floor"):
            if kind == "floor":
                floor.keep(*s3_floor(files, url))
            else:
                store.keep(*s3_store(files, url))
    ok = report("S3BlobStore", files, floor, store, "bare boto3 put_object/get_object", S3_LIMIT)
    if profile or not ok:
        profiled(lambda: s3_store(files, url))
    return ok


def profiled(fn: Callable[[], object]) -> None:
    print("    profile of one more store pass (top 15 by own time):")
    profiler = cProfile.Profile()
    profiler.runcall(fn)
    stats = pstats.Stats(profiler, stream=sys.stdout)
    stats.sort_stats("tottime").print_stats(15)


# --- memory (in a child process per store) -----------------------------------------------


def vm_hwm_kb() -> int:
    """The process's peak resident size so far, in KiB (Linux's ``VmHWM``)."""
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    raise RuntimeError("no VmHWM in /proc/self/status")


def memory_child(kind: str, path: str, where: str) -> None:
    """Store ``path`` and read it back; print peak-RSS figures as JSON."""
    if kind == "local":
        store = LocalBlobStore(where)
    else:
        from app.storage.s3 import S3BlobStore, s3_client

        url, bucket = where.split("|")
        store = S3BlobStore(s3_client(url), bucket)
        store.check()  # the client's first request is made before the baseline
    before = vm_hwm_kb()
    started = time.perf_counter()
    with open(path, "rb") as fh:
        key = store.put(fh)
    put = time.perf_counter() - started
    started = time.perf_counter()
    with store.open(key) as fh:
        size = drain(fh)
    get = time.perf_counter() - started
    after = vm_hwm_kb()
    print(
        json.dumps(
            {
                "key": key,
                "size": size,
                "before_kb": before,
                "after_kb": after,
                "put": put,
                "get": get,
            }
        )
    )


def measure_memory(kind: str, path: Path, key: str, where: str) -> bool:
    out = subprocess.run(
        [sys.executable, __file__, "--memory-child", kind, str(path), where],
        check=True,
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])},
    ).stdout
    result = json.loads(out.strip().splitlines()[-1])
    assert result["key"] == key and result["size"] == path.stat().st_size, result
    growth = (result["after_kb"] - result["before_kb"]) / 1024
    ok = growth <= MEMORY_LIMIT_MB
    size_mb = result["size"] / MiB
    print(
        f"    {kind:<6} one {size_mb:,.0f} MiB file: store {result['put']:6.2f} s, read "
        f"{result['get']:6.2f} s; peak RSS {result['before_kb'] / 1024:6.1f} -> "
        f"{result['after_kb'] / 1024:6.1f} MiB, growth {growth:5.1f} MiB   "
        f"(limit {MEMORY_LIMIT_MB:.0f})  {'PASS' if ok else 'FAIL'}"
    )
    return ok


# --- main ------------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0],
        epilog="Bars: local <= 2x cp, S3 <= 1.5x bare boto3, peak RSS growth <= 100 MB.",
    )
    parser.add_argument("--total-mb", type=int, default=1024, help="MiB stored (default 1024)")
    parser.add_argument("--file-kb", type=int, default=200, help="KiB per file (default 200)")
    parser.add_argument(
        "--big-mb", type=int, default=1024, help="MiB of the one file for memory (default 1024)"
    )
    parser.add_argument(
        "--rounds", type=int, default=3, help="floor/store pairs, local store (default 3)"
    )
    parser.add_argument(
        "--s3-rounds", type=int, default=2, help="floor/store pairs, S3 (default 2)"
    )
    parser.add_argument(
        "--quick", action="store_true", help="a small run: 64 MiB in files, one 128 MiB file"
    )
    parser.add_argument("--only", choices=("local", "s3"), help="one store only")
    parser.add_argument("--profile", action="store_true", help="profile a store pass always")
    parser.add_argument("--tmp", help="folder for the files (default: the system's temp dir)")
    parser.add_argument("--memory-child", nargs=3, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.memory_child:
        memory_child(*args.memory_child)
        return 0
    if args.quick:
        args.total_mb, args.big_mb = min(args.total_mb, 64), min(args.big_mb, 128)
    if min(args.total_mb, args.file_kb, args.big_mb, args.rounds, args.s3_rounds) < 1:
        parser.error("sizes and --rounds must be positive")

    started = time.perf_counter()
    use_fake_aws_credentials()
    results: dict[str, bool] = {}
    with tempfile.TemporaryDirectory(prefix="bench-blob-", dir=args.tmp) as tmp_name:
        tmp = Path(tmp_name)
        files = generate(tmp / "files", args.total_mb * MiB, args.file_kb * KiB)
        big = tmp / "big.bin"
        big_key = big_file(big, args.big_mb * MiB)
        print(
            f"{len(files.paths):,} files of {args.file_kb} KiB, {args.total_mb:,} MiB in all; "
            f"one file of {args.big_mb:,} MiB; best of {args.rounds} rounds "
            f"(S3: {args.s3_rounds})"
        )
        server = S3Server() if args.only in (None, "s3") else None
        try:
            if args.only in (None, "local"):
                ok = run_local(files, tmp, args.rounds, args.profile)
                print("  memory:")
                ok &= measure_memory("local", big, big_key, str(tmp / "big-blobs"))
                shutil.rmtree(tmp / "big-blobs", ignore_errors=True)
                results["local"] = ok
            if server is not None:
                url = server.start()
                ok = run_s3(files, url, args.s3_rounds, args.profile)
                print("  memory (moto's own memory is its process's, not counted):")
                bucket = create_bucket(url)
                ok &= measure_memory("s3", big, big_key, f"{url}|{bucket}")
                delete_bucket(url, bucket)
                results["s3"] = ok
        finally:
            if server is not None:
                server.stop()
    verdict = ", ".join(f"{k} {'PASS' if v else 'FAIL'}" for k, v in results.items())
    print(f"\nverdict: {verdict}  ({time.perf_counter() - started:.0f} s in all)")
    return 0 if all(results.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
