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
from collections import defaultdict
from datetime import UTC, datetime
from typing import Any

import orjson
from psycopg import AsyncConnection, errors, sql

FORMAT = "omniroute-backup"
VERSION = 1
NEVER = frozenset({"schema_migrations"})        # the schema itself is the migrations' business
NOT_PORTABLE = frozenset({"admin_password", "audit_log"})
_CHUNK = 2000


class ArchiveError(ValueError):
    """The archive cannot be restored here; the message says why (shown as a 400)."""


async def tables_in_order(conn: AsyncConnection[Any]) -> list[str]:
    """Base tables of the public schema, parents before children (foreign keys)."""
    names = [r[0] for r in await (await conn.execute(
        "SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
        "WHERE n.nspname = 'public' AND c.relkind IN ('r', 'p') AND NOT c.relispartition "
        "ORDER BY c.relname")).fetchall()]
    edges = await (await conn.execute(
        "SELECT child.relname, parent.relname FROM pg_constraint k "
        "JOIN pg_class child ON child.oid = k.conrelid JOIN pg_class parent ON parent.oid = k.confrelid "
        "WHERE k.contype = 'f' AND k.connamespace = 'public'::regnamespace")).fetchall()
    parents: dict[str, set[str]] = defaultdict(set)
    for child, parent in edges:
        if child != parent:
            parents[child].add(parent)
    ordered: list[str] = []
    placed: set[str] = set()
    pending = [n for n in names if n not in NEVER]
    while pending:
        ready = [n for n in pending if parents[n] <= placed or not (parents[n] & set(pending))]
        if not ready:            # a cycle: keep the remaining order, inserts will tell
            ready = pending[:1]
        for name in ready:
            ordered.append(name)
            placed.add(name)
        pending = [n for n in pending if n not in placed]
    return ordered


async def _columns(conn: AsyncConnection[Any], table: str) -> list[str]:
    rows = await (await conn.execute(
        "SELECT attname FROM pg_attribute WHERE attrelid = %s::regclass AND attnum > 0 "
        "AND NOT attisdropped AND attgenerated = '' ORDER BY attnum",
        (sql.Identifier(table).as_string(conn),))).fetchall()
    return [r[0] for r in rows]


async def _migrations(conn: AsyncConnection[Any]) -> list[str]:
    rows = await (await conn.execute("SELECT name FROM schema_migrations ORDER BY name")).fetchall()
    return [r[0] for r in rows]


async def dump(conn: AsyncConnection[Any], *, kind: str = "full") -> bytes:
    """A tar.gz of manifest.json and tables/<name>.json, read in one REPEATABLE READ snapshot so
    that the tables agree with each other."""
    if kind not in {"full", "portable"}:
        raise ValueError(f"unknown archive kind {kind!r}")
    files: dict[str, bytes] = {}
    counts: dict[str, int] = {}
    async with conn.transaction():
        await conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ READ ONLY")
        migrations = await _migrations(conn)
        order = [t for t in await tables_in_order(conn) if kind == "full" or t not in NOT_PORTABLE]
        for table in order:
            rows = await (await conn.execute(
                sql.SQL("SELECT to_jsonb(t) FROM {} t").format(sql.Identifier(table)))).fetchall()
            files[f"tables/{table}.json"] = orjson.dumps([r[0] for r in rows])
            counts[table] = len(rows)
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
    known = set(await _migrations(conn))
    newer = [m for m in manifest.get("migrations") or [] if m not in known]
    if newer:
        raise ArchiveError(f"the archive comes from a newer schema (migrations {newer} are not applied "
                           "here); upgrade this deployment first")
    order = [t for t in await tables_in_order(conn) if t in contents]
    unknown = sorted(set(contents) - set(order) - NEVER)
    if unknown:
        raise ArchiveError(f"the archive has tables this schema does not: {unknown}")
    columns = {t: await _columns(conn, t) for t in order}
    for table in order:
        extra = sorted({k for row in contents[table] for k in row} - set(columns[table]))
        if extra:
            raise ArchiveError(f"{table}: columns {extra} do not exist in this schema")
    restored: dict[str, int] = {}
    try:
        async with conn.transaction():
            await _empty(conn, order)
            for table in order:
                restored[table] = await _insert(conn, table, columns[table], contents[table])
            await _reset_sequences(conn, order, columns)
    except errors.Error as exc:
        # Constraint violations and bad values: the transaction rolled back as a whole.
        reason = exc.diag.message_primary or str(exc)
        raise ArchiveError(f"the archive does not fit this database: {reason}") from None
    return restored


async def _empty(conn: AsyncConnection[Any], order: list[str]) -> None:
    targets = sql.SQL(", ").join(sql.Identifier(t) for t in order)
    try:
        async with conn.transaction():   # a savepoint: TRUNCATE refuses when a table outside the
            await conn.execute(sql.SQL("TRUNCATE {}").format(targets))   # archive references one
    except errors.FeatureNotSupported:
        for table in reversed(order):
            await conn.execute(sql.SQL("DELETE FROM {}").format(sql.Identifier(table)))


async def _insert(conn: AsyncConnection[Any], table: str, columns: list[str],
                  rows: list[dict[str, Any]]) -> int:
    if not rows:
        return 0
    present = [c for c in columns if any(c in row for row in rows)]
    # Absent columns take their default (an older archive meeting a newer schema).
    cols = sql.SQL(", ").join(sql.Identifier(c) for c in present)
    statement = sql.SQL(
        "INSERT INTO {table} ({cols}) OVERRIDING SYSTEM VALUE "
        "SELECT {cols} FROM jsonb_populate_recordset(NULL::{table}, %s::jsonb)").format(
        table=sql.Identifier(table), cols=cols)
    for start in range(0, len(rows), _CHUNK):
        await conn.execute(statement, (orjson.dumps(rows[start:start + _CHUNK]).decode(),))
    return len(rows)


async def _reset_sequences(conn: AsyncConnection[Any], order: list[str],
                           columns: dict[str, list[str]]) -> None:
    """Serial / identity counters continue after the restored ids, not from where they were."""
    for table in order:
        qualified = sql.Identifier(table).as_string(conn)
        for column in columns[table]:
            row = await (await conn.execute("SELECT pg_get_serial_sequence(%s, %s)",
                                            (qualified, column))).fetchone()
            if not row or not row[0]:
                continue
            await conn.execute(
                sql.SQL("SELECT setval(%s, COALESCE(max({c}), 1), max({c}) IS NOT NULL) FROM {t}").format(
                    c=sql.Identifier(column), t=sql.Identifier(table)), (row[0],))
