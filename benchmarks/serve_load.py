"""Server load benchmark: a burst of mixed good, bad and huge requests against ``serve.py`` on 127.0.0.1.

    python benchmarks/serve_load.py [--requests 200] [--clients 8] [--collection outputs/collections/demo]

The server runs in its own process (the demo collection, the default settings of ``conf/serve.yaml``: 30 MP
upload budget, 1 concurrent search). First each heavy request is sent alone, with the process' peak RSS reset
before it (``/proc/<pid>/clear_refs``), so each one's own memory cost is measured; then the burst: ``--clients``
threads send ``--requests`` requests drawn from the mix below, while the server's RSS is sampled every 20 ms.

The mix (each a POST of one file): demo photos to /search and /matches (good), a 9400x9400 JPEG (huge: decoded at
1/8), a PNG header claiming 20000x20000 pixels (over budget, refused before decoding), a 10000x3 PNG strip to
/matches (refused for its aspect ratio), an EPS named photo.jpg, a truncated JPEG and an empty file. Writes
``benchmarks/results/serve_load.{json,md}``: statuses per kind, latency p50/p95/max per kind, RSS before, peak
and after the burst, and each heavy request's own peak RSS growth.
"""

from __future__ import annotations

import argparse
import io
import os
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time
import zlib
from collections import Counter, defaultdict
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import numpy as np
from PIL import Image

from benchmarks.common import REPO_ROOT, write_results

EPS = b"%!PS-Adobe-3.0 EPSF-3.0\n%%BoundingBox: 0 0 16 16\nnewpath 0 0 moveto 16 16 lineto stroke\nshowpage\n"


def rss_mb(pid: int, field: str = "VmRSS") -> float:
    with open(f"/proc/{pid}/status") as handle:
        for line in handle:
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024
    raise RuntimeError(f"no {field} for process {pid}")


def reset_peak(pid: int) -> None:
    with open(f"/proc/{pid}/clear_refs", "w") as handle:
        handle.write("5")  # resets VmHWM to the current RSS


def png_header(width: int, height: int) -> bytes:
    """A tiny PNG whose header claims ``width`` x ``height`` pixels."""

    def chunk(kind: bytes, payload: bytes) -> bytes:
        return (
            struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", zlib.crc32(kind + payload))
        )

    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(b"\x00"))
        + chunk(b"IEND", b"")
    )


def encoded(image: Image.Image, format: str, **options: object) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=format, **options)
    return buffer.getvalue()


