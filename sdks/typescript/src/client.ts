/**
 * The Latchkey client: the same surface as the Python SDK (DESIGN.md §6), in TypeScript
 * names. Resources only say which route and body; adding an API feature is adding a method
 * here and its types in `types.ts` (docs/sdk-typescript.md, "Adding an API feature").
 */

import { type ClientOptions, Core, type RequestSpec, seg } from "./core.js";
import { PagePromise } from "./pagination.js";
import type {
  AuditEvent,
  CreatedToken,
  CreatedWebhook,
  EventType,
  Health,
  InstanceSettings,
  Introspection,
  Jwks,
  Me,
  Member,
  OrgRole,
  PageData,
  Project,
  Scope,
  Token,
  TokenCreators,
  TokenSettings,
  TokenType,
  User,
  VerifyResult,
  Webhook,
  WebhookDelivery,
  Workspace,
  WorkspaceRole,
} from "./types.js";

/** Paging of every list method: `limit` is the page size (server default 50, max 200). */
export interface PageParams {
  limit?: number;
  cursor?: string;
}

export interface CreateTokenParams {
  /** The workspace, by id or name. */
  workspace: string;
  name: string;
  type?: TokenType;
  scopes?: Scope[];
  projects?: string[];
  environment?: string;
  expires_in_days?: number;
  expires_at?: string | Date;
  owner_id?: string;
}

export interface RotateTokenParams {
  grace_seconds?: number;
  expires_in_days?: number;
  expires_at?: string | Date;
  /** A retry with the same key gets the same secret (and the call is retried safely). */
  idempotency_key?: string;
}

export interface ListTokensParams extends PageParams {
  /** Tokens of this workspace (id or name) the caller may see; without it: my tokens. */
  workspace?: string;
}

export interface CreateProjectParams {
  name: string;
  description?: string;
  /** Id or name; without it, the token's own workspace (`POST /projects`). */
  workspace?: string;
}

export interface AuditParams extends PageParams {
  workspace?: string;
  actor?: string;
  token?: string;
  action?: string;
  since?: string | Date;
  until?: string | Date;
}

export interface CreateUserParams {
  username: string;
  password: string;
  role?: OrgRole;
  display_name?: string;
  email?: string;
}

export interface UpdateUserParams {
  active?: boolean;
  role?: OrgRole;
  display_name?: string | null;
  email?: string | null;
  password?: string;
}

export interface UpdateTokenSettingsParams {
  enabled_types?: TokenType[];
  /** `null`: the instance default. */
  personal_token_ttl_days?: number | null;
  /** `null`: unlimited. */
  max_tokens_per_user?: number | null;
  token_creators?: TokenCreators;
}

export interface UpdateInstanceSettingsParams {
  /** `null`: unlimited. */
  max_active_tokens?: number | null;
  default_token_lifetime_days?: number;
}

export interface CreateWebhookParams {
  /** `http(s)://`; loopback and private addresses are refused (422, `field: "url"`) unless
   * the server allows them. */
  url: string;
  /** At least one event type. */
  events: EventType[];
  description?: string;
  /** Default `true`. */
  enabled?: boolean;
}

export interface UpdateWebhookParams {
  url?: string;
  events?: EventType[];
  /** `null` clears it. */
  description?: string | null;
  /** `false` pauses the endpoint, `true` resumes it. */
  enabled?: boolean;
}

/** Options of {@link Client.request}. */
export type RawRequest = Omit<RequestSpec, "method" | "path">;

function when(value: string | Date | undefined): string | undefined {
  if (value === undefined) return undefined;
  return typeof value === "string" ? value : value.toISOString().replace(/\.\d{3}Z$/, "Z");
}

/** `body` without `undefined` values; `undefined` when nothing is left (no body). */
function body(fields: Record<string, unknown>): Record<string, unknown> | undefined {
  const out = Object.fromEntries(Object.entries(fields).filter(([, v]) => v !== undefined));
  return Object.keys(out).length > 0 ? out : undefined;
}

/**
 * A Latchkey API client.
 *
 * `new Client({ url, token })`, `new Client(url, token)`, or `new Client()` to read
 * `LATCHKEY_URL` and `LATCHKEY_API_KEY`. A personal token (`lkp_`) is exchanged for a
 * short-lived access JWT and refreshed before it expires (concurrent calls share one
 * exchange); other tokens are sent as they are. Errors are {@link APIError} subclasses with
 * `status`, `code` and `message`.
 */
