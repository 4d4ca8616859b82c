/**
 * The HTTP core every call goes through: building requests, authentication (personal token
 * → access JWT exchange and refresh, session cookies), retries with backoff, and turning
 * error answers into typed errors. Resources (`client.tokens`, ...) only say which route
 * and body; a new API feature needs no change here.
 */

import {
  APIConnectionError,
  APIError,
  APITimeoutError,
  ConfigurationError,
  errorClassFor,
  type ErrorBody,
} from "./errors.js";
import { hintOf } from "./format.js";

export const VERSION = "0.1.0";
export const ENV_URL = "LATCHKEY_URL";
export const ENV_API_KEY = "LATCHKEY_API_KEY";
const SESSION_COOKIE = "latchkey_session";
const REFRESH_PATH = "/api/v1/token/refresh";
const EXPIRATION_HEADER = "latchkey-token-expiration";
const IDEMPOTENT = new Set(["GET", "HEAD", "OPTIONS", "PUT", "DELETE"]);
const RETRY_STATUSES = new Set([429, 503]);
const WARN_BEFORE_MS = 7 * 24 * 3600 * 1000;

/** How to reach a Latchkey server and how to behave. */
export interface ClientOptions {
  /** Server URL; without a scheme, `https://`. Default: `LATCHKEY_URL`. */
  url?: string;
  /** API token. Default: `LATCHKEY_API_KEY`. Without one the client refuses to be built,
   * unless `anonymous` is true. */
  token?: string;
  /** A client for public calls only (verify, signIn, health, reportLeaked). */
  anonymous?: boolean;
  /** Per-request timeout in milliseconds (default 30 000). */
  timeoutMs?: number;
  /** Retries of connection errors and 429/503 answers, for idempotent requests and those
   * with an Idempotency-Key (default 2). */
  maxRetries?: number;
  /** `undefined`: exchange personal tokens for access JWTs; `false`: never; `true`: try
   * any token. */
  jwtExchange?: boolean;
  /** Headers sent with every request. */
  headers?: Record<string, string>;
  /** The `fetch` to use (default: the platform's). */
  fetch?: typeof fetch;
  /** Milliseconds since the epoch (default `Date.now`); tests move it. */
  now?: () => number;
  /** Where warnings go (the token expires within 7 days): default `console.warn`. */
  onWarning?: (message: string) => void;
}

/** What to send, before authentication is added. */
export interface RequestSpec {
  method: string;
  path: string;
  query?: Record<string, string | number | boolean | null | undefined>;
  /** JSON body (`undefined`: none). */
  json?: unknown;
  /** Form body (`application/x-www-form-urlencoded`). */
  form?: Record<string, string>;
  headers?: Record<string, string>;
  idempotencyKey?: string;
  /** Send the client's credential (default true). */
  auth?: boolean;
  /** Safe to retry although the method is not idempotent. */
  retryUnsafe?: boolean;
}

interface Env {
  [key: string]: string | undefined;
}

function env(): Env {
  const proc = (globalThis as { process?: { env?: Env } }).process;
  return proc?.env ?? {};
}

/** The base URL from the option or `LATCHKEY_URL`; no scheme means `https://`. */
export function resolveBaseUrl(url: string | undefined): string {
  const raw = (url ?? env()[ENV_URL] ?? "").trim();
  if (!raw) {
    throw new ConfigurationError(
      `no server URL: pass new Client({ url, token }) or set ${ENV_URL} (and ${ENV_API_KEY} for the token)`,
    );
  }
  const withScheme = raw.includes("://") ? raw : `https://${raw}`;
  let parsed: URL;
  try {
    parsed = new URL(withScheme);
  } catch {
    throw new ConfigurationError(`invalid server URL ${JSON.stringify(raw)}`);
  }
  if ((parsed.protocol !== "http:" && parsed.protocol !== "https:") || !parsed.hostname) {
    throw new ConfigurationError(
      `invalid server URL ${JSON.stringify(raw)}: expected http(s)://host[:port]`,
    );
  }
  return withScheme.replace(/\/+$/, "");
}

