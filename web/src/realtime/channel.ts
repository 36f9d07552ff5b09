// One WebSocket per open team to the realtime service (REALTIME.md): every
// domain event of the team refreshes the lists it changes, so what another
// browser does appears here without a reload. After a disconnect the socket
// comes back with `since` (the last frame id seen), so nothing is missed; if
// the history no longer reaches that far, every list of the team is reloaded.
import type { QueryClient, QueryKey } from "@tanstack/react-query";

export interface Frame {
  id?: string;
  type: string;
  team_id?: string;
  user_id?: string | null;
  data?: Record<string, unknown>;
}

interface Me {
  id: string;
  teams: { id: string; name?: string | null; role: string }[];
}

/** The caller's own membership, changed by a frame (a role change, a removal). */
export function patchMe(me: Me | undefined, teamId: string, frame: Frame): Me | undefined {
  const data = frame.data ?? {};
  if (!me || data.user_id !== me.id) return me;
  if (frame.type === "member.role_changed" && typeof data.new_role === "string") {
    const role = data.new_role;
    return { ...me, teams: me.teams.map((t) => (t.id === teamId ? { ...t, role } : t)) };
  }
  if (frame.type === "member.removed") {
    return { ...me, teams: me.teams.filter((t) => t.id !== teamId) };
  }
  return me;
}

/** The cached queries a frame makes stale. */
export function staleQueries(teamId: string, frame: Frame): QueryKey[] {
  const [family] = frame.type.split(".");
  switch (family) {
    case "workspace":
      return [["workspaces", teamId]];
    case "member":
      // Not ["me"]: the gateway's copy of the membership may lag behind the
      // event; patchMe applies the change to it instead.
      return [["members", teamId], ["invitations", teamId], ["roles", teamId], ["team", teamId]];
    case "invitation":
      return [["members", teamId], ["invitations", teamId]];
    case "role":
      return [["roles", teamId], ["members", teamId]];
    case "team":
      return [["team", teamId], ["me"]];
    case "presence":
      return [["presence", teamId]];
    case "activity":
      return [["activity", teamId]];
    case "usage":
    case "invoice":
      return [["usage", teamId], ["quotas", teamId], ["invoices", teamId]];
    default:
      return [];
  }
}

export interface ChannelOptions {
  url: string; // ws://host:port
  teamId: string;
  token: () => string | null;
  renew: () => Promise<boolean>;
  queryClient: QueryClient;
  onStatus?: (status: "connecting" | "live" | "closed") => void;
  WebSocketImpl?: typeof WebSocket;
}

const RETRY_MS = [500, 1000, 2000, 5000, 10000];
const NOT_A_MEMBER = 1008;
const TOKEN_INVALID = 4401;

/** Opens the team's channel and keeps it open until the returned function is called. */
export function openTeamChannel(options: ChannelOptions): () => void {
  const { url, teamId, queryClient } = options;
  const Socket = options.WebSocketImpl ?? WebSocket;
  let socket: WebSocket | null = null;
  let lastId: string | null = null;
  let welcomeId: string | null = null;
  let attempt = 0;
  let stopped = false;
  let retry: ReturnType<typeof setTimeout> | undefined;

  const invalidate = (keys: QueryKey[]) => {
    for (const queryKey of keys) void queryClient.invalidateQueries({ queryKey });
  };

  const connect = () => {
    if (stopped) return;
    const token = options.token();
    if (!token) return;
    options.onStatus?.("connecting");
    socket = new Socket(`${url}/ws/teams/${teamId}`);
    // The token goes in the first frame, never in the URL (URLs end up in logs).
    socket.onopen = () =>
      socket?.send(JSON.stringify({ type: "auth", token, ...(lastId ? { since: lastId } : {}) }));
    socket.onmessage = (event) => {
      let frame: Frame;
      try {
        frame = JSON.parse(String(event.data)) as Frame;
      } catch {
        return;
      }
      if (frame.type === "welcome") {
        attempt = 0;
        options.onStatus?.("live");
        welcomeId = (frame as { last_id?: string }).last_id ?? null;
        if (!lastId) lastId = welcomeId;
        return;
      }
      if (frame.type === "resume.failed") {
        // Live from the welcome's id on; resuming from the old one would fail
        // again at every reconnect.
        lastId = welcomeId;
        // Too long away: what changed meanwhile is unknown, reload it all.
        void queryClient.invalidateQueries({
          predicate: (q) => q.queryKey[1] === teamId || q.queryKey[0] === "me",
        });
        return;
      }
      if (frame.id) lastId = frame.id;
      queryClient.setQueryData<Me>(["me"], (me) => patchMe(me, teamId, frame));
      invalidate(staleQueries(teamId, frame));
    };
    socket.onclose = (event) => {
      socket = null;
      options.onStatus?.("closed");
      if (stopped) return;
      if (event.code === NOT_A_MEMBER) {
        // Removed from the team, or it is gone: the team leaves the caller's list.
        queryClient.setQueryData<Me>(["me"], (me) =>
          me ? { ...me, teams: me.teams.filter((t) => t.id !== teamId) } : me,
        );
        return;
      }
      const wait = RETRY_MS[Math.min(attempt, RETRY_MS.length - 1)];
      attempt += 1;
      retry = setTimeout(async () => {
        if (event.code === TOKEN_INVALID && !(await options.renew())) return;
        connect();
      }, wait);
    };
  };

  connect();
  return () => {
    stopped = true;
    clearTimeout(retry);
    socket?.close(1000, "left the team's pages");
  };
}
