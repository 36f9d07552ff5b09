import { useMutation, useQuery, useQueryClient, type QueryClient } from "@tanstack/react-query";
import { useState, type FormEvent } from "react";
import { Link, useNavigate } from "react-router-dom";
import { unwrap, type Schemas } from "../api/client";
import { useSession } from "../auth/session";
import { Empty, ErrorNote, Field, Loading } from "../components/ui";

type Me = Schemas["MeOut"];

/** The caller and their teams. `teamId`: a team the page is about; while the
 * gateway's copy of the memberships does not list it yet (it learns of them
 * from the bus, a few milliseconds after the team service), ask again. */
export function useMe(teamId?: string) {
  const { api } = useSession();
  return useQuery({
    queryKey: ["me"],
    queryFn: () => unwrap(api.GET("/v1/me")),
    refetchInterval: (query) => {
      const me = query.state.data as Me | undefined;
      const missing = teamId && me && !me.teams.some((t) => t.id === teamId);
      return missing && query.state.dataUpdateCount < 30 ? 500 : false;
    },
  });
}

/** A team the caller just joined (created it, accepted an invitation), known
 * before the gateway's copy of the memberships catches up. */
export function rememberTeam(queryClient: QueryClient, team: Me["teams"][number]) {
  queryClient.setQueryData<Me>(["me"], (me) =>
    me && !me.teams.some((t) => t.id === team.id) ? { ...me, teams: [...me.teams, team] } : me,
  );
  // Then the gateway's own answer (with the team's name); while it lacks the
  // team, useMe keeps asking.
  setTimeout(() => void queryClient.invalidateQueries({ queryKey: ["me"] }), 1500);
}

export function Teams() {
  const me = useMe();
  return (
    <main>
      <h1>My teams</h1>
      {me.isPending && <Loading what="your teams" />}
      <ErrorNote error={me.error} />
      {me.data && me.data.teams.length === 0 && (
        <Empty>You are in no team yet: create one below, or accept an invitation.</Empty>
      )}
      {me.data && me.data.teams.length > 0 && (
        <ul aria-label="My teams" className="cards">
          {me.data.teams.map((team) => (
            <li key={team.id}>
              <Link to={`/teams/${team.id}/workspaces`}>{team.name ?? "(unnamed team)"}</Link>{" "}
              <span className="role">{team.role}</span>
            </li>
          ))}
        </ul>
      )}
      <CreateTeam />
    </main>
  );
}

function CreateTeam() {
  const { api } = useSession();
  const queryClient = useQueryClient();
  const navigate = useNavigate();
  const plans = useQuery({
    queryKey: ["plans"],
    queryFn: () => unwrap(api.GET("/v1/plans")),
    staleTime: 60_000,
  });
  const [name, setName] = useState("");
  const create = useMutation({
    mutationFn: (body: Schemas["TeamCreate"]) =>
      unwrap(api.POST("/v1/teams", { body })),
    onSuccess: (team) => {
      rememberTeam(queryClient, { id: team.id, name: team.name, role: "admin" });
      navigate(`/teams/${team.id}/workspaces`);
    },
  });

  function submit(event: FormEvent<HTMLFormElement>) {
    event.preventDefault();
    const form = new FormData(event.currentTarget);
    const plan = String(form.get("plan") ?? "free") as NonNullable<Schemas["TeamCreate"]["plan"]>;
    create.mutate({ name: name.trim(), plan });
  }

  return (
    <section aria-labelledby="create-team">
      <h2 id="create-team">Create a team</h2>
      <form onSubmit={submit} aria-label="Create a team">
        <Field
          label="Team name"
          name="name"
          value={name}
          onChange={(e) => setName(e.target.value)}
          maxLength={255}
          required
        />
        <div className="field">
          <label htmlFor="plan">Plan</label>
          <select id="plan" name="plan" defaultValue="free">
            {(plans.data?.items ?? [{ id: "free", name: "Free" }]).map((plan) => (
              <option key={plan.id} value={plan.id}>
                {plan.name}
              </option>
            ))}
          </select>
        </div>
        <ErrorNote error={create.error} />
        <button type="submit" disabled={create.isPending}>
          {create.isPending ? "Creating…" : "Create team"}
        </button>
      </form>
    </section>
  );
}
