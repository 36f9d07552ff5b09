import { useState, type FormEvent } from "react";
import { Link, Navigate, useLocation } from "react-router-dom";
import { ApiProblem, unwrap } from "../api/client";
import { useSession } from "../auth/session";
import { ErrorNote, Field } from "../components/ui";

export function SignUp() {
  const session = useSession();
  const location = useLocation();
  const [error, setError] = useState<unknown>(null);
  const [busy, setBusy] = useState(false);
  const next = (location.state as { next?: string } | null)?.next ?? "/teams";

  if (session.status === "signed-in") return <Navigate to={next} replace />;

  async function submit(event: FormEvent<HTMLFormElement>) {
    event.preventDefault();
    const form = new FormData(event.currentTarget);
    const email = String(form.get("email"));
    const password = String(form.get("password"));
    setBusy(true);
    setError(null);
    try {
      await unwrap(
        session.api.POST("/v1/auth/register", {
          body: { email, password, name: String(form.get("name")) },
        }),
      );
      await session.signIn(email, password);
    } catch (problem) {
      setError(problem);
    } finally {
      setBusy(false);
    }
  }

  const fieldError = (name: string) =>
    error instanceof ApiProblem ? error.fieldMessage(name) : undefined;

  return (
    <main className="auth">
      <h1>Create your AgentHQ account</h1>
      <form onSubmit={submit} aria-label="Sign up">
        <Field label="Name" name="name" autoComplete="name" required error={fieldError("name")} />
        <Field
          label="Email"
          name="email"
          type="email"
          autoComplete="email"
          required
          error={fieldError("email")}
        />
        <Field
          label="Password"
          name="password"
          type="password"
          autoComplete="new-password"
          minLength={10}
          required
          error={fieldError("password")}
        />
        <ErrorNote error={error} />
        <button type="submit" disabled={busy}>
          {busy ? "Creating…" : "Create account"}
        </button>
      </form>
      <p>
        Have an account? <Link to="/sign-in" state={location.state}>Sign in</Link>
      </p>
    </main>
  );
}
