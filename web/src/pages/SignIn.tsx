import { useState, type FormEvent } from "react";
import { Link, Navigate, useLocation } from "react-router-dom";
import { useSession } from "../auth/session";
import { ErrorNote, Field } from "../components/ui";

export function SignIn() {
  const session = useSession();
  const location = useLocation();
  const [error, setError] = useState<unknown>(null);
  const [busy, setBusy] = useState(false);
  const next = (location.state as { next?: string } | null)?.next ?? "/teams";

  if (session.status === "signed-in") return <Navigate to={next} replace />;

  async function submit(event: FormEvent<HTMLFormElement>) {
    event.preventDefault();
    const form = new FormData(event.currentTarget);
    setBusy(true);
    setError(null);
    try {
      await session.signIn(String(form.get("email")), String(form.get("password")));
    } catch (problem) {
      setError(problem);
    } finally {
      setBusy(false);
    }
  }

  return (
    <main className="auth">
      <h1>Sign in to AgentHQ</h1>
      <form onSubmit={submit} aria-label="Sign in">
        <Field label="Email" name="email" type="email" autoComplete="email" required />
        <Field
          label="Password"
          name="password"
          type="password"
          autoComplete="current-password"
          required
        />
        <ErrorNote error={error} />
        <button type="submit" disabled={busy}>
          {busy ? "Signing in…" : "Sign in"}
        </button>
      </form>
      <p>
        New here? <Link to="/sign-up" state={location.state}>Create an account</Link>
      </p>
    </main>
  );
}
