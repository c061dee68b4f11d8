"""The prediction log: every prediction reaches it (also when the server is stopped right after the
last answer), one record per row in the documented format, and no record larger than its cap."""

from __future__ import annotations

import asyncio
import json
import re
import signal
from pathlib import Path

import orjson
import pytest

from tasks.registry import lifecycle
from tasks.serving.prediction_log import PredictionLog
from tests.registry.store import NAME
from tests.support.serving import PENGUIN, Server

pytestmark = pytest.mark.slow

ISO_UTC = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")
CLASSES = {"Adelie", "Chinstrap", "Gentoo"}


def records(home: Path) -> list[dict]:
    log = home / "predictions" / f"{NAME}.jsonl"
    return [json.loads(line) for line in log.read_text().splitlines()] if log.exists() else []


def send(port: int, requests: int, connections: int = 4) -> int:
    """`requests` one- and three-row requests over keep-alive connections, each row marked by its
    bill_length_mm (1000 + its number); returns the number of rows predicted."""

    async def client(index: int) -> int:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        rows = 0
        for number in range(index, requests, connections):
            batch = [{**PENGUIN, "bill_length_mm": 1000.0 + number * 3 + i} for i in range(1 + 2 * (number % 2))]
            body = orjson.dumps({"dataframe_records": batch})
            writer.write(
                b"POST /invocations HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                b"Content-Length: %d\r\n\r\n%s" % (len(body), body)
            )
            head = await reader.readuntil(b"\r\n\r\n")
            assert head.startswith(b"HTTP/1.1 200"), head
            length = int(re.search(rb"(?i)content-length: (\d+)", head).group(1))
            assert len(orjson.loads(await reader.readexactly(length))["predictions"]) == len(batch)
            rows += len(batch)
        writer.close()
        return rows

    async def run() -> int:
        return sum(await asyncio.gather(*(client(i) for i in range(connections))))

    return asyncio.run(run())


@pytest.mark.parametrize("stop_with", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_no_prediction_is_lost_when_the_server_is_stopped_right_after_the_last_answer(store, stop_with):
    lifecycle.move_alias(NAME, lifecycle.PRODUCTION, "1", "prediction log test")
    server = Server(cli=True).wait_ready()
    try:
        rows = send(server.port, requests=3000)
        assert server.signal(stop_with) == 0  # a normal stop, at once after the last answer
    finally:
        server.stop()
    assert "Traceback" not in server.output()
    logged = records(store)
    marks = sorted(record["row"]["bill_length_mm"] for record in logged)
    assert len(logged) == rows == 6000
    assert marks == [1000.0 + n * 3 + i for n in range(3000) for i in range(1 + 2 * (n % 2))]


def test_records_have_the_documented_format_and_an_oversized_row_is_replaced(store):
    lifecycle.move_alias(NAME, lifecycle.PRODUCTION, "1", "prediction log test")
    server = Server(cli=True).wait_ready()
    huge = {**PENGUIN, "island": "x" * 100_000}  # an unknown category still gets a prediction
    try:
        assert server.post({"dataframe_split": {"columns": list(PENGUIN), "data": [list(PENGUIN.values())] * 2}})[0] == 200
        assert server.post({"dataframe_records": [huge]})[0] == 200
        assert server.signal(signal.SIGTERM) == 0
    finally:
        server.stop()
    first, second, oversized = records(store)
    for record in (first, second, oversized):
        assert list(record) == ["ts", "version", "row", "prediction"]
        assert ISO_UTC.match(record["ts"])
        assert record["version"] == "1"
        assert record["prediction"] in CLASSES
    assert first["row"] == second["row"] == PENGUIN  # the raw input row, as sent
    assert oversized["row"] == {"truncated": True, "bytes": len(orjson.dumps(huge))}
    log = store / "predictions" / f"{NAME}.jsonl"
    assert max(len(line) for line in log.read_bytes().splitlines()) < 64 * 1024


def test_a_large_request_is_written_in_slices_in_order(tmp_path):
    """The writer never turns more than `slice_rows` rows into lines at once, so no request waits behind a big one."""
    log = PredictionLog(tmp_path / "p.jsonl", slice_rows=100).open()
    log.record("7", {"a": list(range(250)), "b": ["x"] * 250}, list(range(250)))
    log.record("7", {"a": [250], "b": ["y"]}, [250])
    sizes = []
    while log.pending_rows:
        data = log._take_slice()
        sizes.append(data.count(b"\n"))
        log._write(data)
    log.close()
    lines = [json.loads(line) for line in (tmp_path / "p.jsonl").read_text().splitlines()]
    assert sizes == [100, 100, 51]
    assert [line["row"]["a"] for line in lines] == [line["prediction"] for line in lines] == list(range(251))
    assert lines[-1]["row"] == {"a": 250, "b": "y"}
    assert log.stats()["written"] == 251
