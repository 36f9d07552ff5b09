// What the caller may do in a team, so that the console hides or disables
// what the role does not allow (the API refuses it anyway: 403).
import { useQuery } from "@tanstack/react-query";
import { unwrap } from "../api/client";
import { useMe } from "../pages/Teams";
import { useSession } from "./session";

export interface Permissions {
  role: string | undefined;
  can(permission: string): boolean;
  ready: boolean;
}

export function usePermissions(teamId: string): Permissions {
  const { api } = useSession();
  const me = useMe(teamId);
  const role = me.data?.teams.find((team) => team.id === teamId)?.role;
  const roles = useQuery({
    queryKey: ["roles", teamId],
    queryFn: () =>
      unwrap(
        api.GET("/v1/teams/{team_id}/roles", {
          params: { path: { team_id: teamId }, query: { limit: 200 } },
        }),
      ),
    enabled: role !== undefined,
    staleTime: 30_000,
  });
  const granted = new Set(roles.data?.items.find((r) => r.name === role)?.permissions ?? []);
  return {
    role,
    ready: roles.isSuccess,
    can: (permission) => granted.has(permission),
  };
}
