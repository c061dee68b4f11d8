"""Serving benchmark: `pmf serve` against `mlflow models serve` on the same registered model.

    python benchmarks/bench_serving.py [--quick] [--seconds 5] [--home DIR] [--name penguins]

Both servers serve `models:/NAME@production` from the same registry on loopback; one load
generator (asyncio, keep-alive connections, one-row MLflow `dataframe_split` requests, a fixed
time per level after a warm-up) drives each at concurrency 1, 8 and 32. `pmf serve` is measured
in its default configuration (prediction log on) and with `--no-prediction-log`. When `wrk` is on
PATH, it drives `pmf serve` too (log on and off, same levels; an external load generator). Printed
as markdown tables: throughput, latency p50/p99, failed requests, start-up time and memory (RSS
of the whole process tree). Without --home, a fresh workspace is made and a model trained into it.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
VENV_BIN = Path(sys.executable).parent
BODY = (
    b'{"dataframe_split": {"columns": ["bill_length_mm", "bill_depth_mm", "flipper_length_mm", "body_mass_g", "year", '
    b'"island", "sex"], "data": [[45.1, 15.2, 220, 5000, 2008, "Biscoe", "male"]]}}'
)
GOALS = {"throughput_ratio_c8": 10.0, "p99_ms_c8": 5.0}


@dataclass
class Level:
    server: str
    concurrency: int
    requests: int
    failures: int
    seconds: float
    latencies: np.ndarray

    @property
    def throughput(self) -> float:
        return self.requests / self.seconds

    def pct(self, q: float) -> float:
        if getattr(self, "fixed", None):
            return self.fixed[q]
        return float(np.percentile(self.latencies, q) * 1000) if len(self.latencies) else float("nan")


# ---- load generator -----------------------------------------------------------------------------


def request_bytes(port: int) -> bytes:
    return (
        f"POST /invocations HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(BODY)}\r\n\r\n"
    ).encode() + BODY


async def _client(port: int, until: float, record_from: float, latencies: list, counts: dict) -> None:
    payload = request_bytes(port)
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    perf = time.perf_counter
    while (start := perf()) < until:
        try:
            writer.write(payload)
            head = await reader.readuntil(b"\r\n\r\n")
            at = head.lower().find(b"content-length:")
            await reader.readexactly(int(head[at + 15 : head.index(b"\r\n", at)]))
            ok = head[9:12] == b"200"
        except Exception:  # a dropped connection counts as a failed request; reconnect and go on
            ok = False
            writer.close()
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
        if start >= record_from:
            latencies.append(perf() - start)
            counts["requests"] += 1
            counts["failures"] += 0 if ok else 1
    writer.close()


def drive(server: str, port: int, concurrency: int, seconds: float, warmup_s: float) -> Level:
    async def run() -> Level:
        latencies: list[float] = []
        counts = {"requests": 0, "failures": 0}
        begin = time.perf_counter()
        record_from, until = begin + warmup_s, begin + warmup_s + seconds
        await asyncio.gather(*(_client(port, until, record_from, latencies, counts) for _ in range(concurrency)))
        return Level(server, concurrency, counts["requests"], counts["failures"], seconds, np.asarray(latencies))

    try:
        import uvloop

        return uvloop.run(run())
    except ImportError:
        return asyncio.run(run())


def wrk_level(server: str, port: int, concurrency: int, seconds: float, folder: Path) -> Level | None:
    """One level measured by wrk (keep-alive, a Lua script for the POST body); None without wrk."""
    wrk = shutil.which("wrk")
    if wrk is None:
        return None
    script = folder / "post.lua"
    script.write_text(f'wrk.method = "POST"\nwrk.headers["Content-Type"] = "application/json"\nwrk.body = \'{BODY.decode()}\'\n')
    threads = min(concurrency, 2)
    url = f"http://127.0.0.1:{port}/invocations"
    subprocess.run([wrk, f"-t{threads}", f"-c{concurrency}", "-d1s", "-s", str(script), url], capture_output=True, check=True)
    out = subprocess.run(
        [wrk, f"-t{threads}", f"-c{concurrency}", f"-d{seconds:g}s", "--latency", "-s", str(script), url],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    requests = int(re.search(r"(\d+) requests in", out).group(1))
    failures = sum(int(n) for n in re.findall(r"Non-2xx or 3xx responses: (\d+)", out))
    failures += sum(int(n) for n in re.findall(r"(?:connect|read|write|timeout) (\d+)", out))
    # wrk prints the latency distribution; keep p50/p99 as a two-point "sample" for Level.pct
    p50, p99 = (_wrk_ms(re.search(rf"\s{q}%\s+([\d.]+\w+)", out).group(1)) for q in (50, 99))
    level = Level(server, concurrency, requests, failures, seconds, np.asarray([]))
    level.fixed = {50: p50, 99: p99}
    return level


def _wrk_ms(text: str) -> float:
    value, unit = re.match(r"([\d.]+)(\w+)", text).groups()
    return float(value) * {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60_000.0}[unit]


# ---- servers ------------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start(command: list[str], port: int, env: dict[str, str], timeout_s: float = 180) -> tuple[subprocess.Popen, float]:
    started = time.perf_counter()
    process = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    while time.perf_counter() - started < timeout_s:
        if process.poll() is not None:
            raise RuntimeError(f"{command[0]} exited with {process.returncode}")
        try:
            request = urllib.request.Request(
                f"http://127.0.0.1:{port}/invocations", data=BODY, headers={"Content-Type": "application/json"}
            )
            with urllib.request.urlopen(request, timeout=2) as response:
                if response.status == 200:
                    return process, time.perf_counter() - started
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"{' '.join(command[:4])} did not answer within {timeout_s} s")


def tree_rss_mb(pid: int) -> float:
    """Resident memory of a process and all its descendants (mlflow serve runs uvicorn as a child)."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            children.setdefault(ppid, []).append(int(entry.name))
    total, todo = 0, [pid]
    while todo:
        current = todo.pop()
        todo += children.get(current, [])
        try:
            for line in Path(f"/proc/{current}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1])
        except OSError:
            pass
    return total / 1024


def stop(process: subprocess.Popen) -> None:
    try:
        os.killpg(process.pid, 15)  # its own session: the server and the workers it started, nothing else
        process.wait(15)
    except (ProcessLookupError, subprocess.TimeoutExpired):
        os.killpg(process.pid, 9)


def ensure_model(home: Path, name: str, env: dict[str, str]) -> str:
    """A production version of `name` in `home`: train one with the bundled data if there is none."""
    probe = (
        "import sys\nfrom tasks.registry.lifecycle import alias_version, move_alias\nfrom tasks.workspace import configure_environment\n"
        f"configure_environment()\nv = alias_version({name!r}, 'production')\n"
        f"c = alias_version({name!r}, 'candidate')\n"
        f"if v is None and c is not None: move_alias({name!r}, 'production', c, 'bench_serving'); v = c\nprint(v or '')\n"
    )
    found = subprocess.run([sys.executable, "-c", probe], env=env, capture_output=True, text=True, cwd=REPO).stdout.strip()
    if found:
        return found
    subprocess.run(
        [str(VENV_BIN / "pmf"), "run", "--json", "--set", "train.epochs=10", "--set", "compression.variants=[float32]"],
        env=env,
        check=True,
        stdout=subprocess.DEVNULL,
        cwd=REPO,
    )
    return subprocess.run(
        [sys.executable, "-c", probe], env=env, capture_output=True, text=True, cwd=REPO, check=True
    ).stdout.strip()


# ---- the run ------------------------------------------------------------------------------------


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--home", type=Path, help="existing PMF_HOME with a registered model (default: a fresh one)")
    parser.add_argument("--name", default="penguins")
    parser.add_argument("--seconds", type=float, default=5.0, help="measured seconds per server and concurrency")
    parser.add_argument("--quick", action="store_true", help="2 s per level")
    args = parser.parse_args()
    seconds = 2.0 if args.quick else args.seconds
    home = args.home or Path(tempfile.mkdtemp(prefix="pmf-bench-serving-"))
    env = {
        **os.environ,
        "PMF_HOME": str(home),
        "PATH": f"{VENV_BIN}{os.pathsep}{os.environ.get('PATH', '')}",
        "MLFLOW_TRACKING_URI": os.environ.get("MLFLOW_TRACKING_URI") or f"sqlite:///{home / 'mlflow.db'}",
    }
    env.pop("PMF_SERVE_TOKEN", None)
    version = ensure_model(home, args.name, env)
    servers = {
        "pmf serve": lambda port: [str(VENV_BIN / "pmf"), "serve", args.name, "--port", str(port)],
        "pmf serve --no-prediction-log": lambda port: [
            str(VENV_BIN / "pmf"),
            "serve",
            args.name,
            "--port",
            str(port),
            "--no-prediction-log",
        ],
        "mlflow models serve": lambda port: [
            str(VENV_BIN / "mlflow"),
            "models",
            "serve",
            "-m",
            f"models:/{args.name}@production",
            "--env-manager",
            "local",
            "-p",
            str(port),
            "-h",
            "127.0.0.1",
        ],
    }
    levels, wrk_levels, startup, memory = [], [], {}, {}
    for label, command in servers.items():
        port = free_port()
        process, startup[label] = start(command(port), port, env)
        try:
            for concurrency in (1, 8, 32):
                levels.append(drive(label, port, concurrency, seconds, warmup_s=1.0))
                if label.startswith("pmf serve") and (measured := wrk_level(label, port, concurrency, seconds, home)):
                    wrk_levels.append(measured)
            memory[label] = tree_rss_mb(process.pid)
        finally:
            stop(process)
    print(render(levels, startup, memory, args.name, version, seconds))
    print()
    print(
        render_wrk(wrk_levels, seconds)
        if wrk_levels
        else "wrk not on PATH: external load generator skipped (apt-get install wrk)"
    )
    if args.home is None:
        shutil.rmtree(home, ignore_errors=True)
    return 0


def render(
    levels: list[Level], startup: dict[str, float], memory: dict[str, float], name: str, version: str, seconds: float
) -> str:
    lines = [
        f"Serving `models:/{name}@production` (v{version}), one-row requests, keep-alive, {seconds:g} s per level, "
        f"{os.cpu_count()} CPUs (load generator on the same machine)",
        "",
        "| server | concurrency | req/s | p50 ms | p99 ms | requests | failed | start-up s | RSS MB |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for level in levels:
        lines.append(
            f"| {level.server} | {level.concurrency} | {level.throughput:,.0f} | {level.pct(50):.2f} | {level.pct(99):.2f} | "
            f"{level.requests:,} | {level.failures} | {startup[level.server]:.1f} | {memory[level.server]:.0f} |"
        )
    by = {(lv.server, lv.concurrency): lv for lv in levels}
    ours, theirs = by[("pmf serve", 8)], by[("mlflow models serve", 8)]
    ratio = ours.throughput / theirs.throughput if theirs.throughput else float("inf")
    failed = sum(lv.failures for lv in levels if lv.server == "pmf serve")
    lines += [
        "",
        f"- throughput at concurrency 8: {ratio:.1f}× mlflow models serve (goal ≥ {GOALS['throughput_ratio_c8']:g}×): "
        f"{'PASS' if ratio >= GOALS['throughput_ratio_c8'] else 'MISS'}",
        f"- pmf serve p99 at concurrency 8: {ours.pct(99):.2f} ms (goal ≤ {GOALS['p99_ms_c8']:g} ms): "
        f"{'PASS' if ours.pct(99) <= GOALS['p99_ms_c8'] else 'MISS'}",
        f"- pmf serve failed requests: {failed} (goal 0): {'PASS' if failed == 0 else 'MISS'}",
    ]
    return "\n".join(lines)


def render_wrk(levels: list[Level], seconds: float) -> str:
    lines = [
        f"wrk (external load generator), one-row requests, keep-alive, {seconds:g} s per level",
        "",
        "| server | concurrency | req/s | p50 ms | p99 ms | requests | failed |",
        "|---|---|---|---|---|---|---|",
    ]
    lines += [
        f"| {lv.server} | {lv.concurrency} | {lv.throughput:,.0f} | {lv.pct(50):.2f} | {lv.pct(99):.2f} | {lv.requests:,} | "
        f"{lv.failures} |"
        for lv in levels
    ]
    by = {(lv.server, lv.concurrency): lv for lv in levels}
    on, off = by.get(("pmf serve", 8)), by.get(("pmf serve --no-prediction-log", 8))
    if on and off:
        ratio = on.throughput / off.throughput
        lines += [
            "",
            f"- c=8, log on: p99 {on.pct(99):.2f} ms (goal ≤ {GOALS['p99_ms_c8']:g} ms): "
            f"{'PASS' if on.pct(99) <= GOALS['p99_ms_c8'] else 'MISS'}; throughput {ratio:.0%} of log off "
            f"(goal ≥ 90 %): {'PASS' if ratio >= 0.9 else 'MISS'}",
        ]
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
