"""Statements about the database as a whole: its version, its tables in foreign-key order and
their columns, and the whole-table reads and replacements that backups (every table) and
configuration sync (the configuration tables, through config_repo) are made of.

Deliberately generic: a backup carries every table, including those other repositories own, so
that tables added later travel without changes here. Only a restore writes through here."""

from __future__ import annotations

from collections import defaultdict
from typing import Any

import orjson
from psycopg import AsyncConnection, errors, sql

SCHEMA_TABLE = "schema_migrations"   # the schema itself: the migrations' business, never copied
_CHUNK = 2000


async def server_version(conn: AsyncConnection[Any]) -> str | None:
    row = await (await conn.execute("SHOW server_version")).fetchone()
    return str(row[0]) if row else None


async def applied_migrations(conn: AsyncConnection[Any]) -> list[str]:
    rows = await (await conn.execute(f"SELECT name FROM {SCHEMA_TABLE} ORDER BY name")).fetchall()
    return [r[0] for r in rows]


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
    pending = [n for n in names if n != SCHEMA_TABLE]
    while pending:
        ready = [n for n in pending if parents[n] <= placed or not (parents[n] & set(pending))]
        if not ready:            # a cycle: keep the remaining order, inserts will tell
            ready = pending[:1]
        for name in ready:
            ordered.append(name)
            placed.add(name)
        pending = [n for n in pending if n not in placed]
    return ordered


async def columns(conn: AsyncConnection[Any], table: str) -> list[str]:
    """The columns a row of `table` can be given (generated ones left out), in table order."""
    rows = await (await conn.execute(
        "SELECT attname FROM pg_attribute WHERE attrelid = %s::regclass AND attnum > 0 "
        "AND NOT attisdropped AND attgenerated = '' ORDER BY attnum",
        (sql.Identifier(table).as_string(conn),))).fetchall()
    return [r[0] for r in rows]


async def rows_of(conn: AsyncConnection[Any], table: str, order_by: str | None = None) -> list[dict[str, Any]]:
    """Every row of `table` as JSON objects (in `order_by` order when given)."""
    query = sql.SQL("SELECT to_jsonb(t) FROM {} t").format(sql.Identifier(table))
    if order_by:
        query = sql.SQL("{} ORDER BY {}").format(query, sql.Identifier(order_by))
    return [r[0] for r in await (await conn.execute(query)).fetchall()]


async def read_consistent(conn: AsyncConnection[Any], leave_out: frozenset[str]
                          ) -> tuple[list[str], list[str], dict[str, list[dict[str, Any]]]]:
    """(applied migrations, tables in order, their rows): read in one REPEATABLE READ snapshot so
    that the tables agree with each other."""
    async with conn.transaction():
        await conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ READ ONLY")
        migrations = await applied_migrations(conn)
        order = [t for t in await tables_in_order(conn) if t not in leave_out]
        contents = {table: await rows_of(conn, table) for table in order}
    return migrations, order, contents


async def insert_rows(conn: AsyncConnection[Any], table: str, table_columns: list[str],
                      rows: list[dict[str, Any]], *, keep_identity: bool = False) -> int:
    """Insert JSON rows; the database converts each value to its column's type, and a column no
    row carries takes its default (an older archive meeting a newer schema)."""
    if not rows:
        return 0
    present = [c for c in table_columns if any(c in row for row in rows)]
    cols = sql.SQL(", ").join(sql.Identifier(c) for c in present)
    statement = sql.SQL(
        "INSERT INTO {table} ({cols}) {overriding}"
        "SELECT {cols} FROM jsonb_populate_recordset(NULL::{table}, %s::jsonb)").format(
        table=sql.Identifier(table), cols=cols,
        overriding=sql.SQL("OVERRIDING SYSTEM VALUE " if keep_identity else ""))
    for start in range(0, len(rows), _CHUNK):
        await conn.execute(statement, (orjson.dumps(rows[start:start + _CHUNK]).decode(),))
    return len(rows)


async def delete_all(conn: AsyncConnection[Any], tables: list[str]) -> None:
    """Empty the tables, children first."""
    for table in reversed(tables):
        await conn.execute(sql.SQL("DELETE FROM {}").format(sql.Identifier(table)))


async def replace_tables(conn: AsyncConnection[Any], order: list[str], table_columns: dict[str, list[str]],
                         contents: dict[str, list[dict[str, Any]]]) -> dict[str, int]:
    """Replace the tables' rows (`order`: parents first; `table_columns`: from columns()) in one
    transaction, all or nothing; psycopg's errors.Error when the rows do not fit. Returns rows
    per table."""
    restored: dict[str, int] = {}
    async with conn.transaction():
        await _empty(conn, order)
        for table in order:
            restored[table] = await insert_rows(conn, table, table_columns[table], contents[table],
                                                keep_identity=True)
        await _reset_sequences(conn, order, table_columns)
    return restored


async def _empty(conn: AsyncConnection[Any], order: list[str]) -> None:
    targets = sql.SQL(", ").join(sql.Identifier(t) for t in order)
    try:
        async with conn.transaction():   # a savepoint: TRUNCATE refuses when a table outside the
            await conn.execute(sql.SQL("TRUNCATE {}").format(targets))   # set references one
    except errors.FeatureNotSupported:
        await delete_all(conn, order)


async def _reset_sequences(conn: AsyncConnection[Any], order: list[str],
                           table_columns: dict[str, list[str]]) -> None:
    """Serial / identity counters continue after the restored ids, not from where they were."""
    for table in order:
        qualified = sql.Identifier(table).as_string(conn)
        for column in table_columns[table]:
            row = await (await conn.execute("SELECT pg_get_serial_sequence(%s, %s)",
                                            (qualified, column))).fetchone()
            if not row or not row[0]:
                continue
            await conn.execute(
                sql.SQL("SELECT setval(%s, COALESCE(max({c}), 1), max({c}) IS NOT NULL) FROM {t}").format(
                    c=sql.Identifier(column), t=sql.Identifier(table)), (row[0],))
