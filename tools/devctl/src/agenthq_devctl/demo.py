"""``make demo``: a living system for a newcomer, made the way real clients make it.

People, teams, roles, members, invitations and workspaces go through the
gateway's public API; the work of AgentHQ's agents (tasks created and
completed, LLM tokens) goes on the bus as the agent platform publishes it,
spread over the past weeks, so the activity log has history and usage has a
month of days. Running it again reuses the people and teams it made.
"""

from __future__ import annotations

import asyncio
import random
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx

from agenthq_common.bus import Bus
from agenthq_common.events import Actor, registry

PASSWORD = "demo-password-1"
DOMAIN = "demo.agenthq.example"
# (name, team, role): the first of each team creates it and owns it.
PEOPLE: list[tuple[str, str, str]] = [
    ("Ada", "Analytical Engines", "owner"),
    ("Charles", "Analytical Engines", "admin"),
    ("Mary", "Analytical Engines", "member"),
    ("Alan", "Analytical Engines", "member"),
    ("Joan", "Analytical Engines", "auditor"),
    ("Hedy", "Analytical Engines", "viewer"),
    ("Grace", "Compilers Inc", "owner"),
    ("Dennis", "Compilers Inc", "admin"),
    ("Barbara", "Compilers Inc", "member"),
    ("Ken", "Compilers Inc", "member"),
    ("Frances", "Compilers Inc", "member"),
    ("Edsger", "Compilers Inc", "viewer"),
]
TEAMS = {"Analytical Engines": "pro", "Compilers Inc": "enterprise"}
WORKSPACES = {
    "Analytical Engines": [
        ("Difference engine", "Tabulating polynomials by finite differences"),
        ("Notes on the engine", "Translations and the famous Note G"),
        ("Punched cards", "Jacquard loom programs"),
        ("Bernoulli numbers", "The first published program"),
        ("Codebreaking", "Bombe schedules"),
        ("Archive 1843", None),
    ],
    "Compilers Inc": [
        ("A-0 system", "The first compiler"),
        ("COBOL", "Business-oriented language committee"),
        ("Unix", "Time-sharing at Bell Labs"),
        ("Structured programming", "Go To statement considered harmful"),
        ("CLU", "Abstract data types"),
        ("Fortran optimiser", "Global flow analysis"),
        ("Legacy mainframe", None),
    ],
}
AUDITOR = ["activity:read", "workspace:read", "member:read", "usage:read"]
MODELS = ["claude-opus", "claude-sonnet", "claude-haiku"]


def email_of(name: str) -> str:
    return f"{name.lower()}@{DOMAIN}"


@dataclass
class Person:
    name: str
    email: str
    id: str
    token: str

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}


@dataclass
class Demo:
    client: httpx.AsyncClient
    say: Callable[[str], None]
    people: dict[str, Person] = field(default_factory=dict)
    teams: dict[str, str] = field(default_factory=dict)  # name -> id
    workspaces: dict[str, list[str]] = field(default_factory=dict)  # team id -> ids

    async def call(self, method: str, path: str, who: Person | None, **kwargs: Any) -> Any:
        response = await self.client.request(
            method, path, headers=who.headers if who else None, **kwargs
        )
        if response.status_code >= 400:
            raise DemoError(f"{method} {path}: {response.status_code} {response.text[:300]}")
        return response.json() if response.content else None

    async def person(self, name: str) -> Person:
        email = email_of(name)
        registered = await self.client.post(
            "/v1/auth/register", json={"email": email, "password": PASSWORD, "name": name}
        )
        if registered.status_code not in (201, 409):
            raise DemoError(f"registering {email}: {registered.status_code} {registered.text}")
        tokens = await self.call(
            "POST", "/v1/auth/login", None, json={"email": email, "password": PASSWORD}
        )
        person = Person(name, email, "", tokens["access_token"])
        person.id = (await self.call("GET", "/v1/me", person))["id"]
        return person

    async def team(self, name: str, owner: Person) -> str:
        mine = (await self.call("GET", "/v1/me", owner))["teams"]
        for team in mine:
            if team["name"] == name:
                return str(team["id"])
        created = await self.call(
            "POST", "/v1/teams", owner, json={"name": name, "plan": TEAMS[name]}
        )
        return str(created["id"])

    async def member(self, team_id: str, admin: Person, who: Person, role: str) -> None:
        path = f"/v1/teams/{team_id}/members"
        for _ in range(100):  # until the team service has heard of the new user
            response = await self.client.post(
                path, json={"email": who.email, "role": role}, headers=admin.headers
            )
            if response.status_code in (201, 409):
                return
            if response.status_code != 404:
                raise DemoError(f"adding {who.email}: {response.status_code} {response.text}")
            await asyncio.sleep(0.2)
        raise DemoError(f"the team service never heard of {who.email}")

    async def wait_for_membership(self, team_id: str, owner: Person) -> None:
        """Until the gateway's copy of the memberships has the new team."""
        for _ in range(100):
            if any(t["id"] == team_id for t in (await self.call("GET", "/v1/me", owner))["teams"]):
                return
            await asyncio.sleep(0.1)

    async def furnish(self, team_name: str, rng: random.Random) -> None:
        """The team, its custom role, members, a pending invitation, workspaces."""
        crew = [(n, r) for n, t, r in PEOPLE if t == team_name]
        owner = self.people[crew[0][0]]
        team_id = await self.team(team_name, owner)
        self.teams[team_name] = team_id
        await self.wait_for_membership(team_id, owner)
        self.say(f"Team {team_name} ({TEAMS[team_name]}): {len(crew) - 1} members, workspaces ...")
        base = f"/v1/teams/{team_id}"
        roles = await self.call("GET", f"{base}/roles", owner)
        if not any(r["name"] == "auditor" for r in roles["items"]):
            body = {"name": "auditor", "permissions": AUDITOR}
            await self.call("POST", f"{base}/roles", owner, json=body)
        for name, role in crew[1:]:
            await self.member(team_id, owner, self.people[name], role)
        pending = await self.call("GET", f"{base}/invitations", owner)
        if not any(i["status"] == "pending" for i in pending["items"]):
            invite = {"email": f"new-hire@{DOMAIN}", "role": "member"}
            await self.call("POST", f"{base}/invitations", owner, json=invite)
        query = {"limit": 200, "include_archived": "true"}
        existing = await self.call("GET", f"{base}/workspaces", owner, params=query)
        ids = {w["name"]: w["id"] for w in existing["items"]}
        writers = [n for n, r in crew if r in ("owner", "admin", "member")]
        for name, description in WORKSPACES[team_name]:
            if name in ids:
                continue
            author = self.people[rng.choice(writers)]
            body = {"name": name, "description": description}
            created = await self.call("POST", f"{base}/workspaces", author, json=body)
            ids[name] = created["id"]
            if description is None:  # the old ones, archived
                path = f"{base}/workspaces/{created['id']}"
                await self.call("PATCH", path, owner, json={"archived": True})
        self.workspaces[team_id] = list(ids.values())