export class Client {
  /** The HTTP core (authentication, retries, errors). */
  readonly core: Core;
  readonly tokens: Tokens;
  readonly members: Members;
  readonly users: Users;
  readonly webhooks: Webhooks;

  constructor(urlOrOptions?: string | ClientOptions, token?: string, options: ClientOptions = {}) {
    const merged: ClientOptions =
      typeof urlOrOptions === "string" ? { ...options, url: urlOrOptions, token: token ?? options.token } : { ...(urlOrOptions ?? {}) };
    this.core = new Core(merged);
    this.tokens = new Tokens(this);
    this.members = new Members(this);
    this.users = new Users(this);
    this.webhooks = new Webhooks(this);
  }

  /** The server's base URL. */
  get baseUrl(): string {
    return this.core.baseUrl;
  }

  /** `access_token` (personal token exchanged for a JWT), `token`, `session` or `none`. */
  get authMode(): string {
    return this.core.auth.mode;
  }

  /** When the credential expires, from the last `Latchkey-Token-Expiration` header. */
  get tokenExpiration(): Date | undefined {
    return this.core.auth.tokenExpiration;
  }

  toString(): string {
    return `Client(${this.core.describe()})`;
  }

  /** Calls any route with the client's authentication, retries and errors. */
  request<T = unknown>(method: string, path: string, options: RawRequest = {}): Promise<T> {
    return this.core.json<T>({ ...options, method: method.toUpperCase(), path: path.startsWith("/") ? path : `/${path}` });
  }

  /** A paginated `GET` (for list routes this SDK has no method for yet). */
  list<T>(path: string, params: Record<string, string | number | boolean | undefined> & PageParams = {}): PagePromise<T> {
    const { cursor, ...query } = params;
    return new PagePromise<T>(
      (at) => this.core.json<PageData<T>>({ method: "GET", path, query: { ...query, cursor: at } }),
      cursor,
    );
  }

  // -- system

  health(): Promise<Health> {
    return this.core.json({ method: "GET", path: "/healthz", auth: false });
  }

  /** Whether `/readyz` answers ready. */
  async ready(): Promise<boolean> {
    try {
      return (await this.core.json<Health>({ method: "GET", path: "/readyz", auth: false })).status === "ok";
    } catch {
      return false;
    }
  }

  // -- session, me, workspaces

  /** Signs in; later requests use the session instead of the token, until `signOut`. */
  signIn(username: string, password: string): Promise<User> {
    return this.core.signIn<User>(username, password);
  }

  signOut(): Promise<void> {
    return this.core.signOut();
  }

  me(): Promise<Me> {
    return this.core.json({ method: "GET", path: "/api/v1/me" });
  }

  workspaces(params: PageParams = {}): PagePromise<Workspace> {
    return this.list("/api/v1/workspaces", { ...params });
  }

  /** One workspace, by id or name. */
  workspace(workspace: string): Promise<Workspace> {
    return this.core.json({ method: "GET", path: `/api/v1/workspaces/${seg(workspace)}` });
  }

  createWorkspace(name: string): Promise<Workspace> {
    return this.core.json({ method: "POST", path: "/api/v1/workspaces", json: { name } });
  }

  // -- projects

  /** Creates a project in `workspace` (id or name), else in the token's own workspace. */
  createProject(params: CreateProjectParams): Promise<Project> {
    const { workspace, ...fields } = params;
    const path = workspace === undefined ? "/projects" : `/api/v1/workspaces/${seg(workspace)}/projects`;
    return this.core.json({ method: "POST", path, json: body(fields) });
  }

  listProjects(params: { workspace?: string } & PageParams = {}): PagePromise<Project> {
    const { workspace, ...paging } = params;
    const path = workspace === undefined ? "/projects" : `/api/v1/workspaces/${seg(workspace)}/projects`;
    return this.list(path, paging);
  }

  async deleteProject(projectId: string, params: { workspace: string }): Promise<void> {
    await this.core.json({
      method: "DELETE",
      path: `/api/v1/workspaces/${seg(params.workspace)}/projects/${seg(projectId)}`,
    });
  }

  // -- checks

