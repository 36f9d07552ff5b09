import { useInfiniteQuery, useMutation, useQuery } from "@tanstack/react-query";
import { useEffect, useRef, useState, type FormEvent } from "react";
import { useParams } from "react-router-dom";
import { ApiProblem, unwrap, type Schemas } from "../api/client";
import { useSession } from "../auth/session";
import { Empty, ErrorNote, Field, Loading } from "../components/ui";
import { useMembersByUser } from "./Members";

type Filters = {
  user_id?: string;
  action?: string;
  resource_type?: string;
  resource_id?: string;
  since?: string;
  until?: string;
  q?: string;
};
const PAGE = 100;

/** A datetime-local value (the browser's zone) as ISO 8601 with its offset. */
function toIso(local: string): string | undefined {
  if (!local) return undefined;
  const date = new Date(local);
  return Number.isNaN(date.getTime()) ? undefined : date.toISOString();
}

function readFilters(form: FormData): Filters {
  const text = (name: string) => String(form.get(name) ?? "").trim() || undefined;
  return {
    user_id: text("user_id"),
    action: text("action"),
    resource_type: text("resource_type"),
    resource_id: text("resource_id"),
    since: toIso(String(form.get("since") ?? "")),
    until: toIso(String(form.get("until") ?? "")),
    q: text("q"),
  };
}

export function Activity() {
  const { teamId = "" } = useParams();
  const { api } = useSession();
  const [filters, setFilters] = useState<Filters>({});
  const members = useMembersByUser(teamId);

  const log = useInfiniteQuery({
    queryKey: ["activity", teamId, filters],
    initialPageParam: undefined as string | undefined,
    queryFn: ({ pageParam }) =>
      unwrap(
        api.GET("/v1/teams/{team_id}/activity", {
          params: { path: { team_id: teamId }, query: { ...filters, limit: PAGE, cursor: pageParam } },
        }),
      ),
    getNextPageParam: (last) => last.next_cursor ?? undefined,
  });
  const items = log.data?.pages.flatMap((page) => page.items) ?? [];

  // Endless scroll: the next page loads when the end of the table comes into view.
  const end = useRef<HTMLDivElement>(null);
  const { hasNextPage, isFetchingNextPage, fetchNextPage } = log;
  useEffect(() => {
    const target = end.current;
    if (!target || typeof IntersectionObserver === "undefined") return;
    const observer = new IntersectionObserver((entries) => {
      if (entries.some((e) => e.isIntersecting) && hasNextPage && !isFetchingNextPage) {
        void fetchNextPage();
      }
    });
    observer.observe(target);
    return () => observer.disconnect();
  }, [hasNextPage, isFetchingNextPage, fetchNextPage]);

  function submit(event: FormEvent<HTMLFormElement>) {
    event.preventDefault();
    setFilters(readFilters(new FormData(event.currentTarget)));
  }

  return (
    <main className="wide">
      <h1>Activity log</h1>
      <ChainStatus teamId={teamId} />
      <form onSubmit={submit} aria-label="Filter the activity" className="filters">
        <div className="field">
          <label htmlFor="activity-user">Who</label>
          <select id="activity-user" name="user_id" defaultValue="">
            <option value="">Anyone</option>
            {[...members.entries()].map(([id, name]) => (
              <option key={id} value={id}>
                {name}
              </option>
            ))}
          </select>
        </div>
        <Field label="Action or prefix" name="action" placeholder="member. or workspace.created" />
        <Field label="Resource type" name="resource_type" placeholder="workspace" />
        <Field label="Resource id" name="resource_id" />
        <Field label="From" name="since" type="datetime-local" />
        <Field label="Until" name="until" type="datetime-local" />
        <Field label="Search" name="q" type="search" placeholder='words, "a phrase", -not' />
        <button type="submit">Apply filters</button>
      </form>
      <Exports teamId={teamId} filters={filters} />
      {log.isPending && <Loading what="the activity" />}
      <ErrorNote error={log.error} />
      {log.isSuccess && items.length === 0 && <Empty>No activity matches these filters.</Empty>}
      {items.length > 0 && (
        <table aria-label="Activity">
          <thead>
            <tr>
              <th scope="col">When</th>
              <th scope="col">Who</th>
              <th scope="col">Action</th>
              <th scope="col">Resource</th>
              <th scope="col">From</th>
            </tr>
          </thead>
          <tbody>
            {items.map((record) => (
              <Row key={record.id} record={record} who={members.get(record.user_id ?? "")} />
            ))}
          </tbody>
        </table>
      )}
      <div ref={end} aria-hidden="true" />
      {isFetchingNextPage && <Loading what="more" />}
      {hasNextPage && !isFetchingNextPage && (
        <button onClick={() => void fetchNextPage()}>Load more</button>
      )}
    </main>
  );
}

function Row({ record, who }: { record: Schemas["ActivityOut"]; who?: string }) {
  return (
    <tr>
      <td>
        <time dateTime={record.created_at}>{new Date(record.created_at).toLocaleString()}</time>
      </td>
      <td>{who ?? record.user_id ?? "system"}</td>
      <td>
        <code>{record.action}</code>
      </td>
      <td>{[record.resource_type, record.resource_id].filter(Boolean).join(" ")}</td>
      <td>{record.ip_address ?? ""}</td>
    </tr>
  );
}

function ChainStatus({ teamId }: { teamId: string }) {
  const { api } = useSession();
  const verify = useQuery({
    queryKey: ["activity-verify", teamId],
    queryFn: () =>
      unwrap(
        api.GET("/v1/teams/{team_id}/activity/verify", { params: { path: { team_id: teamId } } }),
      ),
    staleTime: 60_000,
  });
  if (verify.isPending) return <Loading what="the chain check" />;
  if (verify.error) return <ErrorNote error={verify.error} />;
  const result = verify.data;
  return (
    <p role="status" className={result.valid ? "chain-ok" : "chain-broken"}>
      {result.valid
        ? `Tamper check: the hash chain of all ${result.checked} records is intact.`
        : `Tamper check FAILED at record ${result.first_invalid_id}: ${result.reason ?? "mismatch"}.`}
    </p>
  );
}

function Exports({ teamId, filters }: { teamId: string; filters: Filters }) {
  const session = useSession();
  // A download needs the bearer token, so it goes through fetch, then a link
  // to the blob (a plain link cannot carry the header).
  const download = useMutation({
    mutationFn: async (format: "csv" | "ndjson") => {
      const query = new URLSearchParams({ format });
      for (const [key, value] of Object.entries(filters)) if (value) query.set(key, value);
      const url = `/v1/teams/${teamId}/activity/export?${query}`;
      const send = () =>
        fetch(url, { headers: { Authorization: `Bearer ${session.accessToken()}` } });
      let response = await send();
      if (response.status === 401 && (await session.renew())) response = await send();
      if (!response.ok) throw new ApiProblem(response.status, await response.json().catch(() => undefined));
      const blob = await response.blob();
      const link = document.createElement("a");
      link.href = URL.createObjectURL(blob);
      link.download = `activity-${teamId}.${format}`;
      document.body.append(link);
      link.click();
      link.remove();
      setTimeout(() => URL.revokeObjectURL(link.href), 10_000);
    },
  });
  return (
    <div className="exports">
      <button onClick={() => download.mutate("csv")} disabled={download.isPending}>
        Export CSV
      </button>
      <button onClick={() => download.mutate("ndjson")} disabled={download.isPending}>
        Export NDJSON
      </button>
      <ErrorNote error={download.error} />
    </div>
  );
}
