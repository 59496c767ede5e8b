"""Apply the versioned SQL migrations in store/migrations, once each, in order.

Run as `python -m omniroute.store.migrate`. Safe to run from several processes at once: an
advisory lock serialises them. Creates the database first when it does not exist.
"""

from __future__ import annotations

import logging
from importlib import resources

import psycopg
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from omniroute import settings

log = logging.getLogger("omniroute.migrate")
_LOCK_ID = 0x0_4D_52_54  # any constant shared by all migrators


def ensure_database(url: str) -> None:
    """Create the database named in `url` if it is missing (needs CREATEDB on the server)."""
    params = conninfo_to_dict(url)
    name = str(params.get("dbname") or "")
    if not name:
        return
    admin_url = make_conninfo(url, dbname="postgres")
    with psycopg.connect(admin_url, autocommit=True) as conn:
        exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone()
        if not exists:
            try:
                conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
                log.info("created database %s", name)
            except psycopg.errors.DuplicateDatabase:
                pass  # another migrator won the race


def migration_files() -> list[tuple[str, str]]:
    folder = resources.files("omniroute.store") / "migrations"
    files = sorted(entry.name for entry in folder.iterdir() if entry.name.endswith(".sql"))
    return [(name, (folder / name).read_text()) for name in files]


def migrate(url: str) -> list[str]:
    """Apply pending migrations; returns the names applied now."""
    ensure_database(url)
    applied_now: list[str] = []
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("SELECT pg_advisory_lock(%s)", (_LOCK_ID,))
        try:
            conn.execute("CREATE TABLE IF NOT EXISTS schema_migrations ("
                         "name text PRIMARY KEY, applied_at timestamptz NOT NULL DEFAULT now())")
            done = {row[0] for row in conn.execute("SELECT name FROM schema_migrations")}
            for name, text in migration_files():
                if name in done:
                    continue
                with conn.transaction():
                    conn.execute(text.encode())
                    conn.execute("INSERT INTO schema_migrations (name) VALUES (%s)", (name,))
                applied_now.append(name)
                log.info("applied migration %s", name)
        finally:
            conn.execute("SELECT pg_advisory_unlock(%s)", (_LOCK_ID,))
    return applied_now


def main() -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    applied = migrate(settings.load().database_url)
    print(f"migrations applied: {', '.join(applied) if applied else 'none (up to date)'}")


if __name__ == "__main__":
    main()
