// Component tests: each page against a stubbed fetch that answers as the
// gateway does (the contract's shapes). The real gateway is exercised by the
// browser tests in tests/e2e/test_console.py.
import { screen, waitFor } from "@testing-library/react";
import userEvent from "@testing-library/user-event";
import { afterEach, beforeEach, expect, test, vi } from "vitest";
import { FakeApi, json, open, type Handler } from "../test/fakeApi";

let api: FakeApi;
let handlers: Record<string, Handler>;
let seen: Request[];

beforeEach(() => {
  api = new FakeApi().install();
  handlers = api.handlers;
  seen = api.seen;
});

afterEach(() => vi.unstubAllGlobals());

function signedIn(role = "member") {
  api.signedIn(role);
}

test("a visitor without a session is sent to sign in, and wrong credentials are explained", async () => {
  handlers["POST /v1/auth/console/login"] = () =>
    json(401, { error: { code: "invalid_credentials", message: "Email or password is wrong" } });
  const router = open("/teams");
  await screen.findByRole("heading", { name: "Sign in to AgentHQ" });
  expect(router.state.location.pathname).toBe("/sign-in");
  await userEvent.type(screen.getByLabelText("Email"), "ada@example.com");
  await userEvent.type(screen.getByLabelText("Password"), "wrong-password");
  await userEvent.click(screen.getByRole("button", { name: "Sign in" }));
  expect(await screen.findByRole("alert")).toHaveTextContent(
    "That email and password do not match an account.",
  );
});

test("signing in lands on the page asked for, with the token in memory only", async () => {
  handlers["POST /v1/auth/console/login"] = () =>
    json(200, { access_token: "token-1", token_type: "bearer", expires_in: 900 });
  handlers["GET /v1/me"] = () =>
    json(200, { id: "u1", email: "a@b.c", name: "Ada", created_at: "2026-11-25T00:00:00Z", teams: [] });
  handlers["GET /v1/plans"] = () => json(200, { items: [], next_cursor: null, version: 1 });
  const router = open("/teams");
  await userEvent.type(await screen.findByLabelText("Email"), "a@b.c");
  await userEvent.type(screen.getByLabelText("Password"), "correct-horse");
  await userEvent.click(screen.getByRole("button", { name: "Sign in" }));
  await screen.findByText(/You are in no team yet/);
  expect(router.state.location.pathname).toBe("/teams");
  const me = seen.find((r) => new URL(r.url).pathname === "/v1/me");
  expect(me?.headers.get("Authorization")).toBe("Bearer token-1");
  expect(window.localStorage.length).toBe(0);
  expect(window.sessionStorage.length).toBe(0);
});

test("sign-up errors from the API are shown next to their field", async () => {
  handlers["POST /v1/auth/register"] = () =>
    json(422, {
      error: {
        code: "validation_error",
        message: "Invalid request",
        details: [{ field: "body.password", message: "String should have at least 10 characters" }],
      },
    });
  open("/sign-up");
  await userEvent.type(await screen.findByLabelText("Name"), "Ada");
  await userEvent.type(screen.getByLabelText("Email"), "ada@example.com");
  await userEvent.type(screen.getByLabelText("Password"), "0123456789");
  await userEvent.click(screen.getByRole("button", { name: "Create account" }));
  const password = screen.getByLabelText("Password");
  await waitFor(() => expect(password).toHaveAttribute("aria-invalid", "true"));
  expect(password).toHaveAccessibleDescription("String should have at least 10 characters");
});

