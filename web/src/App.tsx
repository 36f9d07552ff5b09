import { QueryClient, QueryClientProvider } from "@tanstack/react-query";
import { lazy, Suspense } from "react";
import {
  createBrowserRouter,
  Navigate,
  NavLink,
  Outlet,
  RouterProvider,
  useLocation,
  useNavigate,
  useParams,
} from "react-router-dom";
import { ApiProblem } from "./api/client";
import { SessionProvider, useSession } from "./auth/session";
import { Loading } from "./components/ui";
import { AcceptInvitation } from "./pages/AcceptInvitation";
import { Activity } from "./pages/Activity";
import { Members } from "./pages/Members";
import { Roles } from "./pages/Roles";
import { Settings } from "./pages/Settings";
import { SignIn } from "./pages/SignIn";
import { SignUp } from "./pages/SignUp";
import { Teams, useMe } from "./pages/Teams";
import { Workspaces } from "./pages/Workspaces";
import { TeamChannel } from "./realtime/TeamChannel";

// Loaded when first opened: the charts are most of the console's weight.
const Usage = lazy(() => import("./pages/Usage"));

function newQueryClient() {
  return new QueryClient({
    defaultOptions: {
      queries: {
        // A 4xx will not change by asking again; a network error might.
        retry: (count, error) => !(error instanceof ApiProblem && error.status < 500) && count < 2,
        refetchOnWindowFocus: false,
      },
    },
  });
}

/** Pages that need a session: wait for it, or send the visitor to sign in. */
function SignedIn() {
  const session = useSession();
  const location = useLocation();
  if (session.status === "loading") return <Loading what="your session" />;
  if (session.status === "signed-out") {
    return <Navigate to="/sign-in" replace state={{ next: location.pathname }} />;
  }
  return <Shell />;
}

function Shell() {
  const session = useSession();
  const navigate = useNavigate();
  const { teamId } = useParams();
  const me = useMe();
  return (
    <div className="shell">
      <header>
        <nav aria-label="Main">
          <NavLink to="/teams">Teams</NavLink>
          {teamId && <NavLink to={`/teams/${teamId}/workspaces`}>Workspaces</NavLink>}
          {teamId && <NavLink to={`/teams/${teamId}/members`}>Members</NavLink>}
          {teamId && <NavLink to={`/teams/${teamId}/activity`}>Activity</NavLink>}
          {teamId && <NavLink to={`/teams/${teamId}/usage`}>Usage</NavLink>}
          {teamId && <NavLink to={`/teams/${teamId}/roles`}>Roles</NavLink>}
          {teamId && <NavLink to={`/teams/${teamId}/settings`}>Settings</NavLink>}
        </nav>
        {me.data && me.data.teams.length > 0 && (
          <label className="team-switch">
            Team{" "}
            <select
              value={teamId ?? ""}
              onChange={(e) => navigate(`/teams/${e.target.value}/workspaces`)}
            >
              {!teamId && <option value="">Choose a team</option>}
              {me.data.teams.map((team) => (
                <option key={team.id} value={team.id}>
                  {team.name ?? team.id}
                </option>
              ))}
            </select>
          </label>
        )}
        {teamId && <TeamChannel key={teamId} teamId={teamId} />}
        <span className="who">{me.data?.name}</span>
        <button onClick={() => void session.signOut()}>Sign out</button>
        <button onClick={() => void session.signOut({ everywhere: true })}>
          Sign out everywhere
        </button>
      </header>
      <Outlet />
    </div>
  );
}

function NotFound() {
  return (
    <main>
      <h1>Page not found</h1>
      <p>
        <NavLink to="/teams">Back to your teams</NavLink>
      </p>
    </main>
  );
}

export const routes = [
  { path: "/sign-in", element: <SignIn /> },
  { path: "/sign-up", element: <SignUp /> },
  { path: "/invite/:token", element: <AcceptInvitation /> },
  {
    element: <SignedIn />,
    children: [
      { path: "/", element: <Navigate to="/teams" replace /> },
      { path: "/teams", element: <Teams /> },
      { path: "/teams/:teamId/workspaces", element: <Workspaces /> },
      { path: "/teams/:teamId/members", element: <Members /> },
      { path: "/teams/:teamId/activity", element: <Activity /> },
      { path: "/teams/:teamId/roles", element: <Roles /> },
      { path: "/teams/:teamId/settings", element: <Settings /> },
      {
        path: "/teams/:teamId/usage",
        element: (
          <Suspense fallback={<Loading what="usage" />}>
            <Usage />
          </Suspense>
        ),
      },
      { path: "*", element: <NotFound /> },
    ],
  },
];

export function App() {
  const router = createBrowserRouter(routes);
  return (
    <QueryClientProvider client={newQueryClient()}>
      <SessionProvider>
        <RouterProvider router={router} />
      </SessionProvider>
    </QueryClientProvider>
  );
}
