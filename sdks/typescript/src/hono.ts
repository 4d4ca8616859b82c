/**
 * Hono middleware: checks the request's token through Latchkey and requires scopes.
 *
 * ```ts
 * import { Hono } from "hono";
 * import { requireToken } from "latchkey/hono";
 * const app = new Hono();
 * app.get("/reports", requireToken({ url, scopes: ["projects:read"] }), (c) =>
 *   c.json({ owner: c.get("latchkey").owner_id }));
 * ```
 *
 * The identity is `c.get("latchkey")`. Refusals answer Latchkey's error shape with
 * `WWW-Authenticate`: 401 no or bad token, 403 missing scope or type, 503 Latchkey
 * unreachable (fail closed). Works wherever Hono runs and `fetch` exists.
 */

import { type Identity, type Requirement, refusalResponse, TokenVerifier, type VerifierOptions } from "./verifier.js";

/** What the middleware needs of Hono's context (no dependency on Hono's types). */
export interface ContextLike {
  req: { header(name: string): string | undefined };
  set(key: "latchkey", value: Identity): void;
}

export type RequireTokenOptions = Requirement & VerifierOptions & { verifier?: TokenVerifier };

/** The variables this middleware sets, for `new Hono<{ Variables: LatchkeyVariables }>()`. */
export interface LatchkeyVariables {
  latchkey: Identity;
}

/** The middleware; share one `verifier` between routes to share its JWKS cache. */
export function requireToken(options: RequireTokenOptions = {}) {
  const verifier = options.verifier ?? new TokenVerifier(options);
  const requirement: Requirement = {};
  if (options.scopes) requirement.scopes = options.scopes;
  if (options.types) requirement.types = options.types;
  return async function latchkeyRequireToken(c: ContextLike, next: () => Promise<void>): Promise<Response | void> {
    const result = await verifier.check((name) => c.req.header(name), requirement);
    if (result.ok) {
      c.set("latchkey", result.identity);
      await next();
      return;
    }
    const { body, headers } = refusalResponse(result.refusal);
    return new Response(JSON.stringify(body), {
      status: result.refusal.status,
      headers: { ...headers, "Content-Type": "application/json" },
    });
  };
}

export { TokenVerifier } from "./verifier.js";
export type { Identity, Requirement, VerifierOptions } from "./verifier.js";