  /** Checks a token (or access JWT): `valid` and its metadata, or the `reason`. Public:
   * no credential is sent. */
  verify(token: string): Promise<VerifyResult> {
    return this.core.json({ method: "POST", path: "/api/v1/tokens/verify", json: { token }, auth: false });
  }

  /** RFC 7662 introspection (needs the `introspect` scope, an admin token or session). */
  introspect(token: string): Promise<Introspection> {
    return this.core.json({ method: "POST", path: "/oauth/introspect", form: { token } });
  }

  /** RFC 7009 revocation by secret (a token may revoke itself). */
  async oauthRevoke(token: string): Promise<void> {
    await this.core.json({ method: "POST", path: "/oauth/revoke", form: { token } });
  }

  /** Leak report: revokes every listed secret that exists; needs no credential. */
  async reportLeaked(tokens: string[]): Promise<void> {
    await this.core.json({ method: "POST", path: "/api/v1/credentials/revoke", json: { tokens }, auth: false });
  }

  /** The public keys of the access JWTs. */
  jwks(): Promise<Jwks> {
    return this.core.json({ method: "GET", path: "/.well-known/jwks.json", auth: false });
  }

  // -- audit, settings

  auditEvents(params: AuditParams = {}): PagePromise<AuditEvent> {
    const { since, until, ...rest } = params;
    return this.list("/api/v1/audit-events", { ...rest, since: when(since), until: when(until) });
  }

  instanceSettings(): Promise<InstanceSettings> {
    return this.core.json({ method: "GET", path: "/api/v1/instance/settings" });
  }

  updateInstanceSettings(params: UpdateInstanceSettingsParams): Promise<InstanceSettings> {
    return this.core.json({ method: "PATCH", path: "/api/v1/instance/settings", json: body({ ...params }) ?? {} });
  }

  /** The organization's token settings (default: the caller's organization). */
  async tokenSettings(org?: string): Promise<TokenSettings> {
    const id = org ?? (await this.me()).org.id;
    return this.core.json({ method: "GET", path: `/api/v1/orgs/${seg(id)}/token-settings` });
  }

  async updateTokenSettings(params: UpdateTokenSettingsParams, org?: string): Promise<TokenSettings> {
    const id = org ?? (await this.me()).org.id;
    return this.core.json({
      method: "PATCH",
      path: `/api/v1/orgs/${seg(id)}/token-settings`,
      json: body({ ...params }) ?? {},
    });
  }
}

/** `client.tokens`: create, list, get, revoke, restore, rotate, delete. */
export class Tokens {
  constructor(private readonly client: Client) {}

  /** Creates a token; the answer's `token` is the secret, shown this once. */
  create(params: CreateTokenParams): Promise<CreatedToken> {
    const { workspace, expires_at, ...fields } = params;
    return this.client.core.json({
      method: "POST",
      path: `/api/v1/workspaces/${seg(workspace)}/tokens`,
      json: body({ type: "personal", ...fields, expires_at: when(expires_at) }),
    });
  }

  /** Tokens of a workspace the caller may see, or (no workspace) the caller's own. */
  list(params: ListTokensParams = {}): PagePromise<Token> {
    const { workspace, ...paging } = params;
    const path = workspace === undefined ? "/api/v1/me/tokens" : `/api/v1/workspaces/${seg(workspace)}/tokens`;
    return this.client.list(path, paging);
  }

  get(id: string): Promise<Token> {
    return this.client.core.json({ method: "GET", path: `/api/v1/tokens/${seg(id)}` });
  }

  /** Stops the token at once (it can be restored before it expires). */
  revoke(id: string): Promise<Token> {
    return this.client.core.json({ method: "POST", path: `/api/v1/tokens/${seg(id)}/revoke` });
  }

  /** Re-approves a revoked token. */
  restore(id: string): Promise<Token> {
    return this.client.core.json({ method: "POST", path: `/api/v1/tokens/${seg(id)}/restore` });
  }

  /** A new secret under the same id; the old one works for `grace_seconds` more. */
  rotate(id: string, params: RotateTokenParams = {}): Promise<CreatedToken> {
    const { idempotency_key, expires_at, ...fields } = params;
    const spec: RequestSpec = {
      method: "POST",
      path: `/api/v1/tokens/${seg(id)}/rotate`,
      json: body({ ...fields, expires_at: when(expires_at) }),
    };
    if (idempotency_key !== undefined) spec.idempotencyKey = idempotency_key;
    return this.client.core.json(spec);
  }

