// The console's session. The access token lives in memory only; the refresh
// token is an HttpOnly cookie the gateway sets for its console routes (the
// browser sends it; no script here can read it). A reload, or a second tab,
// gets a new access token from that cookie.
import {
  createContext,
  useCallback,
  useContext,
  useEffect,
  useMemo,
  useRef,
  useState,
  type ReactNode,
} from "react";
import { ApiProblem, createApi, type Api } from "../api/client";

const CONSOLE_HEADER = { "X-AgentHQ-Console": "1" };
const RENEW_BEFORE_SECONDS = 30;
const RETRY_SECONDS = 3;

type Status = "loading" | "signed-in" | "signed-out";

interface Session {
  status: Status;
  api: Api;
  signIn(email: string, password: string): Promise<void>;
  signOut(options?: { everywhere?: boolean }): Promise<void>;
  accessToken(): string | null;
  renew(): Promise<boolean>;
}

const SessionContext = createContext<Session | null>(null);

interface Tokens {
  access_token: string;
  expires_in: number;
}

export function SessionProvider({ children }: { children: ReactNode }) {
  const [status, setStatus] = useState<Status>("loading");
  const token = useRef<string | null>(null);
  const timer = useRef<ReturnType<typeof setTimeout> | undefined>(undefined);
  const renewing = useRef<Promise<boolean> | null>(null);
  // Bumped by sign-in and sign-out: a renewal that was in flight then must
  // not undo them when it answers.
  const generation = useRef(0);

  const adopt = useCallback((tokens: Tokens | null) => {
    clearTimeout(timer.current);
    token.current = tokens?.access_token ?? null;
    setStatus(tokens ? "signed-in" : "signed-out");
    if (tokens) {
      const delay = Math.max(tokens.expires_in - RENEW_BEFORE_SECONDS, 5) * 1000;
      timer.current = setTimeout(() => void renewRef.current(), delay);
    }
  }, []);

  // One renewal at a time: a burst of 401s shares it (the cookie rotates, and
  // a second use of a spent one would end the session).
  const renew = useCallback((): Promise<boolean> => {
    renewing.current ??= (async () => {
      const started = generation.current;
      let response: Response | null = null;
      try {
        response = await fetch("/v1/auth/console/refresh", {
          method: "POST",
          headers: CONSOLE_HEADER,
          credentials: "same-origin",
        });
        const tokens = response.ok ? ((await response.json()) as Tokens) : null;
        if (generation.current !== started) return token.current !== null;
        if (tokens) {
          adopt(tokens);
          return true;
        }
      } catch {
        response = null; // offline, or the answer was cut
      } finally {
        renewing.current = null;
      }
      if (response?.status === 401) {
        adopt(null); // the session is over (expired, revoked, signed out elsewhere)
        return false;
      }
      // The gateway is away (5xx, 429, offline): keep what we have and try
      // again shortly; the first load keeps waiting rather than sign out.
      clearTimeout(timer.current);
      timer.current = setTimeout(() => void renewRef.current(), RETRY_SECONDS * 1000);
      return false;
    })();
    return renewing.current;
  }, [adopt]);
  const renewRef = useRef(renew);
  renewRef.current = renew;

  const api = useMemo(
    () => createApi({ accessToken: () => token.current, renew: () => renewRef.current() }),
    [],
  );

  useEffect(() => {
    void renew();
    return () => clearTimeout(timer.current);
  }, [renew]);

  const signIn = useCallback(
    async (email: string, password: string) => {
      const response = await fetch("/v1/auth/console/login", {
        method: "POST",
        headers: { "Content-Type": "application/json" },
        credentials: "same-origin",
        body: JSON.stringify({ email, password }),
      });
      const body = await response.json().catch(() => undefined);
      if (!response.ok) throw new ApiProblem(response.status, body);
      generation.current += 1;
      adopt(body as Tokens);
    },
    [adopt],
  );

  const signOut = useCallback(
    async ({ everywhere = false } = {}) => {
      generation.current += 1;
      try {
        if (everywhere && token.current) {
          await fetch("/v1/auth/logout-everywhere", {
            method: "POST",
            headers: { Authorization: `Bearer ${token.current}` },
          });
        }
        await fetch("/v1/auth/console/logout", {
          method: "POST",
          headers: CONSOLE_HEADER,
          credentials: "same-origin",
        });
      } finally {
        adopt(null);
      }
    },
    [adopt],
  );

  const accessToken = useCallback(() => token.current, []);
  const value = useMemo(
    () => ({ status, api, signIn, signOut, accessToken, renew }),
    [status, api, signIn, signOut, accessToken, renew],
  );
  return <SessionContext.Provider value={value}>{children}</SessionContext.Provider>;
}

export function useSession(): Session {
  const session = useContext(SessionContext);
  if (!session) throw new Error("useSession outside SessionProvider");
  return session;
}
