/**
 * Checking a request's token for a service that Latchkey protects: the shared part of the
 * Express and Hono middleware (`latchkey/express`, `latchkey/hono`).
 *
 * Two ways, chosen per verifier:
 * - `POST /api/v1/tokens/verify` for every request (default): any token type and access
 *   JWTs, revocation seen at once, one round trip to Latchkey per request;
 * - `jwt: true`: access JWTs are checked here, against the JWKS (EdDSA, `iss`, `aud`,
 *   `exp`), with no round trip; a revoked personal token's JWT keeps working until it
 *   expires (5 minutes by default). Other tokens still go to verify.
 */

import { Client } from "./client.js";
import type { ClientOptions } from "./core.js";
import { APIConnectionError, APIError } from "./errors.js";
import type { Jwks, Scope, Token, TokenType } from "./types.js";

/** Who called: what the handler gets. */
export interface Identity {
  /** The token's id (for an access JWT: the personal token's, `pat`). */
  token_id: string;
  type: TokenType;
  /** The owning user (`null` for workspace tokens). */
  owner_id: string | null;
  workspace_id: string | null;
  scopes: Scope[];
  /** How it was checked. */
  via: "verify" | "jwt";
  /** The token's metadata (via verify). */
  token?: Token;
  /** The access JWT's claims (via jwt). */
  claims?: AccessClaims;
}

/** The claims of a Latchkey access JWT (DESIGN.md §2, §7). */
export interface AccessClaims {
  iss: string;
  aud: string | string[];
  sub: string;
  ws: string;
  scp: Scope[];
  jti: string;
  pat: string;
  exp: number;
  iat?: number;
  nbf?: number;
}

export interface VerifierOptions {
  /** Latchkey's URL (default `LATCHKEY_URL`). */
  url?: string;
  /** A client to use instead (verification needs no credential). */
  client?: Client;
  /** Check access JWTs locally against the JWKS instead of asking Latchkey. */
  jwt?: boolean;
  /** The JWTs' expected `iss`: Latchkey's `public_url` (default: `url`). */
  issuer?: string;
  /** Seconds of clock skew allowed on `exp` (default 30). */
  leewaySeconds?: number;
  /** Extra header names that carry a token, beyond `Authorization` and `X-API-Key`. */
  apiKeyHeaders?: string[];
  /** Passed to the client this verifier makes. */
  clientOptions?: Omit<ClientOptions, "url" | "token" | "anonymous">;
}

/** What a route requires. */
export interface Requirement {
  /** Every one of these scopes. */
  scopes?: Scope[];
  /** One of these token types (default: any). */
  types?: TokenType[];
}

/** A refusal, ready to send. */
export interface Refusal {
  status: 401 | 403 | 503;
  code: "unauthenticated" | "invalid_token" | "insufficient_scope" | "unavailable";
  message: string;
  /** The RFC 6750 `WWW-Authenticate` value (401 and 403). */
  challenge?: string;
}

export type CheckResult = { ok: true; identity: Identity } | { ok: false; refusal: Refusal };

/** The credential a request presents (`header` looks a header up by lower-case name). */
export function tokenFromHeaders(
  header: (name: string) => string | undefined,
  apiKeyHeaders: readonly string[] = [],
): string | undefined {
  const authorization = (header("authorization") ?? "").trim();
  const space = authorization.indexOf(" ");
  if (space > 0) {
    const scheme = authorization.slice(0, space).toLowerCase();
    const value = authorization.slice(space + 1).trim();
    if ((scheme === "bearer" || scheme === "token") && value) return value;
  }
  for (const name of ["x-api-key", ...apiKeyHeaders.map((h) => h.toLowerCase())]) {
    const value = (header(name) ?? "").trim();
    if (value) return value;
  }
  return undefined;
}

function challenge(error?: string, description?: string, scope?: string): string {
  const parts = ['Bearer realm="latchkey"'];
  if (error) parts.push(`error="${error}"`);
  if (description) parts.push(`error_description="${description}"`);
  if (scope) parts.push(`scope="${scope}"`);
  return parts.join(", ");
}

function base64url(text: string): Uint8Array<ArrayBuffer> {
  const b64 = text.replace(/-/g, "+").replace(/_/g, "/").padEnd(Math.ceil(text.length / 4) * 4, "=");
  return Uint8Array.from(atob(b64), (c) => c.charCodeAt(0));
}

function json<T>(segment: string): T {
  return JSON.parse(new TextDecoder().decode(base64url(segment))) as T;
}

const JWT_SHAPE = /^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+$/;
const JWKS_MIN_REFETCH_MS = 10_000;

/** Checks tokens against one Latchkey server. */
export class TokenVerifier {
  readonly client: Client;
  readonly jwt: boolean;
  readonly issuer: string;
  readonly leewaySeconds: number;
  readonly apiKeyHeaders: readonly string[];
  #keys = new Map<string, CryptoKey>();
  #fetchedAt = 0;
  #fetching: Promise<void> | undefined;

  constructor(options: VerifierOptions = {}) {
    this.client =
      options.client ?? new Client({ ...(options.clientOptions ?? {}), url: options.url, anonymous: true });
    this.jwt = options.jwt ?? false;
    this.issuer = (options.issuer ?? this.client.baseUrl).replace(/\/+$/, "");
    this.leewaySeconds = options.leewaySeconds ?? 30;
    this.apiKeyHeaders = options.apiKeyHeaders ?? [];
  }

