"""Stored backups: full archives in a folder (OMNIROUTE_BACKUP_DIR), outside the database they
save, so that losing the database does not lose its backups. In Kubernetes the folder is a
volume; several admin replicas should share it (ReadWriteMany) or run one replica.

File names carry what the list shows: omniroute-<UTC time>-<kind>-<random>.tar.gz.
"""

from __future__ import annotations

import os
import re
import secrets
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

KINDS = ("manual", "scheduled", "pre-restore", "pre-import")
_NAME = re.compile(r"^omniroute-(\d{8}T\d{6}Z)-(manual|scheduled|pre-restore|pre-import)-([0-9a-f]{6})$")


def folder(path: str) -> Path:
    directory = Path(path)
    directory.mkdir(parents=True, exist_ok=True, mode=0o700)
    return directory


def save(path: str, kind: str, data: bytes) -> dict[str, Any]:
    if kind not in KINDS:
        raise ValueError(f"unknown backup kind {kind!r}")
    directory = folder(path)
    backup_id = f"omniroute-{datetime.now(UTC):%Y%m%dT%H%M%SZ}-{kind}-{secrets.token_hex(3)}"
    final = directory / f"{backup_id}.tar.gz"
    partial = directory / f".{backup_id}.partial"
    # Written aside then renamed: a crash never leaves a truncated file that looks like a backup.
    fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(data)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(partial, final)
    return describe(final)


def describe(file: Path) -> dict[str, Any]:
    backup_id = file.name.removesuffix(".tar.gz")
    match = _NAME.match(backup_id)
    created = datetime.strptime(match.group(1), "%Y%m%dT%H%M%SZ").replace(tzinfo=UTC) if match else None
    return {"id": backup_id, "kind": match.group(2) if match else "unknown",
            "created_at": created.isoformat() if created else None, "size_bytes": file.stat().st_size}


def listing(path: str) -> list[dict[str, Any]]:
    directory = Path(path)
    if not directory.is_dir():
        return []
    found = [describe(f) for f in directory.glob("omniroute-*.tar.gz")
             if _NAME.match(f.name.removesuffix(".tar.gz"))]
    return sorted(found, key=lambda b: b["id"].split("-")[1] + b["id"], reverse=True)


def _file(path: str, backup_id: str) -> Path:
    # The id is matched against the name pattern first: no path can be smuggled in.
    if not _NAME.match(backup_id):
        raise KeyError(backup_id)
    file = Path(path) / f"{backup_id}.tar.gz"
    if not file.is_file():
        raise KeyError(backup_id)
    return file


def read(path: str, backup_id: str) -> bytes:
    return _file(path, backup_id).read_bytes()


def delete(path: str, backup_id: str) -> None:
    _file(path, backup_id).unlink()


def prune(path: str, kind: str, keep: int) -> list[str]:
    """Keep the newest `keep` backups of one kind; returns the ids removed."""
    of_kind = [b for b in listing(path) if b["kind"] == kind]
    removed = []
    for backup in of_kind[keep:]:
        delete(path, backup["id"])
        removed.append(backup["id"])
    return removed
