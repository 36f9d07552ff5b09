import { useQuery, useQueryClient } from "@tanstack/react-query";
import { useEffect, useState } from "react";
import { useSession } from "../auth/session";
import { openTeamChannel } from "./channel";

/** Where the realtime sockets are (the gateway tells the console). */
function useRealtimeUrl() {
  return useQuery({
    queryKey: ["console-config"],
    queryFn: async () => {
      const response = await fetch("/console-config.json");
      if (!response.ok) throw new Error("The console's configuration is unavailable");
      return ((await response.json()) as { realtime_url: string }).realtime_url;
    },
    staleTime: Infinity,
  });
}

/** Keeps the team's channel open while its pages are shown; says whether it is live. */
export function TeamChannel({ teamId }: { teamId: string }) {
  const session = useSession();
  const queryClient = useQueryClient();
  const url = useRealtimeUrl();
  const [status, setStatus] = useState<"connecting" | "live" | "closed">("connecting");

  useEffect(() => {
    if (!url.data || session.status !== "signed-in") return;
    return openTeamChannel({
      url: url.data,
      teamId,
      token: session.accessToken,
      renew: session.renew,
      queryClient,
      onStatus: setStatus,
    });
  }, [url.data, teamId, session.status, session.accessToken, session.renew, queryClient]);

  return (
    <span className={`live live-${status}`} role="status" aria-label={`Live updates: ${status}`}>
      {status === "live" ? "● live" : status === "connecting" ? "○ connecting" : "○ offline"}
    </span>
  );
}
