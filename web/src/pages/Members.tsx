import { useInfiniteQuery, useMutation, useQuery, useQueryClient } from "@tanstack/react-query";
import { useState, type FormEvent } from "react";
import { useNavigate, useParams } from "react-router-dom";
import { unwrap, type Schemas } from "../api/client";
import { usePermissions } from "../auth/permissions";
import { useSession } from "../auth/session";
import { Empty, ErrorNote, Field, Loading } from "../components/ui";
import { useMe } from "./Teams";

type Member = Schemas["MemberOut"];
const PAGE = 100;

export function useTeam(teamId: string) {
  const { api } = useSession();
  return useQuery({
    queryKey: ["team", teamId],
    queryFn: () =>
      unwrap(api.GET("/v1/teams/{team_id}", { params: { path: { team_id: teamId } } })),
  });
}

function useRoles(teamId: string) {
  const { api } = useSession();
  return useQuery({
    queryKey: ["roles", teamId],
    queryFn: () =>
      unwrap(
        api.GET("/v1/teams/{team_id}/roles", {
          params: { path: { team_id: teamId }, query: { limit: 200 } },
        }),
      ),
    staleTime: 30_000,
  });
}

/** Every member's display name by user id (for the activity table and its filter). */
export function useMembersByUser(teamId: string): Map<string, string> {
  const { api } = useSession();
  const members = useQuery({
    queryKey: ["members", teamId, "all"],
    queryFn: () =>
      unwrap(
        api.GET("/v1/teams/{team_id}/members", {
          params: { path: { team_id: teamId }, query: { limit: 200 } },
        }),
      ),
    staleTime: 30_000,
  });
  return new Map(
    (members.data?.items ?? []).map((m) => [m.user_id, m.name ?? m.email ?? m.user_id]),
  );
}

export function Members() {
  const { teamId = "" } = useParams();
  const { api } = useSession();
  const members = useInfiniteQuery({
    queryKey: ["members", teamId],
    initialPageParam: undefined as string | undefined,
    queryFn: ({ pageParam }) =>
      unwrap(
        api.GET("/v1/teams/{team_id}/members", {
          params: { path: { team_id: teamId }, query: { limit: PAGE, cursor: pageParam } },
        }),
      ),
    getNextPageParam: (last) => last.next_cursor ?? undefined,
  });
  const items = members.data?.pages.flatMap((page) => page.items) ?? [];
  const permissions = usePermissions(teamId);

  return (
    <main>
      <h1>Members</h1>
      {members.isPending && <Loading what="members" />}
      <ErrorNote error={members.error} />
      {items.length > 0 && (
        <ul aria-label="Members" className="rows">
          {items.map((member) => (
            <MemberRow key={member.user_id} teamId={teamId} member={member} />
          ))}
        </ul>
      )}
      {members.hasNextPage && (
        <button onClick={() => void members.fetchNextPage()} disabled={members.isFetchingNextPage}>
          Load more
        </button>
      )}
      <OnlineNow teamId={teamId} />
      {permissions.can("member:create") && <Invitations teamId={teamId} />}
    </main>
  );
}

function MemberRow({ teamId, member }: { teamId: string; member: Member }) {
  const { api } = useSession();
  const me = useMe();
  const navigate = useNavigate();
  const queryClient = useQueryClient();
  const permissions = usePermissions(teamId);
  const roles = useRoles(teamId);
  const team = useTeam(teamId);
  const isMe = me.data?.id === member.user_id;
  const label = member.name ?? member.email ?? member.user_id;

  const changeRole = useMutation({
    mutationFn: (role: string) =>
      unwrap(
        api.PATCH("/v1/teams/{team_id}/members/{user_id}", {
          params: { path: { team_id: teamId, user_id: member.user_id } },
          body: { role },
        }),
      ),
    onSuccess: () => queryClient.invalidateQueries({ queryKey: ["members", teamId] }),
  });
  const remove = useMutation({
    mutationFn: () =>
      unwrap(
        api.DELETE("/v1/teams/{team_id}/members/{user_id}", {
          params: { path: { team_id: teamId, user_id: member.user_id } },
        }),
      ),
    onSuccess: async () => {
      if (isMe) {
        await queryClient.invalidateQueries({ queryKey: ["me"] });
        navigate("/teams");
      } else {
        await queryClient.invalidateQueries({ queryKey: ["members", teamId] });
      }
    },
  });

  // The owner stays an admin: nobody changes or removes them, nor may they leave.
  const isOwner = team.data?.owner_id === member.user_id;
  const canChange = permissions.can("member:update") && !isOwner && !isMe;
  const canRemove = isMe ? !isOwner : permissions.can("member:delete") && !isOwner;
  return (
    <li>
      <span className="name">
        {label} {isMe && "(you)"} {isOwner && <span className="badge">owner</span>}
      </span>
      {member.email && member.name && <span>{member.email}</span>}
      {canChange ? (
        <label>
          <span className="visually-hidden">Role of {label}</span>
          <select
            value={member.role}
            disabled={changeRole.isPending}
            onChange={(e) => changeRole.mutate(e.target.value)}
          >
            {(roles.data?.items ?? [{ name: member.role }]).map((role) => (
              <option key={role.name} value={role.name}>
                {role.name}
              </option>
            ))}
          </select>
        </label>
      ) : (
        <span className="role">{member.role}</span>
      )}
      {canRemove && (
        <button onClick={() => remove.mutate()} disabled={remove.isPending}>
          {isMe ? "Leave team" : `Remove ${label}`}
        </button>
      )}
      <ErrorNote error={changeRole.error ?? remove.error} />
    </li>
  );
}

