/**
 * The API's objects, as the server sends them (DESIGN.md §3): flat JSON, snake_case field
 * names, ids as strings, times as RFC 3339 UTC strings, absent values `null`. New fields a
 * newer server adds arrive untouched; add them here (optional, `?:`) to type them.
 */

/** Token type names. */
export type TokenType = "personal" | "legacy" | "client" | "frontend" | "admin";
/** Token states; `suspended` and `type_disabled` are derived when read. */
export type TokenState = "active" | "revoked" | "expired" | "suspended" | "type_disabled";
/** Scope names. */
export type Scope =
  | "projects:read"
  | "projects:write"
  | "tokens:read"
  | "tokens:write"
  | "members:read"
  | "introspect"
  | "admin"
  | "metrics:read";
/** Why a token check failed. */
export type VerifyReason =
  | "bad_format"
  | "not_found"
  | "expired"
  | "revoked"
  | "type_disabled"
  | "suspended"
  | "ip_not_allowed"
  | "usage_exceeded"
  | "rate_limited";
/** A user's role in the organization. */
export type OrgRole = "owner" | "admin" | "member";
/** A user's role in a workspace. */
export type WorkspaceRole = "admin" | "member" | "viewer";
/** Who may create tokens in an organization. */
export type TokenCreators = "members" | "admins";

/** Every value of each union, for code that needs them at run time. */
export const TOKEN_TYPES: readonly TokenType[] = ["personal", "legacy", "client", "frontend", "admin"];
export const TOKEN_STATES: readonly TokenState[] = [
  "active",
  "revoked",
  "expired",
  "suspended",
  "type_disabled",
];
export const SCOPES: readonly Scope[] = [
  "projects:read",
  "projects:write",
  "tokens:read",
  "tokens:write",
  "members:read",
  "introspect",
  "admin",
  "metrics:read",
];

/** A token's metadata; never its secret (see {@link CreatedToken}). */
export interface Token {
  id: string;
  name: string;
  type: TokenType;
  hint: string;
  state: TokenState;
  scopes: Scope[];
  projects: string[];
  workspace_id: string | null;
  workspace_name?: string | null;
  owner_id: string | null;
  owner_username?: string | null;
  created_by?: string | null;
  environment: string | null;
  created_at: string;
  expires_at: string | null;
  last_used_at: string | null;
  last_used_ip?: string | null;
}

/** The answer of a create or rotate: the metadata plus `token`, the secret, shown once. */
export interface CreatedToken extends Token {
  token: string;
}

/** A user of the organization. */
export interface User {
  id: string;
  username: string;
  role: OrgRole;
  active: boolean;
  display_name: string | null;
  email: string | null;
  created_at: string;
}

/** `GET /api/v1/me`: the user plus its organization and workspace memberships. */
export interface Me extends User {
  org: { id: string; name: string };
  memberships: { workspace_id: string; workspace_name: string; role: WorkspaceRole }[];
}

export interface Workspace {
  id: string;
  name: string;
  org_id: string;
  created_at: string;
}

export interface Member {
  workspace_id: string;
  user_id: string;
  username: string;
  role: WorkspaceRole;
  created_at: string;
}

/** The example resource tokens protect. */
export interface Project {
  id: string;
  workspace_id: string;
  name: string;
  description: string | null;
  created_by: string | null;
  created_at: string;
}

/** `POST /api/v1/tokens/verify`. */
export interface VerifyResult {
  valid: boolean;
  token?: Token | null;
  reason?: VerifyReason | null;
}

/** RFC 7662 introspection; inactive answers are exactly `{active: false}`. */
export interface Introspection {
  active: boolean;
  scope?: string;
  client_id?: string;
  username?: string;
  sub?: string;
  token_type?: string;
  exp?: number;
  iat?: number;
  workspace_id?: string;
  latchkey_type?: TokenType;
}

export interface AuditEvent {
  id: string;
  action: string;
  created_at: string;
  actor_id: string | null;
  actor_token_id?: string | null;
  target_type?: string | null;
  target_id?: string | null;
  workspace_id?: string | null;
  subject_user_id?: string | null;
  ip?: string | null;
  details?: Record<string, unknown>;
}

export interface InstanceSettings {
  max_active_tokens: number | null;
  default_token_lifetime_days: number;
}

export interface TokenSettings {
  enabled_types: TokenType[];
  personal_token_ttl_days: number | null;
  max_tokens_per_user: number | null;
  token_creators: TokenCreators;
}

export interface Health {
  status: string;
}

/** The JSON Web Key Set of the access JWTs. */
export interface Jwks {
  keys: { kty: string; crv?: string; kid: string; x?: string; alg?: string; use?: string }[];
}

/** One page of a list. */
export interface PageData<T> {
  items: T[];
  next_cursor: string | null;
}

/** Lifecycle event types a webhook endpoint subscribes to (DESIGN.md §8). */
export type EventType =
  | "token.created"
  | "token.revoked"
  | "token.restored"
  | "token.rotated"
  | "token.deleted"
  | "token.expiring"
  | "token.expired"
  | "token.leaked"
  | "token.revealed"
  | "user.deactivated"
  | "user.reactivated";

/** A webhook endpoint; its signing secret is only in {@link CreatedWebhook}. */
export interface Webhook {
  id: string;
  url: string;
  events: EventType[];
  description: string | null;
  /** `false`: paused, no new messages are queued for it. */
  enabled: boolean;
  created_at: string;
  updated_at: string;
}

/** The answer to creating an endpoint: `secret` (`whsec_…`) is shown this once. */
export interface CreatedWebhook extends Webhook {
  secret: string;
}

export type DeliveryState = "pending" | "delivered" | "failed";

/** One try at delivering a message. */
export interface DeliveryAttempt {
  at: string;
  /** The receiver's HTTP status (`null`: no answer). */
  status: number | null;
  /** `timeout`, `connection refused`, `HTTP 503`, ...; `null` on success. */
  error: string | null;
}

/** One message to one endpoint, with its attempts. */
export interface WebhookDelivery {
  id: string;
  webhook_id: string;
  /** The `webhook-id` header: the same on every attempt and redelivery. */
  event_id: string;
  /** An {@link EventType}, or `webhook.test`. */
  event_type: string;
  state: DeliveryState;
  attempts: number;
  last_status: number | null;
  last_error: string | null;
  last_attempt_at: string | null;
  /** `null` once delivered or failed. */
  next_attempt_at: string | null;
  created_at: string;
  /** The latest attempts, oldest first (at most 20). */
  attempt_log: DeliveryAttempt[];
}
