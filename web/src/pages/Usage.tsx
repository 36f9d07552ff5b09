// Usage and billing. Loaded on demand: the chart library is most of its weight.
import { useQuery } from "@tanstack/react-query";
import { useState } from "react";
import { useParams } from "react-router-dom";
import { Bar, BarChart, CartesianGrid, ResponsiveContainer, Tooltip, XAxis, YAxis } from "recharts";
import { unwrap, type Schemas } from "../api/client";
import { useSession } from "../auth/session";
import { Empty, ErrorNote, Loading } from "../components/ui";
import { useTeam } from "./Members";

const METRICS = {
  api_calls: "API calls",
  llm_tokens_used: "LLM tokens",
  tasks_created: "Tasks created",
  tasks_completed: "Tasks completed",
  storage_bytes: "Storage (bytes, net change)",
} as const;
type Metric = keyof typeof METRICS;

function isoDate(date: Date): string {
  return date.toISOString().slice(0, 10);
}

function money(minor: number, currency: string): string {
  return new Intl.NumberFormat(undefined, { style: "currency", currency }).format(minor / 100);
}

const count = new Intl.NumberFormat();

export default function Usage() {
  const { teamId = "" } = useParams();
  return (
    <main className="wide">
      <h1>Usage and billing</h1>
      <DailyChart teamId={teamId} />
      <Quotas teamId={teamId} />
      <Plans teamId={teamId} />
      <Invoices teamId={teamId} />
    </main>
  );
}

function DailyChart({ teamId }: { teamId: string }) {
  const { api } = useSession();
  const [metric, setMetric] = useState<Metric>("api_calls");
  const [days, setDays] = useState(30);
  const to = new Date();
  const from = new Date(to.getTime() - (days - 1) * 86_400_000);
  const usage = useQuery({
    queryKey: ["usage", teamId, days, isoDate(to)],
    queryFn: () =>
      unwrap(
        api.GET("/v1/teams/{team_id}/usage", {
          params: { path: { team_id: teamId }, query: { from: isoDate(from), to: isoDate(to) } },
        }),
      ),
  });
  const points = (usage.data?.items ?? []).map((day) => ({ date: day.date, value: day[metric] ?? 0 }));
  const total = points.reduce((sum, p) => sum + p.value, 0);
  return (
    <section aria-labelledby="daily">
      <h2 id="daily">Daily usage</h2>
      <div className="toolbar">
        <div className="field">
          <label htmlFor="metric">Metric</label>
          <select id="metric" value={metric} onChange={(e) => setMetric(e.target.value as Metric)}>
            {Object.entries(METRICS).map(([id, label]) => (
              <option key={id} value={id}>
                {label}
              </option>
            ))}
          </select>
        </div>
        <div className="field">
          <label htmlFor="days">Range</label>
          <select id="days" value={days} onChange={(e) => setDays(Number(e.target.value))}>
            <option value={7}>Last 7 days</option>
            <option value={30}>Last 30 days</option>
            <option value={90}>Last 90 days</option>
          </select>
        </div>
      </div>
      {usage.isPending && <Loading what="usage" />}
      <ErrorNote error={usage.error} />
      {usage.isSuccess && (
        <>
          <p className="total" aria-live="polite">
            {METRICS[metric]}: <strong>{count.format(total)}</strong> over {days} days
          </p>
          <figure aria-label={`${METRICS[metric]} per day`} className="chart">
            <ResponsiveContainer width="100%" height={260}>
              <BarChart data={points}>
                <CartesianGrid strokeDasharray="3 3" vertical={false} />
                <XAxis dataKey="date" tickFormatter={(d: string) => d.slice(5)} minTickGap={16} />
                <YAxis tickFormatter={(v: number) => count.format(v)} width={70} />
                <Tooltip formatter={(v) => count.format(Number(v))} />
                <Bar dataKey="value" name={METRICS[metric]} fill="#3b5bdb" isAnimationActive={false} />
              </BarChart>
            </ResponsiveContainer>
          </figure>
        </>
      )}
    </section>
  );
}