/** The token from the option or `LATCHKEY_API_KEY`; refuses none unless anonymous. */
export function resolveToken(token: string | undefined, anonymous: boolean): string | undefined {
  if (anonymous) {
    if (token !== undefined && token.trim()) {
      throw new ConfigurationError("a token and anonymous: true contradict each other");
    }
    return undefined;
  }
  const value = (token ?? env()[ENV_API_KEY] ?? "").trim();
  if (!value) {
    throw new ConfigurationError(
      `no API token: pass new Client({ url, token }) or set ${ENV_API_KEY}; ` +
        "for public calls only (verify, signIn, health, reportLeaked) pass anonymous: true",
    );
  }
  return value;
}

/** One path segment, percent-encoded (workspace names may hold spaces or slashes). */
export function seg(value: string): string {
  if (!value) throw new TypeError("an id or name must not be empty");
  return encodeURIComponent(value);
}

function parseRetryAfter(value: string | null): number | undefined {
  if (!value) return undefined;
  const seconds = Number(value);
  if (Number.isFinite(seconds)) return Math.max(0, seconds);
  const at = Date.parse(value);
  return Number.isNaN(at) ? undefined : Math.max(0, (at - Date.now()) / 1000);
}

const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

/** The client's credential and what it turned into. */
class Auth {
  readonly token: string | undefined;
  exchange: boolean;
  access: string | undefined;
  refreshAt = 0;
  session: string | undefined;
  refreshing: Promise<void> | undefined;
  tokenExpiration: Date | undefined;
  warned = false;

  constructor(token: string | undefined, exchange: boolean | undefined) {
    this.token = token;
    this.exchange = Boolean(token) && (exchange ?? token?.startsWith("lkp_") ?? false);
  }

  get mode(): "session" | "access_token" | "token" | "none" {
    if (this.session !== undefined) return "session";
    if (this.token === undefined) return "none";
    return this.exchange ? "access_token" : "token";
  }
}

/** The transport-independent rules of one client. */
export class Core {
  readonly baseUrl: string;
  readonly auth: Auth;
  readonly timeoutMs: number;
  readonly maxRetries: number;
  readonly headers: Record<string, string>;
  readonly fetch: typeof fetch;
  readonly now: () => number;
  readonly onWarning: (message: string) => void;
  /** Backoff before retry `attempt` (ms); tests may replace it. */
  backoff = (attempt: number): number => Math.min(8000, 500 * 2 ** attempt) * (0.5 + Math.random() / 2);
  /** Waits `ms`; tests may replace it. */
  sleep: (ms: number) => Promise<void> = sleep;

  constructor(options: ClientOptions) {
    this.baseUrl = resolveBaseUrl(options.url);
    this.auth = new Auth(resolveToken(options.token, options.anonymous ?? false), options.jwtExchange);
    this.timeoutMs = options.timeoutMs ?? 30_000;
    this.maxRetries = options.maxRetries ?? 2;
    this.headers = { ...(options.headers ?? {}) };
    const platformFetch = options.fetch ?? globalThis.fetch;
    if (typeof platformFetch !== "function") {
      throw new ConfigurationError("no fetch: use Node ≥ 20 or pass options.fetch");
    }
    this.fetch = platformFetch;
    this.now = options.now ?? Date.now;
    this.onWarning = options.onWarning ?? ((message) => console.warn(message));
  }

  describe(): string {
    return `baseUrl=${JSON.stringify(this.baseUrl)}, auth=${this.auth.mode}, token=${hintOf(this.auth.token)}`;
  }

  private authHeaders(): { headers: Record<string, string>; usedAccess: string | undefined } {
    const auth = this.auth;
    if (auth.session !== undefined) {
      // Cookie-authenticated writes must name their origin: the server's CSRF check
      // refuses them without Origin or Sec-Fetch-Site.
      const origin = new URL(this.baseUrl).origin;
      return {
        headers: { Cookie: `${SESSION_COOKIE}=${auth.session}`, Origin: origin },
        usedAccess: undefined,
      };
    }
    if (auth.token === undefined) return { headers: {}, usedAccess: undefined };
    if (auth.exchange && auth.access !== undefined) {
      return { headers: { Authorization: `Bearer ${auth.access}` }, usedAccess: auth.access };
    }
    return { headers: { Authorization: `Bearer ${auth.token}` }, usedAccess: undefined };
  }

  private wantsRefresh(): boolean {
    const auth = this.auth;
    return (
      auth.session === undefined &&
      auth.exchange &&
      (auth.access === undefined || this.now() >= auth.refreshAt)
    );
  }

