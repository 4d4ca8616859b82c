/**
 * Latchkey: the TypeScript SDK of the self-hosted API token service.
 *
 * ```ts
 * import { Client } from "latchkey";
 * const client = new Client(CLUSTER_URL, API_TOKEN); // or new Client() with LATCHKEY_URL, LATCHKEY_API_KEY
 * const project = await client.createProject({ name: "Fraud Demo", description: "This is an Onboarding Demo" });
 * ```
 *
 * Middleware: `latchkey/express`, `latchkey/hono`. Guide: docs/sdk-typescript.md.
 */

export { Client, Members, Tokens, Users, Webhooks } from "./client.js";
export type {
  AuditParams,
  CreateProjectParams,
  CreateTokenParams,
  CreateUserParams,
  CreateWebhookParams,
  ListTokensParams,
  PageParams,
  RawRequest,
  RotateTokenParams,
  UpdateInstanceSettingsParams,
  UpdateTokenSettingsParams,
  UpdateUserParams,
  UpdateWebhookParams,
} from "./client.js";
export { type ClientOptions, Core, ENV_API_KEY, ENV_URL, type RequestSpec, VERSION } from "./core.js";
export * from "./errors.js";
export { checksum, hintOf, isWellFormed, TOKEN_PATTERN, tokenTypeOf } from "./format.js";
export { Page, PagePromise } from "./pagination.js";
export * from "./types.js";
export {
  type AccessClaims,
  type CheckResult,
  type Identity,
  type Refusal,
  type Requirement,
  TokenVerifier,
  tokenFromHeaders,
  type VerifierOptions,
} from "./verifier.js";