function Quotas({ teamId }: { teamId: string }) {
  const { api } = useSession();
  const quotas = useQuery({
    queryKey: ["quotas", teamId],
    queryFn: () =>
      unwrap(api.GET("/v1/teams/{team_id}/quotas", { params: { path: { team_id: teamId } } })),
  });
  return (
    <section aria-labelledby="quotas">
      <h2 id="quotas">Quotas this month</h2>
      {quotas.isPending && <Loading what="quotas" />}
      <ErrorNote error={quotas.error} />
      {quotas.isSuccess && quotas.data.items.length === 0 && <Empty>No quotas on this plan.</Empty>}
      <ul className="quotas" aria-label="Quotas">
        {quotas.data?.items.map((quota) => (
          <li key={quota.metric}>
            <label htmlFor={`quota-${quota.metric}`}>
              {METRICS[quota.metric as Metric] ?? quota.metric}: {count.format(quota.used)} of{" "}
              {count.format(quota.limit)} {quota.hard ? "(hard limit)" : "(included; more is billed)"}
            </label>
            <progress id={`quota-${quota.metric}`} value={Math.min(quota.used, quota.limit)} max={quota.limit} />
          </li>
        ))}
      </ul>
    </section>
  );
}

function Plans({ teamId }: { teamId: string }) {
  const { api } = useSession();
  const team = useTeam(teamId);
  const plans = useQuery({
    queryKey: ["plans"],
    queryFn: () => unwrap(api.GET("/v1/plans")),
    staleTime: 60_000,
  });
  return (
    <section aria-labelledby="plans">
      <h2 id="plans">Plans</h2>
      {plans.isPending && <Loading what="plans" />}
      <ErrorNote error={plans.error} />
      <ul className="cards" aria-label="Plans">
        {plans.data?.items.map((plan) => (
          <li key={plan.id} aria-current={team.data?.plan === plan.id ? "true" : undefined}>
            <strong>{plan.name}</strong> {money(plan.monthly_price, plan.currency)} a month
            {team.data?.plan === plan.id && <span className="badge">current plan</span>}
          </li>
        ))}
      </ul>
    </section>
  );
}

function Invoices({ teamId }: { teamId: string }) {
  const { api } = useSession();
  const invoices = useQuery({
    queryKey: ["invoices", teamId],
    queryFn: () =>
      unwrap(api.GET("/v1/teams/{team_id}/invoices", { params: { path: { team_id: teamId } } })),
  });
  return (
    <section aria-labelledby="invoices">
      <h2 id="invoices">Invoices</h2>
      {invoices.isPending && <Loading what="invoices" />}
      <ErrorNote error={invoices.error} />
      {invoices.isSuccess && invoices.data.items.length === 0 && <Empty>No invoices yet.</Empty>}
      {invoices.data?.items.map((invoice) => (
        <Invoice key={invoice.period} invoice={invoice} />
      ))}
    </section>
  );
}

function Invoice({ invoice }: { invoice: Schemas["InvoiceOut"] }) {
  return (
    <details className="invoice">
      <summary>
        {invoice.period} · {invoice.status} · {money(invoice.total, invoice.currency)}
      </summary>
      <table aria-label={`Invoice ${invoice.period}`}>
        <thead>
          <tr>
            <th scope="col">Line</th>
            <th scope="col">Quantity</th>
            <th scope="col">Included</th>
            <th scope="col">Price</th>
            <th scope="col">Amount</th>
          </tr>
        </thead>
        <tbody>
          {invoice.lines.map((line) => (
            <tr key={line.metric}>
              <td>{METRICS[line.metric as Metric] ?? line.metric}</td>
              <td>{count.format(line.quantity)}</td>
              <td>{count.format(line.included)}</td>
              <td>
                {money(line.unit_price, invoice.currency)}
                {line.unit > 1 ? ` per ${count.format(line.unit)}` : ""}
              </td>
              <td>{money(line.amount, invoice.currency)}</td>
            </tr>
          ))}
        </tbody>
      </table>
    </details>
  );
}
