import { useMutation, useQuery, useQueryClient } from "@tanstack/react-query";
import { useState, type FormEvent } from "react";
import { useParams } from "react-router-dom";
import { unwrap, type Schemas } from "../api/client";
import { usePermissions } from "../auth/permissions";
import { useSession } from "../auth/session";
import { ErrorNote, Field, Loading } from "../components/ui";

type Role = Schemas["RoleOut"];

/** Roles and their permissions as a matrix: resources down, actions across. */
export function Roles() {
  const { teamId = "" } = useParams();
  const { api } = useSession();
  const permissions = usePermissions(teamId);
  const catalog = useQuery({
    queryKey: ["permissions-catalog"],
    queryFn: () => unwrap(api.GET("/v1/permissions")),
    staleTime: Infinity,
  });
  const roles = useQuery({
    queryKey: ["roles", teamId],
    queryFn: () =>
      unwrap(
        api.GET("/v1/teams/{team_id}/roles", {
          params: { path: { team_id: teamId }, query: { limit: 200 } },
        }),
      ),
  });
  if (catalog.isPending || roles.isPending) return <Loading what="roles" />;
  if (catalog.error || roles.error) return <ErrorNote error={catalog.error ?? roles.error} />;
  const editable = permissions.can("role:update");
  return (
    <main className="wide">
      <h1>Roles</h1>
      {roles.data.items.map((role) => (
        <RoleMatrix
          key={role.name}
          teamId={teamId}
          role={role}
          resources={catalog.data.resources}
          editable={editable && !role.built_in}
          deletable={permissions.can("role:delete") && !role.built_in}
        />
      ))}
      {permissions.can("role:create") && <NewRole teamId={teamId} />}
    </main>
  );
}

function RoleMatrix({
  teamId,
  role,
  resources,
  editable,
  deletable,
}: {
  teamId: string;
  role: Role;
  resources: Record<string, string[]>;
  editable: boolean;
  deletable: boolean;
}) {
  const { api } = useSession();
  const queryClient = useQueryClient();
  const [granted, setGranted] = useState(new Set(role.permissions));
  const actions = [...new Set(Object.values(resources).flat())];
  const changed = () => queryClient.invalidateQueries({ queryKey: ["roles", teamId] });
  const save = useMutation({
    mutationFn: () =>
      unwrap(
        api.PATCH("/v1/teams/{team_id}/roles/{name}", {
          params: { path: { team_id: teamId, name: role.name } },
          body: { permissions: [...granted].sort() },
        }),
      ),
    onSuccess: changed,
  });
  const remove = useMutation({
    mutationFn: () =>
      unwrap(
        api.DELETE("/v1/teams/{team_id}/roles/{name}", {
          params: { path: { team_id: teamId, name: role.name } },
        }),
      ),
    onSuccess: changed,
  });
  const toggle = (permission: string) =>
    setGranted((now) => {
      const next = new Set(now);
      if (next.has(permission)) next.delete(permission);
      else next.add(permission);
      return next;
    });
  return (
    <section aria-labelledby={`role-${role.name}`}>
      <h2 id={`role-${role.name}`}>
        {role.name} {role.built_in && <span className="badge">built in</span>}
      </h2>
      <table aria-label={`Permissions of ${role.name}`} className="matrix">
        <thead>
          <tr>
            <th scope="col">Resource</th>
            {actions.map((action) => (
              <th key={action} scope="col">
                {action}
              </th>
            ))}
          </tr>
        </thead>
        <tbody>
          {Object.entries(resources).map(([resource, allowed]) => (
            <tr key={resource}>
              <th scope="row">{resource}</th>
              {actions.map((action) => {
                const permission = `${resource}:${action}`;
                return (
                  <td key={action}>
                    {allowed.includes(action) && (
                      <input
                        type="checkbox"
                        aria-label={`${role.name}: ${permission}`}
                        checked={granted.has(permission)}
                        disabled={!editable}
                        onChange={() => toggle(permission)}
                      />
                    )}
                  </td>
                );
              })}
            </tr>
          ))}
        </tbody>
      </table>
      <ErrorNote error={save.error ?? remove.error} />
      {editable && (
        <button onClick={() => save.mutate()} disabled={save.isPending}>
          Save {role.name}
        </button>
      )}
      {deletable && (
        <button className="danger" onClick={() => remove.mutate()} disabled={remove.isPending}>
          Delete {role.name}
        </button>
      )}
    </section>
  );
}

function NewRole({ teamId }: { teamId: string }) {
  const { api } = useSession();
  const queryClient = useQueryClient();
  const [name, setName] = useState("");
  const create = useMutation({
    mutationFn: () =>
      unwrap(
        api.POST("/v1/teams/{team_id}/roles", {
          params: { path: { team_id: teamId } },
          body: { name: name.trim(), permissions: ["workspace:read"] },
        }),
      ),
    onSuccess: async () => {
      setName("");
      await queryClient.invalidateQueries({ queryKey: ["roles", teamId] });
    },
  });
  return (
    <section aria-labelledby="new-role">
      <h2 id="new-role">New role</h2>
      <form
        aria-label="New role"
        onSubmit={(e: FormEvent) => {
          e.preventDefault();
          create.mutate();
        }}
      >
        <Field
          label="Role name"
          value={name}
          onChange={(e) => setName(e.target.value)}
          pattern="[a-z][a-z0-9_\-]{0,49}"
          title="lower-case letters, digits, - and _; a letter first"
          required
        />
        <ErrorNote error={create.error} />
        <button type="submit" disabled={create.isPending}>
          Create role
        </button>
      </form>
    </section>
  );
}
