import {
  useInfiniteQuery,
  useMutation,
  useQueryClient,
} from "@tanstack/react-query";
import { useDeferredValue, useState, type FormEvent } from "react";
import { useParams } from "react-router-dom";
import { unwrap, type Schemas } from "../api/client";
import { usePermissions } from "../auth/permissions";
import { useSession } from "../auth/session";
import { Empty, ErrorNote, Field, Loading } from "../components/ui";

type Workspace = Schemas["WorkspaceOut"];
const PAGE = 50;

export function Workspaces() {
  const { teamId = "" } = useParams();
  const { api } = useSession();
  const [search, setSearch] = useState("");
  const q = useDeferredValue(search.trim());
  const [archived, setArchived] = useState(false);

  const list = useInfiniteQuery({
    queryKey: ["workspaces", teamId, { q, archived }],
    initialPageParam: undefined as string | undefined,
    queryFn: ({ pageParam }) =>
      unwrap(
        api.GET("/v1/teams/{team_id}/workspaces", {
          params: {
            path: { team_id: teamId },
            query: {
              limit: PAGE,
              cursor: pageParam,
              q: q || undefined,
              include_archived: archived,
            },
          },
        }),
      ),
    getNextPageParam: (last) => last.next_cursor ?? undefined,
  });
  const items = list.data?.pages.flatMap((page) => page.items) ?? [];
  const permissions = usePermissions(teamId);

  return (
    <main>
      <h1>Workspaces</h1>
      <div className="toolbar" role="search">
        <Field
          label="Search workspaces"
          type="search"
          value={search}
          onChange={(e) => setSearch(e.target.value)}
        />
        <label className="toggle">
          <input
            type="checkbox"
            checked={archived}
            onChange={(e) => setArchived(e.target.checked)}
          />
          Show archived
        </label>
      </div>
      {list.isPending && <Loading what="workspaces" />}
      <ErrorNote error={list.error} />
      {list.isSuccess && items.length === 0 && (
        <Empty>{q ? `No workspace matches “${q}”.` : "No workspaces yet: create the first one."}</Empty>
      )}
      {items.length > 0 && (
        <ul aria-label="Workspaces" className="rows">
          {items.map((workspace) => (
            <WorkspaceRow key={workspace.id} teamId={teamId} workspace={workspace} />
          ))}
        </ul>
      )}
      {list.hasNextPage && (
        <button onClick={() => void list.fetchNextPage()} disabled={list.isFetchingNextPage}>
          {list.isFetchingNextPage ? "Loading…" : "Load more"}
        </button>
      )}
      {permissions.can("workspace:create") && <CreateWorkspace teamId={teamId} />}
    </main>
  );
}

function useWorkspaceChange(teamId: string) {
  const queryClient = useQueryClient();
  return () => queryClient.invalidateQueries({ queryKey: ["workspaces", teamId] });
}

function WorkspaceRow({ teamId, workspace }: { teamId: string; workspace: Workspace }) {
  const { api } = useSession();
  const changed = useWorkspaceChange(teamId);
  const permissions = usePermissions(teamId);
  const [editing, setEditing] = useState(false);
  const path = { team_id: teamId, workspace_id: workspace.id };
  const update = useMutation({
    mutationFn: (body: Schemas["WorkspaceUpdate"]) =>
      unwrap(
        api.PATCH("/v1/teams/{team_id}/workspaces/{workspace_id}", { params: { path }, body }),
      ),
    onSuccess: async () => {
      setEditing(false);
      await changed();
    },
  });
  const remove = useMutation({
    mutationFn: () =>
      unwrap(api.DELETE("/v1/teams/{team_id}/workspaces/{workspace_id}", { params: { path } })),
    onSuccess: changed,
  });
  const isArchived = workspace.archived_at !== null;

  function save(event: FormEvent<HTMLFormElement>) {
    event.preventDefault();
    const form = new FormData(event.currentTarget);
    const description = String(form.get("description") ?? "").trim();
    update.mutate({ name: String(form.get("name") ?? "").trim(), description: description || null });
  }

  if (editing) {
    return (
      <li>
        <form onSubmit={save} aria-label={`Edit ${workspace.name}`} className="inline-edit">
          <Field label="Name" name="name" defaultValue={workspace.name} maxLength={255} required />
          <Field label="Description" name="description" defaultValue={workspace.description ?? ""} />
          <ErrorNote error={update.error} />
          <button type="submit" disabled={update.isPending}>
            Save
          </button>
          <button type="button" className="secondary" onClick={() => setEditing(false)}>
            Cancel
          </button>
        </form>
      </li>
    );
  }
  return (
    <li>
      <span className="name">{workspace.name}</span>
      {isArchived && <span className="badge">archived</span>}
      {workspace.description && <p className="description">{workspace.description}</p>}
      {permissions.can("workspace:update") && (
        <>
          <button onClick={() => setEditing(true)} aria-label={`Edit ${workspace.name}`}>
            Edit
          </button>
          <button
            onClick={() => update.mutate({ archived: !isArchived })}
            disabled={update.isPending}
            aria-label={`${isArchived ? "Unarchive" : "Archive"} ${workspace.name}`}
          >
            {isArchived ? "Unarchive" : "Archive"}
          </button>
        </>
      )}
      {permissions.can("workspace:delete") && (
        <button
          className="danger"
          onClick={() => {
            if (window.confirm(`Delete the workspace “${workspace.name}”? This cannot be undone.`)) {
              remove.mutate();
            }
          }}
          disabled={remove.isPending}
          aria-label={`Delete ${workspace.name}`}
        >
          Delete
        </button>
      )}
      <ErrorNote error={update.error ?? remove.error} />
    </li>
  );
}

function CreateWorkspace({ teamId }: { teamId: string }) {
  const { api } = useSession();
  const changed = useWorkspaceChange(teamId);
  const [name, setName] = useState("");
  const [description, setDescription] = useState("");
  const create = useMutation({
    mutationFn: () =>
      unwrap(
        api.POST("/v1/teams/{team_id}/workspaces", {
          params: { path: { team_id: teamId } },
          body: { name: name.trim(), description: description.trim() || null },
        }),
      ),
    onSuccess: async () => {
      setName("");
      setDescription("");
      await changed();
    },
  });

  function submit(event: FormEvent) {
    event.preventDefault();
    create.mutate();
  }

  return (
    <section aria-labelledby="create-workspace">
      <h2 id="create-workspace">New workspace</h2>
      <form onSubmit={submit} aria-label="New workspace">
        <Field
          label="Workspace name"
          value={name}
          onChange={(e) => setName(e.target.value)}
          maxLength={255}
          required
        />
        <Field
          label="Description"
          value={description}
          onChange={(e) => setDescription(e.target.value)}
        />
        <ErrorNote error={create.error} />
        <button type="submit" disabled={create.isPending}>
          {create.isPending ? "Creating…" : "Create workspace"}
        </button>
      </form>
    </section>
  );
}