function Invitations({ teamId }: { teamId: string }) {
  const { api } = useSession();
  const queryClient = useQueryClient();
  const roles = useRoles(teamId);
  const [email, setEmail] = useState("");
  const [link, setLink] = useState<string | null>(null);
  const pending = useQuery({
    queryKey: ["invitations", teamId],
    queryFn: () =>
      unwrap(
        api.GET("/v1/teams/{team_id}/invitations", {
          params: { path: { team_id: teamId }, query: { limit: 200 } },
        }),
      ),
  });
  const invite = useMutation({
    mutationFn: (body: Schemas["InvitationCreate"]) =>
      unwrap(
        api.POST("/v1/teams/{team_id}/invitations", { params: { path: { team_id: teamId } }, body }),
      ),
    onSuccess: async (created) => {
      setEmail("");
      // The token is shown once: the API keeps only its hash.
      setLink(`${window.location.origin}/invite/${created.token}`);
      await queryClient.invalidateQueries({ queryKey: ["invitations", teamId] });
    },
  });
  const revoke = useMutation({
    mutationFn: (id: string) =>
      unwrap(
        api.DELETE("/v1/teams/{team_id}/invitations/{invitation_id}", {
          params: { path: { team_id: teamId, invitation_id: id } },
        }),
      ),
    onSuccess: () => queryClient.invalidateQueries({ queryKey: ["invitations", teamId] }),
  });

  function submit(event: FormEvent<HTMLFormElement>) {
    event.preventDefault();
    const form = new FormData(event.currentTarget);
    setLink(null);
    invite.mutate({ email: email.trim(), role: String(form.get("role") ?? "member") });
  }

  const open = pending.data?.items.filter((i) => i.status === "pending") ?? [];
  return (
    <section aria-labelledby="invitations">
      <h2 id="invitations">Invitations</h2>
      <form onSubmit={submit} aria-label="Invite">
        <Field
          label="Email to invite"
          type="email"
          value={email}
          onChange={(e) => setEmail(e.target.value)}
          required
        />
        <div className="field">
          <label htmlFor="invite-role">Role</label>
          <select id="invite-role" name="role" defaultValue="member">
            {(roles.data?.items ?? [{ name: "member" }]).map((role) => (
              <option key={role.name} value={role.name}>
                {role.name}
              </option>
            ))}
          </select>
        </div>
        <ErrorNote error={invite.error} />
        <button type="submit" disabled={invite.isPending}>
          Invite
        </button>
      </form>
      {link && (
        <div role="status" className="once">
          <p>Send this link to the person invited. It is shown only once.</p>
          <input aria-label="Invitation link" readOnly value={link} onFocus={(e) => e.target.select()} />
        </div>
      )}
      <h3>Pending</h3>
      {pending.isPending && <Loading what="invitations" />}
      <ErrorNote error={pending.error ?? revoke.error} />
      {pending.isSuccess && open.length === 0 && <Empty>No pending invitations.</Empty>}
      {open.length > 0 && (
        <ul aria-label="Pending invitations" className="rows">
          {open.map((invitation) => (
            <li key={invitation.id}>
              <span className="name">{invitation.email}</span>
              <span className="role">{invitation.role}</span>
              <span>until {new Date(invitation.expires_at).toLocaleDateString()}</span>
              <button
                onClick={() => revoke.mutate(invitation.id)}
                aria-label={`Revoke the invitation of ${invitation.email}`}
              >
                Revoke
              </button>
            </li>
          ))}
        </ul>
      )}
    </section>
  );
}

/** Who has the team open right now, on any realtime instance (kept live by
 * the team's channel: presence.joined / presence.left refresh it). */
function OnlineNow({ teamId }: { teamId: string }) {
  const { api } = useSession();
  const names = useMembersByUser(teamId);
  const presence = useQuery({
    queryKey: ["presence", teamId],
    queryFn: () =>
      unwrap(
        api.GET("/v1/teams/{team_id}/presence", { params: { path: { team_id: teamId } } }),
      ),
  });
  return (
    <section aria-labelledby="online">
      <h2 id="online">Online now</h2>
      {presence.isPending && <Loading what="who is online" />}
      <ErrorNote error={presence.error} />
      {presence.isSuccess && presence.data.length === 0 && <Empty>Nobody is online.</Empty>}
      {presence.isSuccess && presence.data.length > 0 && (
        <ul aria-label="Online now" className="rows">
          {presence.data.map((present) => (
            <li key={present.user_id}>
              <span className="dot" aria-hidden="true">
                ●
              </span>{" "}
              {names.get(present.user_id) ?? present.user_id}
              {present.connections > 1 && ` (${present.connections} tabs or devices)`}
            </li>
          ))}
        </ul>
      )}
    </section>
  );
}