  /** Deletes a token for good. */
  async delete(id: string): Promise<void> {
    await this.client.core.json({ method: "DELETE", path: `/api/v1/tokens/${seg(id)}` });
  }
}

/** `client.members`: workspace memberships. */
export class Members {
  constructor(private readonly client: Client) {}

  list(workspace: string, params: PageParams = {}): PagePromise<Member> {
    return this.client.list(`/api/v1/workspaces/${seg(workspace)}/members`, { ...params });
  }

  /** Adds a user to a workspace, or changes their role. */
  put(workspace: string, userId: string, role: WorkspaceRole = "member"): Promise<Member> {
    return this.client.core.json({
      method: "PUT",
      path: `/api/v1/workspaces/${seg(workspace)}/members/${seg(userId)}`,
      json: { role },
    });
  }

  async remove(workspace: string, userId: string): Promise<void> {
    await this.client.core.json({ method: "DELETE", path: `/api/v1/workspaces/${seg(workspace)}/members/${seg(userId)}` });
  }
}

/** `client.users`: the organization's users (org admins). */
export class Users {
  constructor(private readonly client: Client) {}

  list(params: PageParams = {}): PagePromise<User> {
    return this.client.list("/api/v1/users", { ...params });
  }

  create(params: CreateUserParams): Promise<User> {
    return this.client.core.json({ method: "POST", path: "/api/v1/users", json: body({ role: "member", ...params }) });
  }

  get(id: string): Promise<User> {
    return this.client.core.json({ method: "GET", path: `/api/v1/users/${seg(id)}` });
  }

  /** Changes a user; only the fields given are sent (`null` clears one). */
  update(id: string, params: UpdateUserParams): Promise<User> {
    return this.client.core.json({ method: "PATCH", path: `/api/v1/users/${seg(id)}`, json: body({ ...params }) ?? {} });
  }

  /** Their sessions end and their tokens stop at once. */
  deactivate(id: string): Promise<User> {
    return this.update(id, { active: false });
  }

  reactivate(id: string): Promise<User> {
    return this.update(id, { active: true });
  }
}

/** `client.webhooks`: the organization's webhook endpoints and their deliveries (org
 * admins; others get {@link PermissionDeniedError}). */
export class Webhooks {
  constructor(private readonly client: Client) {}

  /** Adds an endpoint; the answer's `secret` (`whsec_…`) is shown this once. */
  create(params: CreateWebhookParams): Promise<CreatedWebhook> {
    return this.client.core.json({ method: "POST", path: "/api/v1/webhooks", json: body({ ...params }) });
  }

  list(params: PageParams = {}): PagePromise<Webhook> {
    return this.client.list("/api/v1/webhooks", { ...params });
  }

  get(id: string): Promise<Webhook> {
    return this.client.core.json({ method: "GET", path: `/api/v1/webhooks/${seg(id)}` });
  }

  /** Changes an endpoint; only the fields given are sent. */
  update(id: string, params: UpdateWebhookParams): Promise<Webhook> {
    return this.client.core.json({ method: "PATCH", path: `/api/v1/webhooks/${seg(id)}`, json: body({ ...params }) ?? {} });
  }

  /** Deletes an endpoint and its deliveries. */
  async delete(id: string): Promise<void> {
    await this.client.core.json({ method: "DELETE", path: `/api/v1/webhooks/${seg(id)}` });
  }

  /** Queues a `webhook.test` message; answers the queued delivery. */
  test(id: string): Promise<WebhookDelivery> {
    return this.client.core.json({ method: "POST", path: `/api/v1/webhooks/${seg(id)}/test` });
  }

  /** Deliveries to the endpoint, newest first, with their attempts. */
  deliveries(id: string, params: PageParams = {}): PagePromise<WebhookDelivery> {
    return this.client.list(`/api/v1/webhooks/${seg(id)}/deliveries`, { ...params });
  }

  /** Sends a delivery's message again (same `webhook-id`), as a new delivery. */
  redeliver(id: string, deliveryId: string): Promise<WebhookDelivery> {
    return this.client.core.json({
      method: "POST",
      path: `/api/v1/webhooks/${seg(id)}/deliveries/${seg(deliveryId)}/redeliver`,
    });
  }
}
