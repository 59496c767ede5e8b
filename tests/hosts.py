"""Names this machine resolves to an address of the test's choosing: a line of their own in
/etc/hosts, removed afterwards. A public-looking name that resolves to 127.0.0.1 is what a
hostile DNS answer (or DNS rebinding) looks like to the gateway: it passes every check by name.
Edits hold an exclusive lock, so that test processes running side by side (xdist workers) each
add and remove their own line without losing another's."""

from __future__ import annotations

import contextlib
import fcntl
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path

HOSTS = Path("/etc/hosts")
_LOCK = Path(tempfile.gettempdir()) / "omniroute-etc-hosts.lock"


def public_looking_name() -> str:
    return f"api-{uuid.uuid4().hex[:12]}.omniroute-ssrf-test.com"


@contextlib.contextmanager
def _locked() -> Iterator[None]:
    with _LOCK.open("a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


@contextlib.contextmanager
def name_resolving_to(name: str, address: str = "127.0.0.1") -> Iterator[str]:
    """`name`, resolving to `address` while the context lasts."""
    line = f"{address} {name}\n"
    with _locked():
        text = HOSTS.read_text()
        if text and not text.endswith("\n"):
            text += "\n"
        HOSTS.write_text(text + line)
    try:
        yield name
    finally:
        with _locked():
            HOSTS.write_text(HOSTS.read_text().replace(line, ""))
