// Members, activity, settings and roles against the stubbed gateway.
import { screen, waitFor, within } from "@testing-library/react";
import userEvent from "@testing-library/user-event";
import { afterEach, beforeEach, expect, test, vi } from "vitest";
import { BUILT_IN, FakeApi, json, open } from "../test/fakeApi";

let api: FakeApi;
beforeEach(() => {
  api = new FakeApi().install();
});
afterEach(() => vi.unstubAllGlobals());

const team = {
  id: "t1",
  name: "Analytical",
  owner_id: "u1",
  plan: "pro",
  max_members: 50,
  member_count: 2,
  created_at: "2026-11-25T00:00:00Z",
  updated_at: "2026-11-25T00:00:00Z",
};
const member = (user_id: string, name: string, role: string) => ({
  team_id: "t1",
  user_id,
  email: `${name.toLowerCase()}@example.com`,
  name,
  role,
  joined_at: "2026-11-25T00:00:00Z",
});

function withTeam(role = "admin") {
  api.signedIn(role);
  api.handlers["GET /v1/teams/t1"] = () => json(200, team);
  api.handlers["GET /v1/teams/t1/members"] = () =>
    json(200, { items: [member("u1", "Ada", "admin"), member("u2", "Grace", "member")], next_cursor: null });
  api.handlers["GET /v1/teams/t1/presence"] = () =>
    json(200, [{ user_id: "u2", connections: 2, since: "2026-11-25T00:00:00Z" }]);
  api.handlers["GET /v1/teams/t1/invitations"] = () => json(200, { items: [], next_cursor: null });
}

test("members: the owner cannot be changed; an invitation's link is shown once", async () => {
  withTeam();
  api.handlers["POST /v1/teams/t1/invitations"] = () =>
    json(201, {
      id: "i1",
      team_id: "t1",
      email: "new@example.com",
      role: "member",
      invited_by: "u1",
      created_at: "2026-11-25T00:00:00Z",
      expires_at: "2026-12-02T00:00:00Z",
      status: "pending",
      token: "secret-token",
    });
  open("/teams/t1/members");
  const list = await screen.findByRole("list", { name: "Members" });
  const ada = within(list).getByText(/Ada/).closest("li")!;
  await waitFor(() => expect(within(ada).getByText("owner")).toBeInTheDocument());
  expect(within(ada).queryByRole("combobox")).toBeNull();
  expect(within(ada).queryByRole("button")).toBeNull(); // the owner may not leave
  expect(await screen.findByLabelText("Role of Grace")).toHaveValue("member");
  expect(await screen.findByRole("list", { name: "Online now" })).toHaveTextContent(
    "Grace (2 tabs or devices)",
  );
  await userEvent.type(screen.getByLabelText("Email to invite"), "new@example.com");
  await userEvent.click(screen.getByRole("button", { name: "Invite" }));
  expect(await screen.findByLabelText("Invitation link")).toHaveValue(
    `${window.location.origin}/invite/secret-token`,
  );
  const sent = await api.requests("POST", "/v1/teams/t1/invitations")[0].json();
  expect(sent).toEqual({ email: "new@example.com", role: "member" });
});

test("activity: filters become the query, a broken chain is said plainly", async () => {
  withTeam();
  api.handlers["GET /v1/teams/t1/activity"] = () =>
    json(200, {
      items: [
        {
          id: "a1",
          team_id: "t1",
          user_id: "u2",
          action: "workspace.created",
          resource_type: "workspace",
          resource_id: "w1",
          metadata: null,
          ip_address: "10.0.0.1",
          user_agent: null,
          created_at: "2026-11-25T10:00:00Z",
        },
      ],
      next_cursor: null,
    });
  api.handlers["GET /v1/teams/t1/activity/verify"] = () =>
    json(200, { valid: false, checked: 12, first_invalid_id: "a7", reason: "hash mismatch" });
  open("/teams/t1/activity");
  const table = await screen.findByRole("table", { name: "Activity" });
  await waitFor(() => expect(table).toHaveTextContent("Grace"));
  expect(await screen.findByText(/Tamper check FAILED at record a7: hash mismatch/)).toBeInTheDocument();
  await userEvent.type(screen.getByLabelText("Action or prefix"), "workspace.");
  await userEvent.type(screen.getByLabelText("Search"), '"quarterly report"');
  await userEvent.click(screen.getByRole("button", { name: "Apply filters" }));
  await waitFor(() => expect(api.requests("GET", "/v1/teams/t1/activity")).toHaveLength(2));
  const query = new URL(api.requests("GET", "/v1/teams/t1/activity")[1].url).searchParams;
  expect(query.get("action")).toBe("workspace.");
  expect(query.get("q")).toBe('"quarterly report"');
  expect(query.get("limit")).toBe("100");
});

test("settings: delete needs the exact name; a plan too small is said in plain words", async () => {
  withTeam();
  api.handlers["GET /v1/plans"] = () =>
    json(200, {
      items: [
        { id: "free", name: "Free", currency: "USD", monthly_price: 0, metrics: [] },
        { id: "pro", name: "Pro", currency: "USD", monthly_price: 4900, metrics: [] },
      ],
      next_cursor: null,
      version: 1,
    });
  api.handlers["PUT /v1/teams/t1/plan"] = () =>
    json(409, {
      error: {
        code: "member_limit_exceeded",
        message: "free allows 5 members",
        details: { plan: "free", max_members: 5, taken: 6 },
      },
    });
  open("/teams/t1/settings");
  const remove = await screen.findByRole("button", { name: "Delete this team" });
  expect(remove).toBeDisabled();
  const confirm = screen.getByLabelText("Type the team's name (Analytical) to confirm");
  await userEvent.type(confirm, "analytical");
  expect(remove).toBeDisabled();
  await userEvent.clear(confirm);
  await userEvent.type(confirm, "Analytical");
  expect(remove).toBeEnabled();
  await userEvent.selectOptions(await screen.findByRole("combobox", { name: "Plan" }), "free");
  await userEvent.click(screen.getByRole("button", { name: "Change plan" }));
  const form = screen.getByRole("form", { name: "Change the plan" });
  expect(await within(form).findByRole("alert")).toHaveTextContent(
    "The team has more members than that plan allows.",
  );
});

test("roles: built-in roles are read-only; a custom role's matrix saves what is ticked", async () => {
  api.signedIn("admin", { ...BUILT_IN, auditor: ["activity:read"] });
  api.handlers["GET /v1/permissions"] = () =>
    json(200, {
      resources: {
        activity: ["create", "read", "update", "delete"],
        workspace: ["create", "read", "update", "delete"],
      },
    });
  api.handlers["PATCH /v1/teams/t1/roles/auditor"] = async (request) =>
    json(200, { name: "auditor", built_in: false, permissions: (await request.json()).permissions });
  open("/teams/t1/roles");
  expect(await screen.findByLabelText("viewer: workspace:read")).toBeDisabled();
  expect(screen.getByLabelText("auditor: activity:read")).toBeChecked();
  await userEvent.click(screen.getByLabelText("auditor: workspace:read"));
  await userEvent.click(screen.getByRole("button", { name: "Save auditor" }));
  await waitFor(() => expect(api.requests("PATCH", "/v1/teams/t1/roles/auditor")).toHaveLength(1));
  const body = await api.requests("PATCH", "/v1/teams/t1/roles/auditor")[0].json();
  expect(body).toEqual({ permissions: ["activity:read", "workspace:read"] });
  expect(screen.queryByRole("button", { name: "Save viewer" })).toBeNull();
});
