// Compiled by `npm run typecheck` (tsc --noEmit), never run: the types catch misspelt
// literals, and the middleware fits Hono's own types. Every `@ts-expect-error` must be an
// error, or tsc fails.
import { Hono } from "hono";
import { Client, type Scope, type Token, type TokenState } from "../src/index.js";
import { requireToken, type LatchkeyVariables } from "../src/hono.js";

const client = new Client("keys.example.com", "lkp_x");

export async function samples(): Promise<void> {
  await client.tokens.create({ workspace: "Workspace 1", name: "ci", type: "personal", scopes: ["projects:read"] });
  // @ts-expect-error a misspelt type
  await client.tokens.create({ workspace: "Workspace 1", name: "ci", type: "personnal" });
  // @ts-expect-error a misspelt scope
  await client.tokens.create({ workspace: "Workspace 1", name: "ci", scopes: ["project:read"] });
  // @ts-expect-error the workspace is required
  await client.tokens.create({ name: "ci" });
  // @ts-expect-error an unknown role
  await client.users.create({ username: "bob", password: "a long password", role: "superuser" });
  // @ts-expect-error an unknown setting value
  await client.updateTokenSettings({ token_creators: "everyone" });

  const page = await client.tokens.list({ workspace: "Workspace 1", limit: 10 });
  const first: Token | undefined = page.items[0];
  const state: TokenState | undefined = first?.state;
  // @ts-expect-error not a state
  const wrong: TokenState = "actvie";
  for await (const token of client.tokens.list()) {
    const scopes: Scope[] = token.scopes;
    void scopes;
  }
  void state;
  void wrong;
}

const app = new Hono<{ Variables: LatchkeyVariables }>();
app.get("/reports", requireToken({ url: "https://keys.example.com", scopes: ["projects:read"] }), (c) =>
  c.json({ owner: c.get("latchkey").owner_id }),
);
// @ts-expect-error a misspelt scope in the middleware
requireToken({ scopes: ["projects:reed"] });
