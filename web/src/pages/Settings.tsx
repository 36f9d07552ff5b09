import { useMutation, useQuery, useQueryClient } from "@tanstack/react-query";
import { useState, type FormEvent } from "react";
import { useNavigate, useParams } from "react-router-dom";
import { unwrap, type Schemas } from "../api/client";
import { usePermissions } from "../auth/permissions";
import { useSession } from "../auth/session";
import { ErrorNote, Field, Loading } from "../components/ui";
import { useMembersByUser, useTeam } from "./Members";
import { useMe } from "./Teams";

type Plan = NonNullable<Schemas["PlanChange"]["plan"]>;

export function Settings() {
  const { teamId = "" } = useParams();
  const team = useTeam(teamId);
  const me = useMe(teamId);
  const permissions = usePermissions(teamId);
  if (team.isPending) return <Loading what="the team" />;
  if (team.error) return <ErrorNote error={team.error} />;
  const isOwner = me.data?.id === team.data.owner_id;
  return (
    <main>
      <h1>Team settings</h1>
      {permissions.can("team:update") && <Rename teamId={teamId} name={team.data.name} />}
      {permissions.can("billing:update") && <ChangePlan teamId={teamId} plan={team.data.plan} />}
      {isOwner && <TransferOwnership teamId={teamId} ownerId={team.data.owner_id} />}
      {isOwner && <DeleteTeam teamId={teamId} name={team.data.name} />}
      {!permissions.can("team:update") && !permissions.can("billing:update") && !isOwner && (
        <p>Your role ({permissions.role}) may not change the team's settings.</p>
      )}
    </main>
  );
}

function useTeamChanged(teamId: string) {
  const queryClient = useQueryClient();
  return async () => {
    await queryClient.invalidateQueries({ queryKey: ["team", teamId] });
    await queryClient.invalidateQueries({ queryKey: ["me"] });
  };
}

function Rename({ teamId, name }: { teamId: string; name: string }) {
  const { api } = useSession();
  const changed = useTeamChanged(teamId);
  const [value, setValue] = useState(name);
  const rename = useMutation({
    mutationFn: () =>
      unwrap(
        api.PATCH("/v1/teams/{team_id}", {
          params: { path: { team_id: teamId } },
          body: { name: value.trim() },
        }),
      ),
    onSuccess: changed,
  });
  return (
    <section aria-labelledby="rename">
      <h2 id="rename">Name</h2>
      <form
        aria-label="Rename the team"
        onSubmit={(e: FormEvent) => {
          e.preventDefault();
          rename.mutate();
        }}
      >
        <Field label="Team name" value={value} onChange={(e) => setValue(e.target.value)} maxLength={255} required />
        <ErrorNote error={rename.error} />
        {rename.isSuccess && <p role="status">Saved.</p>}
        <button type="submit" disabled={rename.isPending}>
          Rename
        </button>
      </form>
    </section>
  );
}

function ChangePlan({ teamId, plan }: { teamId: string; plan: string }) {
  const { api } = useSession();
  const changed = useTeamChanged(teamId);
  const plans = useQuery({ queryKey: ["plans"], queryFn: () => unwrap(api.GET("/v1/plans")) });
  const change = useMutation({
    mutationFn: (next: Plan) =>
      unwrap(
        api.PUT("/v1/teams/{team_id}/plan", {
          params: { path: { team_id: teamId } },
          body: { plan: next },
        }),
      ),
    onSuccess: changed,
  });
  return (
    <section aria-labelledby="plan">
      <h2 id="plan">Plan</h2>
      <form
        aria-label="Change the plan"
        onSubmit={(e: FormEvent<HTMLFormElement>) => {
          e.preventDefault();
          change.mutate(String(new FormData(e.currentTarget).get("plan")) as Plan);
        }}
      >
        <div className="field">
          <label htmlFor="team-plan">Plan</label>
          <select id="team-plan" name="plan" defaultValue={plan} key={plan}>
            {(plans.data?.items ?? [{ id: plan, name: plan }]).map((p) => (
              <option key={p.id} value={p.id}>
                {p.name}
              </option>
            ))}
          </select>
        </div>
        <ErrorNote error={change.error} />
        {change.isSuccess && <p role="status">The team is now on {change.data.plan}.</p>}
        <button type="submit" disabled={change.isPending}>
          Change plan
        </button>
      </form>
    </section>
  );
}

function TransferOwnership({ teamId, ownerId }: { teamId: string; ownerId: string }) {
  const { api } = useSession();
  const changed = useTeamChanged(teamId);
  const members = useMembersByUser(teamId);
  const others = [...members.entries()].filter(([id]) => id !== ownerId);
  const transfer = useMutation({
    mutationFn: (userId: string) =>
      unwrap(
        api.POST("/v1/teams/{team_id}/transfer-ownership", {
          params: { path: { team_id: teamId } },
          body: { user_id: userId },
        }),
      ),
    onSuccess: changed,
  });
  return (
    <section aria-labelledby="transfer">
      <h2 id="transfer">Ownership</h2>
      {others.length === 0 ? (
        <p>Add a member first: ownership goes to another member of the team.</p>
      ) : (
        <form
          aria-label="Transfer ownership"
          onSubmit={(e: FormEvent<HTMLFormElement>) => {
            e.preventDefault();
            transfer.mutate(String(new FormData(e.currentTarget).get("user_id")));
          }}
        >
          <div className="field">
            <label htmlFor="new-owner">New owner</label>
            <select id="new-owner" name="user_id">
              {others.map(([id, name]) => (
                <option key={id} value={id}>
                  {name}
                </option>
              ))}
            </select>
          </div>
          <ErrorNote error={transfer.error} />
          <button type="submit" disabled={transfer.isPending}>
            Transfer ownership
          </button>
        </form>
      )}
    </section>
  );
}

function DeleteTeam({ teamId, name }: { teamId: string; name: string }) {
  const { api } = useSession();
  const navigate = useNavigate();
  const queryClient = useQueryClient();
  const [typed, setTyped] = useState("");
  const remove = useMutation({
    mutationFn: () =>
      unwrap(api.DELETE("/v1/teams/{team_id}", { params: { path: { team_id: teamId } } })),
    onSuccess: () => {
      queryClient.setQueryData<Schemas["MeOut"]>(["me"], (me) =>
        me ? { ...me, teams: me.teams.filter((t) => t.id !== teamId) } : me,
      );
      navigate("/teams");
    },
  });
  return (
    <section aria-labelledby="delete" className="danger">
      <h2 id="delete">Delete the team</h2>
      <p>This removes the team, its members and its workspaces. It cannot be undone.</p>
      <form
        aria-label="Delete the team"
        onSubmit={(e: FormEvent) => {
          e.preventDefault();
          remove.mutate();
        }}
      >
        <Field
          label={`Type the team's name (${name}) to confirm`}
          value={typed}
          onChange={(e) => setTyped(e.target.value)}
          autoComplete="off"
        />
        <ErrorNote error={remove.error} />
        <button type="submit" className="danger" disabled={typed !== name || remove.isPending}>
          Delete this team
        </button>
      </form>
    </section>
  );
}
