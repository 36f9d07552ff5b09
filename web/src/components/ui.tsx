// Small building blocks every page shares: labelled fields, the states of a
// query (loading, empty, error) and an error shown next to what caused it.
import { useId, type InputHTMLAttributes, type ReactNode } from "react";
import { ApiProblem } from "../api/client";

export function Field({
  label,
  error,
  ...input
}: { label: string; error?: string } & InputHTMLAttributes<HTMLInputElement>) {
  const id = useId();
  const errorId = `${id}-error`;
  return (
    <div className="field">
      <label htmlFor={id}>{label}</label>
      <input
        id={id}
        aria-invalid={error ? true : undefined}
        aria-describedby={error ? errorId : undefined}
        {...input}
      />
      {error && (
        <span id={errorId} className="field-error">
          {error}
        </span>
      )}
    </div>
  );
}

/** An error as a person should read it, next to the action that caused it. */
export function ErrorNote({ error }: { error: unknown }) {
  if (!error) return null;
  const message =
    error instanceof ApiProblem
      ? plainWords(error)
      : error instanceof Error
        ? error.message
        : "Something went wrong";
  return (
    <p role="alert" className="error">
      {message}
    </p>
  );
}

const PLAIN: Record<string, string> = {
  invalid_credentials: "That email and password do not match an account.",
  member_limit_exceeded: "The team has more members than that plan allows.",
  rate_limited: "Too many attempts. Wait a moment and try again.",
  forbidden: "Your role does not allow this.",
};

export function plainWords(problem: ApiProblem): string {
  if (problem.status === 422 && Array.isArray(problem.details) && problem.details.length) {
    return problem.details
      .map((d: { field?: unknown; message?: unknown }) =>
        d.field ? `${String(d.field).split(".").pop()}: ${String(d.message)}` : String(d.message),
      )
      .join("; ");
  }
  return PLAIN[problem.code] ?? problem.message;
}

export function Loading({ what }: { what: string }) {
  return (
    <p role="status" aria-live="polite">
      Loading {what}…
    </p>
  );
}

export function Empty({ children }: { children: ReactNode }) {
  return <p className="empty">{children}</p>;
}
