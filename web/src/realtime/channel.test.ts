// The channel's logic against a fake WebSocket (the real one is exercised by
// the browser tests against the realtime service).
import { QueryClient } from "@tanstack/react-query";
import { afterEach, beforeEach, expect, test, vi } from "vitest";
import { openTeamChannel, patchMe, staleQueries } from "./channel";

class FakeSocket {
  static opened: FakeSocket[] = [];
  sent: string[] = [];
  onopen: (() => void) | null = null;
  onmessage: ((event: { data: string }) => void) | null = null;
  onclose: ((event: { code: number }) => void) | null = null;
  closed = false;
  constructor(readonly url: string) {
    FakeSocket.opened.push(this);
  }
  send(data: string) {
    this.sent.push(data);
  }
  close() {
    this.closed = true;
  }
  receive(frame: object) {
    this.onmessage?.({ data: JSON.stringify(frame) });
  }
}

let queryClient: QueryClient;
let invalidated: unknown[][];

beforeEach(() => {
  vi.useFakeTimers();
  FakeSocket.opened = [];
  queryClient = new QueryClient();
  invalidated = [];
  vi.spyOn(queryClient, "invalidateQueries").mockImplementation(async (filters) => {
    invalidated.push((filters?.queryKey as unknown[]) ?? ["(predicate)"]);
  });
});

afterEach(() => vi.useRealTimers());

function open(renew = async () => true) {
  return openTeamChannel({
    url: "ws://rt.test:8005",
    teamId: "t1",
    token: () => "tok",
    renew,
    queryClient,
    WebSocketImpl: FakeSocket as unknown as typeof WebSocket,
  });
}

test("domain events make the lists they change stale", () => {
  expect(staleQueries("t1", { type: "workspace.created" })).toEqual([["workspaces", "t1"]]);
  expect(staleQueries("t1", { type: "member.role_changed" })).toContainEqual(["roles", "t1"]);
  expect(staleQueries("t1", { type: "chat.typing" })).toEqual([]);
});

test("the token goes in the first frame, and a reconnect resumes from the last id", async () => {
  const stop = open();
  const first = FakeSocket.opened[0];
  expect(first.url).toBe("ws://rt.test:8005/ws/teams/t1");
  expect(first.url).not.toContain("tok");
  first.onopen?.();
  expect(JSON.parse(first.sent[0])).toEqual({ type: "auth", token: "tok" });
  first.receive({ type: "welcome", last_id: "5-0" });
  first.receive({ id: "6-0", type: "workspace.created", data: {} });
  expect(invalidated).toContainEqual(["workspaces", "t1"]);
  first.onclose?.({ code: 1006 });
  await vi.advanceTimersByTimeAsync(600);
  const second = FakeSocket.opened[1];
  second.onopen?.();
  expect(JSON.parse(second.sent[0])).toEqual({ type: "auth", token: "tok", since: "6-0" });
  second.receive({ type: "welcome", last_id: "90-0" });
  second.receive({ type: "resume.failed" });
  expect(invalidated).toContainEqual(["(predicate)"]);
  // The next reconnect resumes from the welcome's id, not the stale one.
  second.onclose?.({ code: 1006 });
  await vi.advanceTimersByTimeAsync(600);
  const third = FakeSocket.opened[2];
  third.onopen?.();
  expect(JSON.parse(third.sent[0])).toEqual({ type: "auth", token: "tok", since: "90-0" });
  stop();
  expect(third.closed).toBe(true);
});

test("removed from the team: no reconnect; a bad token: renew, then reconnect", async () => {
  open();
  FakeSocket.opened[0].onclose?.({ code: 1008 });
  await vi.advanceTimersByTimeAsync(20_000);
  expect(FakeSocket.opened).toHaveLength(1);

  const renew = vi.fn(async () => true);
  open(renew);
  FakeSocket.opened[1].onclose?.({ code: 4401 });
  await vi.advanceTimersByTimeAsync(600);
  expect(renew).toHaveBeenCalledOnce();
  expect(FakeSocket.opened).toHaveLength(3);
});

test("the caller's own role change and removal apply to their teams at once", () => {
  const me = { id: "u1", teams: [{ id: "t1", role: "member" }, { id: "t2", role: "admin" }] };
  const changed = patchMe(me, "t1", {
    type: "member.role_changed",
    data: { user_id: "u1", old_role: "member", new_role: "viewer" },
  });
  expect(changed?.teams).toEqual([{ id: "t1", role: "viewer" }, { id: "t2", role: "admin" }]);
  const someoneElse = patchMe(me, "t1", { type: "member.removed", data: { user_id: "u2" } });
  expect(someoneElse).toBe(me);
  const removed = patchMe(me, "t1", { type: "member.removed", data: { user_id: "u1" } });
  expect(removed?.teams).toEqual([{ id: "t2", role: "admin" }]);
});
