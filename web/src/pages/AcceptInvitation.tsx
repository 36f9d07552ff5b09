import { useMutation, useQueryClient } from "@tanstack/react-query";
import { Link, useNavigate, useParams } from "react-router-dom";
import { unwrap } from "../api/client";
import { useSession } from "../auth/session";
import { ErrorNote, Loading } from "../components/ui";
import { rememberTeam } from "./Teams";

/** `/invite/<token>`: sign in (or up) first if needed, then join the team. */
export function AcceptInvitation() {
  const { token = "" } = useParams();
  const session = useSession();
  const navigate = useNavigate();
  const queryClient = useQueryClient();
  const accept = useMutation({
    mutationFn: () => unwrap(session.api.POST("/v1/invitations/accept", { body: { token } })),
    onSuccess: (member) => {
      rememberTeam(queryClient, { id: member.team_id, name: null, role: member.role });
      navigate(`/teams/${member.team_id}/workspaces`);
    },
  });

  if (session.status === "loading") return <Loading what="your session" />;
  const back = { next: `/invite/${token}` };
  return (
    <main className="auth">
      <h1>You are invited to a team</h1>
      {session.status === "signed-out" ? (
        <p>
          <Link to="/sign-in" state={back}>
            Sign in
          </Link>{" "}
          or{" "}
          <Link to="/sign-up" state={back}>
            create an account
          </Link>{" "}
          with the email address the invitation was sent to, then accept it.
        </p>
      ) : (
        <>
          <ErrorNote error={accept.error} />
          <button onClick={() => accept.mutate()} disabled={accept.isPending}>
            {accept.isPending ? "Joining…" : "Accept the invitation"}
          </button>
        </>
      )}
    </main>
  );
}