  /** Exchanges the personal token for an access JWT; concurrent callers share one. */
  private async ensureFresh(): Promise<void> {
    if (!this.wantsRefresh()) return;
    if (this.auth.refreshing === undefined) {
      this.auth.refreshing = this.refresh().finally(() => {
        this.auth.refreshing = undefined;
      });
    }
    await this.auth.refreshing;
  }

  private async refresh(): Promise<void> {
    const sentAt = this.now();
    let response: Response;
    try {
      response = await this.send({
        method: "POST",
        path: REFRESH_PATH,
        json: { refresh: this.auth.token },
        auth: false,
        retryUnsafe: true,
      });
    } catch (error) {
      if (
        error instanceof APIError &&
        ((error.status === 403 && error.code === "token_type_not_allowed") ||
          (error.status === 404 && (error.code === "not_found" || error.code === "http_404")))
      ) {
        // The server does not exchange this token (or has no route): send it as it is.
        this.auth.exchange = false;
        this.auth.access = undefined;
        return;
      }
      throw error;
    }
    const body = (await response.json()) as { access?: unknown; expires_in?: unknown };
    if (typeof body.access !== "string" || typeof body.expires_in !== "number") {
      throw new APIError(response.status, {
        code: "invalid_response",
        message: "unexpected token refresh answer",
      });
    }
    // `exp` is whole seconds: count from the request's start, drop that second, keep 20 %
    // (at most 30 s) spare.
    const lifetime = body.expires_in * 1000;
    const margin = Math.min(0.2 * lifetime, 30_000);
    this.auth.access = body.access;
    this.auth.refreshAt = sentAt + Math.max(0, lifetime - 1000 - margin);
  }

  private build(spec: RequestSpec): { url: string; init: RequestInit; usedAccess: string | undefined } {
    const url = new URL(this.baseUrl + spec.path);
    for (const [key, value] of Object.entries(spec.query ?? {})) {
      if (value !== undefined && value !== null) url.searchParams.set(key, String(value));
    }
    const headers: Record<string, string> = {
      Accept: "application/json",
      "User-Agent": `latchkey-typescript/${VERSION}`,
      ...this.headers,
    };
    let usedAccess: string | undefined;
    if (spec.auth !== false) {
      const auth = this.authHeaders();
      Object.assign(headers, auth.headers);
      usedAccess = auth.usedAccess;
    }
    if (spec.idempotencyKey) headers["Idempotency-Key"] = spec.idempotencyKey;
    Object.assign(headers, spec.headers ?? {});
    let body: string | undefined;
    if (spec.json !== undefined) {
      body = JSON.stringify(spec.json);
      headers["Content-Type"] = "application/json";
    } else if (spec.form !== undefined) {
      body = new URLSearchParams(spec.form).toString();
      headers["Content-Type"] = "application/x-www-form-urlencoded";
    }
    // Redirects are not followed: a credential must not travel to another URL.
    const init: RequestInit = { method: spec.method, headers, redirect: "manual" };
    if (body !== undefined) init.body = body;
    return { url: url.toString(), init, usedAccess };
  }

  private retryable(spec: RequestSpec): boolean {
    return IDEMPOTENT.has(spec.method) || Boolean(spec.idempotencyKey) || Boolean(spec.retryUnsafe);
  }