class DemoError(RuntimeError):
    pass


async def build(
    gateway_url: str,
    broker_url: str,
    namespace: str,
    *,
    events_per_team: int = 1500,
    days: int = 30,
    say: Callable[[str], None] = print,
    seed: int = 7,
) -> dict[str, Any]:
    rng = random.Random(seed)
    async with httpx.AsyncClient(base_url=gateway_url, timeout=30) as client:
        demo = Demo(client, say)
        say(f"People: {len(PEOPLE)} accounts ...")
        for name, _, _ in PEOPLE:
            demo.people[name] = await demo.person(name)
        for team_name in TEAMS:
            await demo.furnish(team_name, rng)
        published = await publish_agent_work(
            demo, broker_url, namespace, events_per_team, days, rng, say
        )
    return {
        "teams": demo.teams,
        "people": {p.email: p.id for p in demo.people.values()},
        "published": published,
    }


async def publish_agent_work(
    demo: Demo,
    broker_url: str,
    namespace: str,
    per_team: int,
    days: int,
    rng: random.Random,
    say: Callable[[str], None],
) -> int:
    """What AgentHQ's agents did in these teams over the past ``days``: tasks
    created, then completed (or failed), with the LLM tokens they used."""
    bus = Bus(broker_url, namespace=namespace)
    await bus.connect()
    now = datetime.now(UTC)
    total = per_team * len(demo.teams)
    sent = 0
    try:
        for team_name, team_id in demo.teams.items():
            workers = [demo.people[n] for n, t, r in PEOPLE if t == team_name and r != "viewer"]
            for _ in range(per_team // 3):
                at = now - timedelta(seconds=rng.uniform(60, days * 86_400))
                who = rng.choice(workers)
                task = uuid.uuid4()
                workspace = uuid.UUID(rng.choice(demo.workspaces[team_id]))
                actor = Actor(id=uuid.UUID(who.id), user_agent="agenthq-agents/1.0")
                steps = [
                    ("task.created", {"task_id": task, "workspace_id": workspace}, at),
                    (
                        "llm.tokens.used",
                        {"tokens": rng.randint(500, 40_000), "model": rng.choice(MODELS)},
                        at + timedelta(seconds=rng.uniform(1, 50)),
                    ),
                    (
                        "task.completed",
                        {
                            "task_id": task,
                            "workspace_id": workspace,
                            "status": "succeeded" if rng.random() < 0.9 else "failed",
                        },
                        at + timedelta(seconds=rng.uniform(50, 600)),
                    ),
                ]
                for type_, data, when in steps:
                    event = registry.create(
                        type_,
                        data,
                        source="agenthq/agents",
                        actor=actor,
                        team_id=uuid.UUID(team_id),
                    ).model_copy(update={"time": min(when, now)})
                    await bus.publish(event)
                    sent += 1
                if sent % 600 == 0 or sent >= total - 2:
                    say(f"  agent events on the bus: {sent:,} / {total:,}")
    finally:
        await bus.close()
    return sent


def logins_text(result: dict[str, Any], gateway_url: str) -> str:
    lines = [f"Open {gateway_url}/ and sign in as any of these (password: {PASSWORD}):"]
    for name, team, role in PEOPLE:
        lines.append(f"  {email_of(name):<28} {team:<20} {role}")
    return "\n".join(lines)
