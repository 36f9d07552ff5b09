"""Invitations: a seat held for an email until accepted, revoked or expired."""

from __future__ import annotations

import hashlib
import secrets
import uuid
from datetime import UTC, datetime, timedelta

from sqlalchemy import select, tuple_

from agenthq_common.authz import Membership
from agenthq_common.db import UnitOfWork
from agenthq_common.errors import Conflict, Forbidden, Gone, NotFound
from agenthq_common.events import Actor
from agenthq_team.events import emit
from agenthq_team.members.repository import MemberRepository
from agenthq_team.models import Invitation, TeamMember
from agenthq_team.roles.service import ensure_assignable
from agenthq_team.seats import claim_seat, lock_team


def hash_token(token: str) -> str:
    # 256 random bits: a plain hash suffices, and lets us find the row by it.
    return hashlib.sha256(token.encode()).hexdigest()


def status_of(invitation: Invitation, now: datetime | None = None) -> str:
    now = now or datetime.now(UTC)
    if invitation.accepted_at is not None:
        return "accepted"
    if invitation.revoked_at is not None:
        return "revoked"
    if invitation.expires_at <= now:
        return "expired"
    return "pending"


async def create(
    uow: UnitOfWork, actor: Actor, member: Membership, *, email: str, role: str, ttl: timedelta
) -> tuple[Invitation, str]:
    email = email.lower()
    team = await lock_team(uow.session, member.team_id)
    await ensure_assignable(uow.session, member, role)
    repo = MemberRepository(uow.session)
    existing_user = await repo.user_by_email(email)
    if existing_user is not None and await repo.get(team.id, existing_user.id) is not None:
        raise Conflict("That user is already a member", code="already_member")
    pending = (
        await uow.session.execute(
            select(Invitation).where(Invitation.team_id == team.id, Invitation.email == email)
        )
    ).scalars()
    if any(status_of(i) == "pending" for i in pending):
        raise Conflict(
            "An invitation for this email is already pending; revoke it first",
            code="already_invited",
        )
    await claim_seat(uow.session, team)
    token = secrets.token_urlsafe(32)
    invitation = Invitation(
        id=uuid.uuid4(),
        team_id=team.id,
        email=email,
        role=role,
        token_hash=hash_token(token),
        invited_by=member.user_id,
        expires_at=datetime.now(UTC) + ttl,
    )
    uow.session.add(invitation)
    await uow.session.flush()
    await uow.session.refresh(invitation)
    emit(
        uow,
        actor,
        "invitation.created",
        team_id=team.id,
        subject=f"invitation/{invitation.id}",
        invitation_id=invitation.id,
        email=email,
        role=role,
        expires_at=invitation.expires_at,
    )
    return invitation, token


async def list_for_team(
    uow: UnitOfWork,
    team_id: uuid.UUID,
    *,
    limit: int,
    before: tuple[datetime, uuid.UUID] | None,
) -> list[Invitation]:
    """Newest first, keyset-paged by (created_at, id)."""
    query = (
        select(Invitation)
        .where(Invitation.team_id == team_id)
        .order_by(Invitation.created_at.desc(), Invitation.id.desc())
        .limit(limit)
    )
    if before is not None:
        query = query.where(tuple_(Invitation.created_at, Invitation.id) < tuple_(*before))
    return list((await uow.session.execute(query)).scalars())


async def revoke(
    uow: UnitOfWork, actor: Actor, member: Membership, *, invitation_id: uuid.UUID
) -> None:
    await lock_team(uow.session, member.team_id)
    invitation = (
        await uow.session.execute(
            select(Invitation)
            .where(Invitation.id == invitation_id, Invitation.team_id == member.team_id)
            .with_for_update()
        )
    ).scalar_one_or_none()
    if invitation is None:
        raise NotFound("No such invitation", code="invitation_not_found")
    state = status_of(invitation)
    if state == "revoked":
        return  # revoking twice is harmless
    if state == "accepted":
        raise Conflict("The invitation was already accepted", code="invitation_accepted")
    invitation.revoked_at = datetime.now(UTC)
    emit(
        uow,
        actor,
        "invitation.revoked",
        team_id=invitation.team_id,
        subject=f"invitation/{invitation.id}",
        invitation_id=invitation.id,
    )


async def accept(
    uow: UnitOfWork, actor: Actor, *, token: str, caller_email: str | None
) -> TeamMember:
    assert actor.id is not None
    token_hash = hash_token(token)
    team_id = await uow.session.scalar(
        select(Invitation.team_id).where(Invitation.token_hash == token_hash)
    )
    if team_id is None:
        raise NotFound("No invitation with that token", code="invitation_not_found")
    # Team first, then the invitation: the order every other change takes
    # (deleting the team locks it, then its invitations), so no deadlock.
    await lock_team(uow.session, team_id)
    invitation = (
        await uow.session.execute(
            select(Invitation).where(Invitation.token_hash == token_hash).with_for_update()
        )
    ).scalar_one_or_none()
    if invitation is None:
        raise NotFound("No invitation with that token", code="invitation_not_found")
    state = status_of(invitation)
    if state == "revoked":
        raise Gone("The invitation was revoked", code="invitation_revoked")
    if state == "expired":
        raise Gone("The invitation has expired; ask for a new one", code="invitation_expired")
    if state == "accepted":
        raise Gone("The invitation was already used", code="invitation_used")
    if caller_email is None or caller_email.lower() != invitation.email:
        raise Forbidden("This invitation is for another email address", code="email_mismatch")
    repo = MemberRepository(uow.session)
    if await repo.get(invitation.team_id, actor.id) is not None:
        raise Conflict("You are already a member of this team", code="already_member")
    now = datetime.now(UTC)
    invitation.accepted_at = now
    invitation.accepted_by = actor.id
    member = TeamMember(team_id=invitation.team_id, user_id=actor.id, role=invitation.role)
    await repo.add(member)
    emit(
        uow,
        actor,
        "invitation.accepted",
        team_id=invitation.team_id,
        subject=f"invitation/{invitation.id}",
        invitation_id=invitation.id,
        user_id=actor.id,
    )
    emit(
        uow,
        actor,
        "member.added",
        team_id=invitation.team_id,
        subject=f"member/{actor.id}",
        user_id=actor.id,
        role=invitation.role,
    )
    return member
