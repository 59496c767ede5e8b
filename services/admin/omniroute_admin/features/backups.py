"""Database archives: dump every table to JSON in a tar.gz, and restore one in a single
transaction (all tables replaced, or nothing changed).

Two kinds:
- "full": every table (configuration, usage, settings, admin password hash, audit log) — what
  stored backups and /exportAll hold;
- "portable": configuration and usage without the admin password hash and the audit trail —
  what /export hands out to move a setup to another deployment.
Provider credentials are in the archive as stored: encrypted with the master key, never in clear,
so restoring them needs the same OMNIROUTE_MASTER_KEY.

The dump is generic (every base table of the schema, in foreign-key order), so tables that other
modules add later are carried without changes here.
"""

from __future__ import annotations

import hashlib
import io
import tarfile
import time
import zlib
from datetime import UTC, datetime
from typing import Any

import orjson
from psycopg import AsyncConnection, errors

from omniroute.store import database_repo
from omniroute.store.database_repo import tables_in_order  # parents first: dump and restore order

FORMAT = "omniroute-backup"
VERSION = 1
NOT_PORTABLE = frozenset({"admin_password", "audit_log"})


class ArchiveError(ValueError):
    """The archive cannot be restored here; the message says why (shown as a 400)."""


async def dump(conn: AsyncConnection[Any], *, kind: str = "full") -> bytes:
    """A tar.gz of manifest.json and tables/<name>.json, read in one REPEATABLE READ snapshot so
    that the tables agree with each other."""
    if kind not in {"full", "portable"}:
        raise ValueError(f"unknown archive kind {kind!r}")
    leave_out = frozenset() if kind == "full" else NOT_PORTABLE
    migrations, order, contents = await database_repo.read_consistent(conn, leave_out)
    files = {f"tables/{table}.json": orjson.dumps(rows) for table, rows in contents.items()}
    counts = {table: len(rows) for table, rows in contents.items()}
    manifest = {"format": FORMAT, "version": VERSION, "kind": kind,
                "created_at": datetime.now(UTC).isoformat(), "migrations": migrations,
                "tables": order, "rows": counts,
                "sha256": {name: hashlib.sha256(data).hexdigest() for name, data in files.items()}}
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz", compresslevel=6) as archive:
        for name, data in [("manifest.json", orjson.dumps(manifest, option=orjson.OPT_INDENT_2)),
                           *files.items()]:
            info = tarfile.TarInfo(name)
            info.size, info.mtime, info.mode = len(data), int(time.time()), 0o600
            archive.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


def read_archive(data: bytes) -> tuple[dict[str, Any], dict[str, list[dict[str, Any]]]]:
    """Parse and check an archive without touching the database."""
    try:
        archive = tarfile.open(fileobj=io.BytesIO(data), mode="r:gz")
    except (tarfile.TarError, EOFError, OSError) as exc:
        raise ArchiveError(f"not a .tar.gz archive: {exc}") from None
    with archive:
        members: dict[str, bytes] = {}
        try:
            for member in archive.getmembers():
                if not member.isfile():
                    raise ArchiveError(f"unexpected entry {member.name!r} (only files are allowed)")
                extracted = archive.extractfile(member)
                members[member.name] = extracted.read() if extracted else b""
        except (tarfile.TarError, EOFError, OSError, zlib.error) as exc:
            raise ArchiveError(f"the archive is damaged: {exc}") from None
    try:
        manifest = orjson.loads(members["manifest.json"])
    except (KeyError, orjson.JSONDecodeError):
        raise ArchiveError("manifest.json is missing or not JSON") from None
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise ArchiveError("not an OmniRoute backup (manifest format)")
    if manifest.get("version") != VERSION:
        raise ArchiveError(f"archive version {manifest.get('version')!r} is not supported "
                           f"(expected {VERSION})")
    tables = manifest.get("tables")
    if not isinstance(tables, list) or not all(isinstance(t, str) for t in tables):
        raise ArchiveError("manifest.tables must be a list of table names")
    digests = manifest.get("sha256") or {}
    contents: dict[str, list[dict[str, Any]]] = {}
    for table in tables:
        name = f"tables/{table}.json"
        if name not in members:
            raise ArchiveError(f"{name} is listed in the manifest but missing")
        if hashlib.sha256(members[name]).hexdigest() != digests.get(name):
            raise ArchiveError(f"{name} does not match its checksum")
        rows = orjson.loads(members[name])
        if not isinstance(rows, list) or not all(isinstance(r, dict) for r in rows):
            raise ArchiveError(f"{name} must be a JSON list of objects")
        contents[table] = rows
    return manifest, contents


async def restore(conn: AsyncConnection[Any], data: bytes) -> dict[str, int]:
    """Replace the archive's tables with its rows, in one transaction: on any error nothing has
    changed. Tables the archive does not carry are left alone. Returns rows per table."""
    manifest, contents = read_archive(data)
    known = set(await database_repo.applied_migrations(conn))
    newer = [m for m in manifest.get("migrations") or [] if m not in known]
    if newer:
        raise ArchiveError(f"the archive comes from a newer schema (migrations {newer} are not applied "
                           "here); upgrade this deployment first")
    order = [t for t in await tables_in_order(conn) if t in contents]
    unknown = sorted(set(contents) - set(order) - {database_repo.SCHEMA_TABLE})
    if unknown:
        raise ArchiveError(f"the archive has tables this schema does not: {unknown}")
    columns = {t: await database_repo.columns(conn, t) for t in order}
    for table in order:
        extra = sorted({k for row in contents[table] for k in row} - set(columns[table]))
        if extra:
            raise ArchiveError(f"{table}: columns {extra} do not exist in this schema")
    try:
        return await database_repo.replace_tables(conn, order, columns, contents)
    except errors.Error as exc:
        # Constraint violations and bad values: the transaction rolled back as a whole.
        reason = exc.diag.message_primary or str(exc)
        raise ArchiveError(f"the archive does not fit this database: {reason}") from None
