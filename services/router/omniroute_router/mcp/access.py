"""Tool access, default deny: a key sees what its team's `mcp_access` allows, narrowed by its
own map (None = its team's). An allow-list entry is a server id → ["*"] (everything on that
server) or names: tool names, prompt names and resource URIs alike."""

from __future__ import annotations

from collections.abc import Mapping

from omniroute.config.snapshot import ApiKey, ConfigSnapshot

ANY = "*"
SEPARATOR = "__"  # namespaced names: "<server id>__<tool or prompt name>"

Access = Mapping[str, frozenset[str]]


def _narrow(team: frozenset[str], key: frozenset[str]) -> frozenset[str]:
    if ANY in team:
        return key
    if ANY in key:
        return team
    return team & key


def effective(snapshot: ConfigSnapshot, key: ApiKey) -> dict[str, frozenset[str]]:
    """Server id → allowed names (or {"*"}): the team's map ∩ the key's, enabled servers only."""
    team = snapshot.teams.get(key.team_id)
    team_map = team.mcp_access if team is not None else None
    if not team_map:
        return {}
    out: dict[str, frozenset[str]] = {}
    for server_id, names in team_map.items():
        server = snapshot.mcp_servers.get(server_id)
        if server is None or not server.enabled:
            continue
        allowed = frozenset(names)
        if key.mcp_access is not None:
            if server_id not in key.mcp_access:
                continue
            allowed = _narrow(allowed, frozenset(key.mcp_access[server_id]))
        if allowed:
            out[server_id] = allowed
    return out


def admits(access: Access, server_id: str, name: str) -> bool:
    allowed = access.get(server_id)
    return allowed is not None and (ANY in allowed or name in allowed)


def namespaced(server_id: str, name: str) -> str:
    return f"{server_id}{SEPARATOR}{name}"


def split(name: str) -> tuple[str, str] | None:
    """("server", "tool") of a namespaced name; None when it names no server."""
    server_id, sep, own = name.partition(SEPARATOR)
    return (server_id, own) if sep and server_id and own else None
