// A stubbed fetch that answers as the gateway does (the contract's shapes),
// and a way to open any route of the console against it.
import { QueryClient, QueryClientProvider } from "@tanstack/react-query";
import { render } from "@testing-library/react";
import { createMemoryRouter, RouterProvider } from "react-router-dom";
import { vi } from "vitest";
import { routes } from "../App";
import { SessionProvider } from "../auth/session";

export type Handler = (request: Request) => Response | Promise<Response>;

export function json(status: number, body: unknown): Response {
  return new Response(JSON.stringify(body), {
    status,
    headers: { "Content-Type": "application/json" },
  });
}

export class FakeApi {
  handlers: Record<string, Handler> = {
    "POST /v1/auth/console/refresh": () =>
      json(401, { error: { code: "invalid_refresh_token", message: "No console session" } }),
  };
  seen: Request[] = [];

  install() {
    vi.stubGlobal("fetch", async (input: RequestInfo | URL, init?: RequestInit) => {
      const request =
        input instanceof Request ? input : new Request(new URL(String(input), "http://console.test"), init);
      this.seen.push(request.clone());
      const path = new URL(request.url, "http://console.test").pathname;
      const handler = this.handlers[`${request.method} ${path}`];
      return handler ? handler(request) : json(404, { error: { code: "not_found", message: path } });
    });
    return this;
  }

  requests(method: string, path: string): Request[] {
    return this.seen.filter((r) => r.method === method && new URL(r.url).pathname === path);
  }

  /** Signed in as u1 ("Ada"), in team t1 with ``role``; roles as the built-ins. */
  signedIn(role = "member", permissions: Record<string, string[]> = BUILT_IN) {
    this.handlers["POST /v1/auth/console/refresh"] = () =>
      json(200, { access_token: "token-1", token_type: "bearer", expires_in: 900 });
    this.handlers["GET /v1/me"] = () =>
      json(200, {
        id: "u1",
        email: "ada@example.com",
        name: "Ada",
        created_at: "2026-11-25T00:00:00Z",
        teams: [{ id: "t1", name: "Analytical", role }],
      });
    this.handlers["GET /v1/teams/t1/roles"] = () =>
      json(200, {
        items: Object.entries(permissions).map(([name, granted]) => ({
          name,
          built_in: name in BUILT_IN,
          permissions: granted,
        })),
        next_cursor: null,
      });
    return this;
  }
}

const ALL = ["team", "member", "role", "workspace", "activity", "usage", "billing"].flatMap((r) =>
  ["create", "read", "update", "delete"].map((a) => `${r}:${a}`),
);
const READ = ALL.filter((p) => p.endsWith(":read"));
export const BUILT_IN: Record<string, string[]> = {
  admin: ALL,
  member: [...READ, "workspace:create", "workspace:update"],
  viewer: READ,
};

export function open(path: string) {
  const router = createMemoryRouter(routes, { initialEntries: [path] });
  render(
    <QueryClientProvider client={new QueryClient({ defaultOptions: { queries: { retry: false } } })}>
      <SessionProvider>
        <RouterProvider router={router} />
      </SessionProvider>
    </QueryClientProvider>,
  );
  return router;
}
