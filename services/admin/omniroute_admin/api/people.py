"""/api/people: who manages the gateway, with a role (and a team admin's teams). Viewers read;
admins manage; owners alone touch owners (the use cases: services/people.py)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends

from omniroute.config.spec import PersonSpec
from omniroute_admin.deps import CallerDep, StateDep
from omniroute_admin.services import people
from omniroute_admin.sessions import require_session

router = APIRouter(dependencies=[Depends(require_session)], tags=["people"])


@router.get("/api/people", summary="People and their roles")
async def list_people(state: StateDep) -> dict[str, Any]:
    return {"people": await people.listing(state)}


@router.post("/api/people", status_code=201, summary="Add a person (owner role: owners only)")
async def create_person(body: PersonSpec, state: StateDep, caller: CallerDep) -> dict[str, Any]:
    return await people.create(state, caller, people.fields_of(body))


@router.get("/api/people/{person_id}", summary="One person")
async def get_person(person_id: str, state: StateDep) -> dict[str, Any]:
    return await people.get(state, person_id)


@router.put("/api/people/{person_id}", summary="Change a person (an owner, or to owner: owners only)")
async def update_person(person_id: str, body: PersonSpec, state: StateDep, caller: CallerDep) -> dict[str, Any]:
    return await people.update(state, caller, person_id, people.fields_of(body))


@router.delete("/api/people/{person_id}", summary="Remove a person (an owner: owners only)")
async def delete_person(person_id: str, state: StateDep, caller: CallerDep) -> dict[str, Any]:
    await people.delete(state, caller, person_id)
    return {"deleted": person_id}