  /** Sends `spec` with authentication and retries; returns a 2xx response or throws. */
  async send(spec: RequestSpec): Promise<Response> {
    let attempt = 0;
    let reauthenticated = false;
    for (;;) {
      if (spec.auth !== false && this.wantsRefresh()) await this.ensureFresh();
      const { url, init, usedAccess } = this.build(spec);
      let response: Response;
      try {
        response = await this.fetch(url, { ...init, signal: AbortSignal.timeout(this.timeoutMs) });
      } catch (error) {
        const where = `${spec.method} ${spec.path}`;
        const timedOut = error instanceof Error && (error.name === "TimeoutError" || error.name === "AbortError");
        if (attempt < this.maxRetries && this.retryable(spec)) {
          await this.sleep(this.backoff(attempt));
          attempt += 1;
          continue;
        }
        if (timedOut) throw new APITimeoutError(`request timed out: ${where}`);
        const cause = error instanceof Error ? `${error.message}${error.cause ? `: ${String((error.cause as Error).message ?? error.cause)}` : ""}` : String(error);
        throw new APIConnectionError(`cannot reach the server: ${where}: ${cause}`);
      }
      this.observe(response, usedAccess !== undefined);
      const status = response.status;
      if (status === 401 && usedAccess !== undefined && !reauthenticated) {
        // The access JWT was refused (expired early, keys rotated): exchange again, once.
        if (this.auth.access === usedAccess) this.auth.access = undefined;
        reauthenticated = true;
        await response.body?.cancel();
        continue;
      }
      if (status < 300) return response;
      if (status < 400) {
        await response.body?.cancel();
        throw new APIError(status, {
          code: "unexpected_redirect",
          message: `the server redirected ${spec.method} ${spec.path} to ${response.headers.get("location") ?? "?"}; give the client the server's final URL`,
        });
      }
      const retryAfter = parseRetryAfter(response.headers.get("retry-after"));
      if (RETRY_STATUSES.has(status) && attempt < this.maxRetries && this.retryable(spec)) {
        if (retryAfter === undefined || retryAfter <= 60) {
          await response.body?.cancel();
          await this.sleep(retryAfter !== undefined ? retryAfter * 1000 : this.backoff(attempt));
          attempt += 1;
          continue;
        }
      }
      throw await errorFrom(response, retryAfter);
    }
  }

  private observe(response: Response, viaAccessJwt: boolean): void {
    const value = response.headers.get(EXPIRATION_HEADER);
    if (!value) return;
    const at = new Date(value);
    if (Number.isNaN(at.getTime())) return;
    this.auth.tokenExpiration = at;
    // On a JWT request the header is the JWT's own (minutes away), not the token's.
    if (viaAccessJwt || this.auth.session !== undefined) return;
    if (!this.auth.warned && at.getTime() - this.now() < WARN_BEFORE_MS) {
      this.auth.warned = true;
      const days = Math.max(0, Math.floor((at.getTime() - this.now()) / 86_400_000));
      this.onWarning(
        `latchkey: the token ${hintOf(this.auth.token)} expires ${at.toISOString()} (in ${days} days): rotate it`,
      );
    }
  }

  /** Sends and decodes the JSON answer (`undefined` for an empty one). */
  async json<T>(spec: RequestSpec): Promise<T> {
    const response = await this.send(spec);
    const text = await response.text();
    if (response.status === 204 || !text) return undefined as T;
    try {
      return JSON.parse(text) as T;
    } catch {
      throw new APIError(response.status, { code: "invalid_response", message: "the answer is not JSON" });
    }
  }

  /** Signs in; later requests use the session instead of the token. */
  async signIn<T>(username: string, password: string): Promise<T> {
    const response = await this.send({
      method: "POST",
      path: "/api/v1/session",
      json: { username, password },
      auth: false,
    });
    const cookie = sessionFrom(response.headers);
    if (cookie === undefined) {
      throw new APIError(response.status, {
        code: "invalid_response",
        message: "the sign-in answer set no session cookie",
      });
    }
    this.auth.session = cookie;
    return (await response.json()) as T;
  }

  async signOut(): Promise<void> {
    if (this.auth.session === undefined) return;
    try {
      await this.send({ method: "DELETE", path: "/api/v1/session" });
    } finally {
      this.auth.session = undefined;
    }
  }
}

function sessionFrom(headers: Headers): string | undefined {
  const all = typeof headers.getSetCookie === "function" ? headers.getSetCookie() : [headers.get("set-cookie") ?? ""];
  for (const header of all) {
    const match = new RegExp(`(?:^|[;,]\\s*)${SESSION_COOKIE}=([^;]+)`).exec(header);
    if (match?.[1]) return match[1];
  }
  return undefined;
}

async function errorFrom(response: Response, retryAfter: number | undefined): Promise<APIError> {
  let body: ErrorBody = {};
  try {
    const parsed = (await response.json()) as { error?: ErrorBody };
    if (parsed && typeof parsed.error === "object" && parsed.error !== null) body = parsed.error;
  } catch {
    body = {};
  }
  const Class = errorClassFor(response.status);
  return new Class(response.status, body, retryAfter);
}
