"""Read back what an offline W&B run wrote: history records from the .wandb file and table JSON files.

The .wandb file is a LevelDB-style log (a 7-byte ':W&B' header, 32 KiB blocks of records with a 7-byte
header: crc32, length, type FULL/FIRST/MIDDLE/LAST) of protobuf ``Record`` messages.
"""

from __future__ import annotations

import glob
import json
import os
import struct
import time
from typing import Any

from google.protobuf.message import DecodeError

_BLOCK = 32768
_HEADER = 7


def _raw_records(path: str) -> list[bytes]:
    with open(path, "rb") as f:
        data = f.read()
    assert data[:4] == b":W&B", f"not a W&B run file: {path}"
    records, pending, pos = [], b"", _HEADER
    while pos + _HEADER <= len(data):
        space = _BLOCK - pos % _BLOCK
        if space < _HEADER:
            pos += space
            continue
        _crc, length, kind = struct.unpack("<IHB", data[pos : pos + _HEADER])
        if kind == 0 and length == 0:  # zero padding: the rest of the block is empty
            pos += space
            continue
        if pos + _HEADER + length > len(data):  # the service is still writing this record: the file ends before it
            break
        chunk = data[pos + _HEADER : pos + _HEADER + length]
        pos += _HEADER + length
        if kind == 1:
            records.append(chunk)
        elif kind == 2:
            pending = chunk
        elif kind == 3:
            pending += chunk
        elif kind == 4:
            records.append(pending + chunk)
            pending = b""
    return records


def _records(path: str) -> list[Any]:
    from wandb.proto import wandb_internal_pb2 as pb

    out = []
    for raw in _raw_records(path):
        record = pb.Record()
        record.ParseFromString(raw)
        out.append(record)
    return out


def history(run_dir: str, wait_s: float = 120.0) -> list[dict[str, Any]]:
    """The logged history rows of an offline run directory, each as ``{key: decoded JSON value}``.

    W&B's service process writes the file asynchronously; on a loaded machine it may still be writing
    after ``wandb.finish()`` returns. So read only once the run's ``exit`` record is there (polling up to
    ``wait_s``; a file that never completes fails the test), and a read that meets a record still being written
    (cut short: a ``DecodeError``) reads again.
    """
    (path,) = glob.glob(os.path.join(run_dir, "run-*.wandb"))
    deadline = time.monotonic() + wait_s
    while True:
        try:
            records = _records(path)
        except DecodeError:  # a record being written (read before it was whole): read the file again
            if time.monotonic() > deadline:
                raise
            time.sleep(0.5)
            continue
        if any(r.WhichOneof("record_type") == "exit" for r in records) or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    assert any(r.WhichOneof("record_type") == "exit" for r in records), f"W&B never finished writing {path}"
    rows = []
    for record in records:
        if record.WhichOneof("record_type") == "history":
            rows.append({(i.key or "/".join(i.nested_key)): json.loads(i.value_json) for i in record.history.item})
    return rows


def chart_settings(run_dir: str, key: str) -> dict[str, Any]:
    """The panel config W&B stores for the custom chart logged under ``key`` (``_wandb.visualize.<key>`` in the
    run's config records): ``panelDefId``, ``fieldSettings``, ``stringSettings`` (title, axis names)."""
    (path,) = glob.glob(os.path.join(run_dir, "run-*.wandb"))
    for record in _records(path):
        if record.WhichOneof("record_type") != "config":
            continue
        for update in record.config.update:
            if list(update.nested_key) == ["_wandb", "visualize", key]:
                return json.loads(update.value_json)["panel_config"]
    raise AssertionError(f"no chart {key!r} in {path}")


def table(run_dir: str, row: dict[str, Any], key: str) -> dict[str, Any]:
    """The JSON of the table logged under ``key`` in a history row."""
    with open(os.path.join(run_dir, "files", row[f"{key}/path"])) as f:
        return json.load(f)


def run_dirs(save_dir: str) -> list[str]:
    return sorted(glob.glob(os.path.join(save_dir, "wandb", "offline-run-*")))
