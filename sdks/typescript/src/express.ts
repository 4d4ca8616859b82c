/**
 * Express middleware: checks the request's token through Latchkey and requires scopes.
 *
 * ```ts
 * import express from "express";
 * import { requireToken } from "latchkey/express";
 * const app = express();
 * app.get("/reports", requireToken({ url, scopes: ["projects:read"] }), (req, res) => {
 *   res.json({ owner: res.locals.latchkey.owner_id });
 * });
 * ```
 *
 * The identity is on `res.locals.latchkey` and `req.latchkey`. Refusals answer Latchkey's
 * error shape (`{"error": {"code", "message"}}`) with `WWW-Authenticate`: 401 no or bad
 * token, 403 missing scope or type, 503 Latchkey unreachable (fail closed).
 */

import { type Identity, type Requirement, refusalResponse, TokenVerifier, type VerifierOptions } from "./verifier.js";

/** What the middleware needs of Express's request (no dependency on Express's types). */
export interface RequestLike {
  headers: Record<string, string | string[] | undefined>;
  latchkey?: Identity;
}

/** What the middleware needs of Express's response. */
export interface ResponseLike {
  locals: Record<string, unknown>;
  status(code: number): unknown;
  setHeader(name: string, value: string): unknown;
  json(body: unknown): unknown;
}

// Types `res.locals.latchkey` and `req.latchkey` for users of @types/express (a no-op
// without it).
declare global {
  namespace Express {
    interface Locals {
      /** Set by `requireToken` (latchkey/express). */
      latchkey?: Identity;
    }
    interface Request {
      /** Set by `requireToken` (latchkey/express). */
      latchkey?: Identity;
    }
  }
}

export type RequireTokenOptions = Requirement & VerifierOptions & { verifier?: TokenVerifier };

/** The middleware; share one `verifier` between routes to share its JWKS cache. */
export function requireToken(options: RequireTokenOptions = {}) {
  const verifier = options.verifier ?? new TokenVerifier(options);
  const requirement: Requirement = {};
  if (options.scopes) requirement.scopes = options.scopes;
  if (options.types) requirement.types = options.types;
  return function latchkeyRequireToken(req: RequestLike, res: ResponseLike, next: (error?: unknown) => void): void {
    const header = (name: string) => {
      const value = req.headers[name];
      return Array.isArray(value) ? value[0] : value;
    };
    verifier.check(header, requirement).then((result) => {
      if (result.ok) {
        req.latchkey = result.identity;
        res.locals.latchkey = result.identity;
        next();
        return;
      }
      const { body, headers } = refusalResponse(result.refusal);
      for (const [name, value] of Object.entries(headers)) res.setHeader(name, value);
      res.status(result.refusal.status);
      res.json(body);
    }, next);
  };
}

export { TokenVerifier } from "./verifier.js";
export type { Identity, Requirement, VerifierOptions } from "./verifier.js";
