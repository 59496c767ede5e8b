"""compose: stages run in the listed order, each around the ones after it; a stage that answers
alone ends the call there; the list is read per call."""

from __future__ import annotations

from omniroute_router.pipeline.call import Call, Events, Next, Stage, compose

from .stages import error, make_call, response, start


def noting(name: str, seen: list[str]) -> Stage:
    async def stage(call: Call, next: Next) -> Events:
        seen.append(f"{name} before")
        async for event in next(call):
            yield event
        seen.append(f"{name} after")
    return stage


async def answer(call: Call, next: Next) -> Events:
    yield start()
    yield response()


async def test_stages_run_in_order_each_around_the_next() -> None:
    seen: list[str] = []
    pipeline = compose([noting("a", seen), noting("b", seen), answer])
    events = [e async for e in pipeline(make_call())]
    assert [e.WhichOneof("kind") for e in events] == ["start", "response"]
    assert seen == ["a before", "b before", "b after", "a after"]


async def test_a_stage_that_answers_alone_ends_the_call() -> None:
    seen: list[str] = []

    async def refuse(call: Call, next: Next) -> Events:
        yield error(403)

    pipeline = compose([noting("a", seen), refuse, noting("never", seen)])
    events = [e async for e in pipeline(make_call())]
    assert [e.error.status for e in events] == [403] and seen == ["a before", "a after"]


async def test_the_last_stage_gets_a_next_that_yields_nothing_and_stages_are_read_per_call() -> None:
    seen: list[str] = []
    pipeline = compose([noting("a", seen)])
    assert [e async for e in pipeline(make_call())] == []
    pipeline.stages.append(answer)
    assert len([e async for e in pipeline(make_call())]) == 2