def request_kinds(demo: Path) -> dict[str, tuple[str, bytes, str]]:
    """Kind → (endpoint, file bytes, expected status)."""
    photos = sorted((demo / "test").rglob("*.jpg"))
    good = photos[0].read_bytes()
    rng = np.random.default_rng(0)
    tile = Image.fromarray(rng.integers(0, 255, (470, 470, 3), dtype=np.uint8))
    huge = encoded(tile.resize((9400, 9400), Image.Resampling.NEAREST), "JPEG", quality=20)
    return {
        "good /search": ("/search", good, "200"),
        "good /matches": ("/matches", good, "200"),
        "huge JPEG 9400x9400": ("/search", huge, "200"),
        "PNG header 20000x20000": ("/search", png_header(20000, 20000), "413"),
        "PNG strip 10000x3": ("/matches", encoded(Image.new("L", (10000, 3), 128), "PNG"), "422"),
        "EPS as photo.jpg": ("/search", EPS, "415"),
        "truncated JPEG": ("/search", good[: len(good) // 2], "422"),
        "empty file": ("/search", b"", "400"),
    }


# Burst mix: weights of the kinds (good requests dominate, as on a real page).
WEIGHTS = {
    "good /search": 6,
    "good /matches": 2,
    "huge JPEG 9400x9400": 1,
    "PNG header 20000x20000": 1,
    "PNG strip 10000x3": 1,
    "EPS as photo.jpg": 1,
    "truncated JPEG": 1,
    "empty file": 1,
}


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def start_server(collection: Path, port: int, run_dir: Path) -> subprocess.Popen[bytes]:
    command = [
        sys.executable,
        "serve.py",
        f"collection_dir={collection}",
        f"port={port}",
        f"hydra.run.dir={run_dir}",
    ]
    environment = {**os.environ, "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "1")}
    server = subprocess.Popen(
        command, cwd=REPO_ROOT, env=environment, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/options", timeout=2).status_code == 200:
                return server
        except httpx.HTTPError:
            time.sleep(0.5)
    server.kill()
    raise RuntimeError("the server did not start")


def send(base: str, endpoint: str, content: bytes, image_id: str) -> tuple[str, float]:
    data = {"image_id": image_id} if endpoint == "/matches" else {}
    started = time.perf_counter()
    response = httpx.post(
        f"{base}{endpoint}", files={"file": ("photo.jpg", content, "image/jpeg")}, data=data, timeout=300
    )
    return str(response.status_code), time.perf_counter() - started


def percentile(values: list[float], q: float) -> float:
    return float(np.percentile(values, q)) if values else float("nan")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=200)
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--collection", type=Path, default=REPO_ROOT / "outputs" / "collections" / "demo")
    parser.add_argument("--demo", type=Path, default=REPO_ROOT / "data" / "demo")
    args = parser.parse_args()
    if not args.collection.exists():
        subprocess.run(
            [sys.executable, "index.py", f"collection_dir={args.collection}"], cwd=REPO_ROOT, check=True
        )
    kinds = request_kinds(args.demo)
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    with tempfile.TemporaryDirectory() as run_dir:
        server = start_server(args.collection, port, Path(run_dir))
        try:
            image_id = httpx.post(
                f"{base}/search",
                files={"file": ("q.jpg", kinds["good /search"][1], "image/jpeg")},
                timeout=300,
            ).json()["results"][0]["image_id"]
            for _ in range(3):  # warm-up: first forward passes, allocator pools
                for kind in ("good /search", "good /matches"):
                    send(base, kinds[kind][0], kinds[kind][1], image_id)
            alone: dict[str, dict[str, float | str]] = {}
            for kind, (endpoint, content, _) in kinds.items():
                reset_peak(server.pid)
                before = rss_mb(server.pid)
                status, seconds = send(base, endpoint, content, image_id)
                alone[kind] = {
                    "status": status,
                    "ms": round(1000 * seconds, 1),
                    "peak_growth_mb": round(rss_mb(server.pid, "VmHWM") - before, 1),
                }
            rss_before = rss_mb(server.pid)
            reset_peak(server.pid)
            samples: list[float] = []
            stop = threading.Event()

            def sample() -> None:
                while not stop.is_set():
                    samples.append(rss_mb(server.pid))
                    time.sleep(0.02)

            sampler = threading.Thread(target=sample, daemon=True)
            sampler.start()
            rng = np.random.default_rng(1)
            names = list(WEIGHTS)
            weights = np.array([WEIGHTS[name] for name in names], dtype=float)
            plan = [names[i] for i in rng.choice(len(names), size=args.requests, p=weights / weights.sum())]
            started = time.perf_counter()
            with ThreadPoolExecutor(args.clients) as pool:
                outcomes = list(
                    pool.map(lambda kind: send(base, kinds[kind][0], kinds[kind][1], image_id), plan)
                )
            burst_seconds = time.perf_counter() - started
            stop.set()
            sampler.join()
            rss_peak = rss_mb(server.pid, "VmHWM")
            rss_after = rss_mb(server.pid)
        finally:
            server.terminate()
            server.wait(timeout=60)

    statuses: dict[str, Counter[str]] = defaultdict(Counter)
    latencies: dict[str, list[float]] = defaultdict(list)
    for kind, (status, seconds) in zip(plan, outcomes, strict=True):
        statuses[kind][status] += 1
        latencies[kind].append(1000 * seconds)
    all_ms = [ms for values in latencies.values() for ms in values]
    rows: list[dict[str, Any]] = [
        {
            "kind": kind,
            "expected": kinds[kind][2],
            "statuses": dict(statuses[kind]),
            "count": len(latencies[kind]),
            "p50_ms": round(percentile(latencies[kind], 50), 1),
            "p95_ms": round(percentile(latencies[kind], 95), 1),
            "max_ms": round(max(latencies[kind]), 1),
            "alone": alone[kind],
        }
        for kind in kinds
        if latencies[kind]
    ]
    unexpected = sum(
        count for row in rows for status, count in row["statuses"].items() if status != row["expected"]
    )
    report = {
        "requests": args.requests,
        "clients": args.clients,
        "burst_seconds": round(burst_seconds, 1),
        "p95_ms_all": round(percentile(all_ms, 95), 1),
        "unexpected_statuses": unexpected,
        "server_errors": sum(
            count for row in rows for status, count in row["statuses"].items() if status.startswith("5")
        ),
        "rss_mb": {"before": round(rss_before, 1), "peak": round(rss_peak, 1), "after": round(rss_after, 1)},
        "rss_growth_left_mb": round(rss_after - rss_before, 1),
        "rss_growth_peak_mb": round(rss_peak - rss_before, 1),
        "largest_single_request_growth_mb": max(float(row["alone"]["peak_growth_mb"]) for row in rows),
        "rows": rows,
    }
    lines = [
        f"# Server load: {args.requests} mixed requests from {args.clients} clients on 127.0.0.1",
        "",
        f"serve.py over {args.collection.name} with conf/serve.yaml's limits (30 MP decode budget, 1 concurrent "
        f"search), {os.cpu_count()} CPU cores shared with other jobs. Burst: {burst_seconds:.1f} s, p95 "
        f"{report['p95_ms_all']:,.0f} ms over all requests; {report['server_errors']} server errors, "
        f"{unexpected} unexpected statuses. RSS before / peak / after the burst: {rss_before:,.0f} / "
        f"{rss_peak:,.0f} / {rss_after:,.0f} MB: the burst leaves {report['rss_growth_left_mb']:,.0f} MB more "
        f"than before (at its peak {report['rss_growth_peak_mb']:,.0f} MB). Alone: each request sent by itself after "
        "a reset of the peak RSS; the largest single request grew it by "
        f"{report['largest_single_request_growth_mb']:,.0f} MB (a 1024-px RootSIFT of the query: SIFT's first octave "
        "is twice the detection side).",
        "",
        "| request | expected | statuses in the burst | p50 ms | p95 ms | max ms | alone: status, ms, peak RSS growth MB |",
        "|---|---|---|---|---|---|---|",
    ]
    for row in rows:
        alone_row = row["alone"]
        lines.append(
            f"| {row['kind']} | {row['expected']} | {', '.join(f'{k}×{v}' for k, v in sorted(row['statuses'].items()))} | "
            f"{row['p50_ms']:,.0f} | {row['p95_ms']:,.0f} | {row['max_ms']:,.0f} | "
            f"{alone_row['status']}, {alone_row['ms']:,.0f}, {alone_row['peak_growth_mb']:,.1f} |"
        )
    markdown = "\n".join(lines)
    print(markdown)
    write_results("serve_load", report, markdown)


if __name__ == "__main__":
    main()