test("workspaces: list, empty search, archived toggle and load more by cursor", async () => {
  signedIn();
  const page = (names: string[], next: string | null) =>
    json(200, {
      items: names.map((name, i) => ({
        id: `w-${name}`,
        team_id: "t1",
        name,
        description: i === 0 ? "first" : null,
        created_by: "u1",
        created_at: "2026-11-25T00:00:00Z",
        updated_at: "2026-11-25T00:00:00Z",
        archived_at: name === "Old" ? "2026-11-25T00:00:00Z" : null,
      })),
      next_cursor: next,
    });
  handlers["GET /v1/teams/t1/workspaces"] = (request) => {
    const query = new URL(request.url).searchParams;
    if (query.get("q") === "zzz") return page([], null);
    if (query.get("include_archived") === "true") return page(["Alpha", "Old"], null);
    return query.get("cursor") === "c2" ? page(["Gamma"], null) : page(["Alpha", "Beta"], "c2");
  };
  open("/teams/t1/workspaces");
  const list = await screen.findByRole("list", { name: "Workspaces" });
  expect(list).toHaveTextContent("Alpha");
  expect(list).toHaveTextContent("Beta");
  await userEvent.click(screen.getByRole("button", { name: "Load more" }));
  await waitFor(() => expect(screen.getByRole("list", { name: "Workspaces" })).toHaveTextContent("Gamma"));
  expect(screen.queryByRole("button", { name: "Load more" })).toBeNull();
  await userEvent.click(screen.getByLabelText("Show archived"));
  await screen.findByText("archived");
  await userEvent.type(screen.getByLabelText("Search workspaces"), "zzz");
  await screen.findByText("No workspace matches “zzz”.");
});

test("a 403 on an action is shown next to it, not as a blank page", async () => {
  signedIn();
  handlers["GET /v1/teams/t1/workspaces"] = () => json(200, { items: [], next_cursor: null });
  handlers["POST /v1/teams/t1/workspaces"] = () =>
    json(403, { error: { code: "forbidden", message: "Missing permission workspace:create" } });
  open("/teams/t1/workspaces");
  await screen.findByText(/No workspaces yet/);
  await userEvent.type(await screen.findByLabelText("Workspace name"), "Nope");
  await userEvent.click(screen.getByRole("button", { name: "Create workspace" }));
  expect(await screen.findByRole("alert")).toHaveTextContent("Your role does not allow this.");
  expect(screen.getByRole("heading", { name: "Workspaces" })).toBeInTheDocument();
});

test("a viewer sees the workspaces but no control to change them", async () => {
  signedIn("viewer");
  handlers["GET /v1/teams/t1/workspaces"] = () =>
    json(200, {
      items: [
        {
          id: "w1",
          team_id: "t1",
          name: "Alpha",
          description: null,
          created_by: "u1",
          created_at: "2026-11-25T00:00:00Z",
          updated_at: "2026-11-25T00:00:00Z",
          archived_at: null,
        },
      ],
      next_cursor: null,
    });
  open("/teams/t1/workspaces");
  await screen.findByText("Alpha");
  await waitFor(() => expect(seen.some((r) => new URL(r.url).pathname === "/v1/teams/t1/roles")).toBe(true));
  expect(screen.queryByRole("form", { name: "New workspace" })).toBeNull();
  expect(screen.queryByRole("button", { name: "Archive Alpha" })).toBeNull();
});

test("a gateway that is away does not sign anyone out: the session is retried", async () => {
  vi.useFakeTimers({ shouldAdvanceTime: true });
  try {
    let calls = 0;
    handlers["POST /v1/auth/console/refresh"] = () => {
      calls += 1;
      return calls === 1
        ? json(503, { error: { code: "service_unavailable", message: "down" } })
        : json(200, { access_token: "token-2", token_type: "bearer", expires_in: 900 });
    };
    handlers["GET /v1/me"] = () =>
      json(200, { id: "u1", email: "a@b.c", name: "Ada", created_at: "2026-11-25T00:00:00Z", teams: [] });
    handlers["GET /v1/plans"] = () => json(200, { items: [], next_cursor: null, version: 1 });
    const router = open("/teams");
    await screen.findByText("Loading your session…");
    await vi.advanceTimersByTimeAsync(3500);
    await screen.findByText(/You are in no team yet/);
    expect(router.state.location.pathname).toBe("/teams");
    expect(calls).toBe(2);
  } finally {
    vi.useRealTimers();
  }
});
