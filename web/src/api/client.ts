// The typed API client: openapi-fetch over the types generated from the
// gateway's merged OpenAPI document (`make web-types`), so a request or a
// field the API does not have fails to compile.
import createClient from "openapi-fetch";
import type { components, paths } from "./schema";

export type Schemas = components["schemas"];
export type ErrorBody = Schemas["ErrorResponse"];

/** An error answer of the API, in the contract's shape. */
export class ApiProblem extends Error {
  readonly status: number;
  readonly code: string;
  readonly details: unknown;

  constructor(status: number, body: unknown) {
    const error = (body as Partial<ErrorBody> | undefined)?.error;
    super(error?.message ?? `The server answered ${status}`);
    this.status = status;
    this.code = error?.code ?? "unknown_error";
    this.details = error?.details;
  }

  /** The message for one field of a 422, if the API named it. */
  fieldMessage(field: string): string | undefined {
    if (!Array.isArray(this.details)) return undefined;
    const found = this.details.find(
      (d: { field?: unknown }) => String(d?.field ?? "").split(".").pop() === field,
    ) as { message?: string } | undefined;
    return found?.message;
  }
}

/** Where requests get their access token, and how a stale one is renewed. */
export interface TokenSource {
  accessToken(): string | null;
  /** Renew the access token; false when the session is over. */
  renew(): Promise<boolean>;
}

export function createApi(tokens: TokenSource, baseUrl = globalThis.location?.origin ?? "") {
  const authorized = async (input: Request): Promise<Response> => {
    const attempt = (request: Request) => {
      const token = tokens.accessToken();
      if (token) request.headers.set("Authorization", `Bearer ${token}`);
      return globalThis.fetch(request);
    };
    const retry = input.clone();
    const response = await attempt(input);
    // An access token expires every few minutes: renew it once and replay.
    if (response.status === 401 && tokens.accessToken() && (await tokens.renew())) {
      return attempt(retry);
    }
    return response;
  };
  return createClient<paths>({ baseUrl, fetch: authorized });
}

export type Api = ReturnType<typeof createApi>;

/** The data of an openapi-fetch result, or its error as an ApiProblem. */
export async function unwrap<T>(
  call: Promise<{ data?: T; error?: unknown; response: Response }>,
): Promise<T> {
  const { data, error, response } = await call;
  if (!response.ok) throw new ApiProblem(response.status, error);
  return data as T;
}