  /** Checks the request's token against `requirement`. */
  async check(header: (name: string) => string | undefined, requirement: Requirement = {}): Promise<CheckResult> {
    const secret = tokenFromHeaders(header, this.apiKeyHeaders);
    if (secret === undefined) {
      return refuse(401, "unauthenticated", "an API token is required", challenge());
    }
    let identity: Identity | Refusal;
    try {
      identity = this.jwt && JWT_SHAPE.test(secret) ? await this.#checkJwt(secret) : await this.#checkByVerify(secret);
    } catch (error) {
      if (error instanceof APIConnectionError || error instanceof APIError) {
        return refuse(503, "unavailable", `cannot check the token with Latchkey: ${error.message}`);
      }
      throw error;
    }
    if ("status" in identity) return { ok: false, refusal: identity };
    if (requirement.types && !requirement.types.includes(identity.type)) {
      return refuse(
        403,
        "insufficient_scope",
        `a ${identity.type} token cannot call this; allowed types: ${requirement.types.join(" ")}`,
        challenge("insufficient_scope", "token type not allowed"),
      );
    }
    const needed = requirement.scopes ?? [];
    const missing = needed.filter((s) => !identity.scopes.includes(s));
    if (missing.length > 0) {
      return refuse(
        403,
        "insufficient_scope",
        `the token lacks the scopes ${missing.join(", ")}`,
        challenge("insufficient_scope", "missing scopes", needed.join(" ")),
      );
    }
    return { ok: true, identity };
  }

  async #checkByVerify(secret: string): Promise<Identity | Refusal> {
    const result = await this.client.verify(secret);
    if (!result.valid || !result.token) {
      const reason = result.reason ?? "invalid";
      return invalid(reason);
    }
    const token = result.token;
    return {
      token_id: token.id,
      type: token.type,
      owner_id: token.owner_id,
      workspace_id: token.workspace_id,
      scopes: token.scopes,
      via: "verify",
      token,
    };
  }

  async #checkJwt(jwt: string): Promise<Identity | Refusal> {
    const [head = "", payload = "", signature = ""] = jwt.split(".");
    let header: { alg?: string; typ?: string; kid?: string };
    let claims: AccessClaims;
    try {
      header = json(head);
      claims = json(payload);
    } catch {
      return invalid("bad_format");
    }
    if (header.alg !== "EdDSA" || typeof header.kid !== "string" || (header.typ && header.typ.toLowerCase() !== "at+jwt")) {
      return invalid("bad_format");
    }
    const key = await this.#key(header.kid);
    if (key === undefined) return invalid("unknown_key");
    const signed = new TextEncoder().encode(`${head}.${payload}`);
    const ok = await crypto.subtle.verify("Ed25519", key, base64url(signature), signed);
    if (!ok) return invalid("bad_signature");
    const audiences = Array.isArray(claims.aud) ? claims.aud : [claims.aud];
    if (claims.iss?.replace(/\/+$/, "") !== this.issuer || !audiences.includes("latchkey")) {
      return invalid("wrong_issuer_or_audience");
    }
    const now = this.client.core.now() / 1000;
    if (typeof claims.exp !== "number" || claims.exp + this.leewaySeconds < now) return invalid("expired");
    if (typeof claims.nbf === "number" && claims.nbf - this.leewaySeconds > now) return invalid("not_yet_valid");
    return {
      token_id: claims.pat,
      type: "personal",
      owner_id: claims.sub,
      workspace_id: claims.ws,
      scopes: Array.isArray(claims.scp) ? claims.scp : [],
      via: "jwt",
      claims,
    };
  }

  /** The key for `kid`, fetching the JWKS when it is unknown (at most every 10 s). */
  async #key(kid: string): Promise<CryptoKey | undefined> {
    const known = this.#keys.get(kid);
    if (known !== undefined) return known;
    if (this.client.core.now() - this.#fetchedAt >= JWKS_MIN_REFETCH_MS || this.#fetchedAt === 0) {
      this.#fetching ??= this.#fetchKeys().finally(() => {
        this.#fetching = undefined;
      });
      await this.#fetching;
    }
    return this.#keys.get(kid);
  }

  async #fetchKeys(): Promise<void> {
    const jwks: Jwks = await this.client.jwks();
    const keys = new Map<string, CryptoKey>();
    for (const jwk of jwks.keys ?? []) {
      if (jwk.kty !== "OKP" || jwk.crv !== "Ed25519" || !jwk.x) continue;
      const key = await crypto.subtle.importKey("jwk", { kty: "OKP", crv: "Ed25519", x: jwk.x }, { name: "Ed25519" }, false, [
        "verify",
      ]);
      keys.set(jwk.kid, key);
    }
    this.#keys = keys;
    this.#fetchedAt = this.client.core.now();
  }
}

function refuse(status: Refusal["status"], code: Refusal["code"], message: string, authenticate?: string): CheckResult {
  const refusal: Refusal = { status, code, message };
  if (authenticate !== undefined) refusal.challenge = authenticate;
  return { ok: false, refusal };
}

function invalid(reason: string): Refusal {
  return {
    status: 401,
    code: "invalid_token",
    message: `the token is not valid (${reason})`,
    challenge: challenge("invalid_token", reason),
  };
}

/** The JSON body and headers of a refusal, in Latchkey's own error shape. */
export function refusalResponse(refusal: Refusal): { body: { error: { code: string; message: string } }; headers: Record<string, string> } {
  const headers: Record<string, string> = {};
  if (refusal.challenge) headers["WWW-Authenticate"] = refusal.challenge;
  return { body: { error: { code: refusal.code, message: refusal.message } }, headers };
}
