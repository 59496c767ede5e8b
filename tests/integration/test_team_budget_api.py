"""/api/usage/budget shows team budgets: each team with a budget beside the keys' (spent by every
key of the team, held by their requests in flight, resetsAt), one team's with ?teamId=, and a
team admin sees only their teams' (another team's is 404, as if it did not exist)."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import redis.asyncio as redis

from omniroute.shared_state import budget
from omniroute.shared_state.budget_holds import BudgetHolds
from tests.integration.admin_app import running_admin


async def test_team_budgets_in_the_budget_answer_scoped_for_team_admins(tmp_path: Path) -> None:
    async with running_admin(tmp_path) as admin:
        for team, limit in (("alpha", 10.0), ("beta", 4.0)):
            created = await admin.client.post("/api/teams", json={
                "id": team, "name": team.title(), "budget": {"limit": limit, "period": "weekly"}})
            assert created.status_code == 201, created.text
        assert (await admin.client.post("/api/teams", json={"id": "nobudget"})).status_code == 201
        keys = [(await admin.client.post("/api/keys", json={"name": f"alpha-{i}", "team": "alpha"})).json()["id"]
                for i in range(2)]
        env = admin.settings.env
        client = redis.from_url(admin.settings.redis_url)
        try:
            now = datetime.now(UTC)
            await budget.record_spend(client, env, [
                budget.Spend(f"spend-{i}", key, 1_500_000_000, now, team_id="alpha") for i, key in enumerate(keys)])
            owner = budget.team_owner("alpha")
            start, end = budget.period_bounds("weekly", now)
            assert (await BudgetHolds(client, env).reserve(
                owner, "in-flight", budget.spend_key(env, owner, "weekly", start), 10 * budget.NANOS_PER_USD,
                500_000_000, 60)).admitted
        finally:
            await client.aclose()

        answer = (await admin.client.get("/api/usage/budget")).json()
        teams = {team["teamId"]: team for team in answer["teamBudgets"]}
        assert set(teams) == {"alpha", "beta"}  # a team without a budget is not listed
        alpha = teams["alpha"]
        assert (alpha["name"], alpha["limit"], alpha["period"], alpha["spent"], alpha["held"]) == (
            "Alpha", 10.0, "weekly", 3.0, 0.5)
        assert alpha["remaining"] == 7.0 and alpha["resetsAt"] == end.isoformat() and "keyId" not in alpha
        assert teams["beta"]["spent"] == 0
        assert (await admin.client.get("/api/usage/budget", params={"teamId": "alpha"})).json() == alpha
        assert (await admin.client.get("/api/usage/budget", params={"teamId": "nowhere"})).status_code == 404

        token = await admin.client.post("/api/tokens", json={"name": "alpha-admin", "role": "team_admin",
                                                             "team_id": "alpha"})
        assert token.status_code == 201, token.text
        team_admin = admin.anonymous()
        team_admin.headers["authorization"] = f"Bearer {token.json()['token']}"
        try:
            scoped = (await team_admin.get("/api/usage/budget")).json()
            assert [team["teamId"] for team in scoped["teamBudgets"]] == ["alpha"]
            assert (await team_admin.get("/api/usage/budget", params={"teamId": "beta"})).status_code == 404
            assert (await team_admin.get("/api/usage/budget", params={"teamId": "alpha"})).json()["spent"] == 3.0
        finally:
            await team_admin.aclose()
