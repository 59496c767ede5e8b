"""People who manage the gateway (the use cases behind /api/people, the dashboard's People page and
the config file's `people:`). Owners alone may create, change or delete an owner, or grant the
owner role; a team admin's teams must exist."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from fastapi import HTTPException
from psycopg import AsyncConnection

from omniroute.config.spec import PersonSpec
from omniroute.store import people_repo
from omniroute_admin import access, audit
from omniroute_admin.deps import Caller
from omniroute_admin.state import AdminState


@dataclass(frozen=True, slots=True)
class PersonFields:
    email: str
    name: str
    role: str
    team_ids: tuple[str, ...] = ()
    enabled: bool = True


def fields_of(spec: PersonSpec) -> PersonFields:
    return PersonFields(email=spec.email.strip(), name=spec.name.strip(), role=spec.role,
                        team_ids=tuple(dict.fromkeys(spec.team_ids)), enabled=spec.enabled)


async def declare(conn: AsyncConnection[Any], spec: PersonSpec) -> None:
    """A person of the config file's `people:`: created or updated by e-mail (GitOps: the file
    is the truth for those it names); a team it names must exist (declared above it)."""
    fields = fields_of(spec)
    try:
        await check_teams(conn, fields)
    except HTTPException as exc:
        raise SystemExit(f"OMNIROUTE_CONFIG: person {spec.email!r}: {exc.detail}") from None
    await people_repo.upsert(conn, email=fields.email, name=fields.name, role=fields.role,
                             team_ids=list(fields.team_ids), source="config", enabled=fields.enabled)


def _owner_only(caller: Caller, what: str) -> None:
    if not caller.principal.at_least("owner"):
        raise HTTPException(403, f"Only an owner may {what}.")


async def check_teams(conn: AsyncConnection[Any], fields: PersonFields) -> None:
    """A team admin manages at least one team, every one of which exists; other roles see every
    team, so a team list would mean nothing for them."""
    if fields.role == "team_admin" and not fields.team_ids:
        raise HTTPException(400, "A team_admin needs team_ids (the teams they manage).")
    if fields.role != "team_admin" and fields.team_ids:
        raise HTTPException(400, f"team_ids apply to team admins only; a {fields.role} sees every team.")
    missing = sorted(set(fields.team_ids) - await people_repo.known_teams(conn, list(fields.team_ids)))
    if missing:
        raise HTTPException(400, f"No such team: {', '.join(missing)}.")


async def listing(state: AdminState) -> list[dict[str, Any]]:
    async with state.pool.connection() as conn:
        return [person.as_json() for person in await people_repo.list_people(conn)]


async def get(state: AdminState, person_id: str) -> dict[str, Any]:
    async with state.pool.connection() as conn:
        person = await people_repo.by_id(conn, person_id)
    if person is None:
        raise HTTPException(404, f"No person {person_id!r}.")
    return person.as_json()


async def create(state: AdminState, caller: Caller, fields: PersonFields, *,
                 source: str = "api") -> dict[str, Any]:
    if fields.role == "owner":
        _owner_only(caller, "grant the owner role")
    async with state.pool.connection() as conn, conn.transaction():
        await check_teams(conn, fields)
        if await people_repo.by_email(conn, fields.email) is not None:
            raise HTTPException(409, f"{fields.email} is already a person here.")
        person = await people_repo.upsert(conn, email=fields.email, name=fields.name, role=fields.role,
                                          team_ids=list(fields.team_ids), source=source,
                                          enabled=fields.enabled)
        await audit.record(state, caller, "people.create", person.id, after=person.as_json(), conn=conn,
                           detail={"email": person.email, "role": person.role})
    return person.as_json()


async def update(state: AdminState, caller: Caller, person_id: str, fields: PersonFields) -> dict[str, Any]:
    async with state.pool.connection() as conn, conn.transaction():
        before = await people_repo.by_id(conn, person_id)
        if before is None:
            raise HTTPException(404, f"No person {person_id!r}.")
        if before.role == "owner":
            _owner_only(caller, "change an owner")
        if fields.role == "owner":
            _owner_only(caller, "grant the owner role")
        await check_teams(conn, fields)
        other = await people_repo.by_email(conn, fields.email)
        if other is not None and other.id != person_id:
            raise HTTPException(409, f"{fields.email} is another person's e-mail.")
        after = await people_repo.update(conn, person_id, email=fields.email, name=fields.name,
                                         role=fields.role, team_ids=list(fields.team_ids),
                                         enabled=fields.enabled)
        assert after is not None
        await audit.record(state, caller, "people.update", person_id, before=before.as_json(),
                           after=after.as_json(), conn=conn,
                           detail={"email": after.email, "role": after.role,
                                   "previous_role": before.role})
    return after.as_json()


async def delete(state: AdminState, caller: Caller, person_id: str) -> None:
    async with state.pool.connection() as conn, conn.transaction():
        person = await people_repo.by_id(conn, person_id)
        if person is None:
            raise HTTPException(404, f"No person {person_id!r}.")
        if person.role == "owner":
            _owner_only(caller, "delete an owner")
        await people_repo.delete(conn, person_id)
        await audit.record(state, caller, "people.delete", person_id, before=person.as_json(), conn=conn,
                           detail={"email": person.email, "role": person.role})


def principal_of_person(person: people_repo.Person) -> access.Principal:
    role: access.Role = person.role  # type: ignore[assignment]  # the table's CHECK holds it to ROLES
    return access.Principal(kind="person", actor=f"person:{person.email}", role=role,
                            team_ids=frozenset(person.team_ids) if role == "team_admin" else frozenset(),
                            person_id=person.id)


async def current_principal(state: AdminState, person_id: str) -> access.Principal | None:
    """A person's principal as the table says now (a role changed or a person removed since
    their session began takes effect on their next call); None when gone or disabled."""
    async with state.pool.connection() as conn:
        person = await people_repo.by_id(conn, person_id)
    if person is None or not person.enabled:
        return None
    return principal_of_person(person)
