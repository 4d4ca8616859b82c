// The client against the real server: every resource, the token lifecycle, errors, the JWT
// exchange and refresh, sessions, pagination.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import {
  AuthenticationError,
  Client,
  ConfigurationError,
  ConflictError,
  NotFoundError,
  Page,
  PermissionDeniedError,
  ValidationError,
  APIError,
  isWellFormed,
  tokenTypeOf,
} from "../dist/index.js";
import { makeToken, recordingFetch, startServer, unique } from "./support/server.mjs";

const WS1 = "Workspace 1";
let server;
let admin;

before(async () => {
  server = await startServer({ jwt: { ttl_secs: 60 } });
  admin = new Client(server.url, server.adminToken);
});
after(async () => {
  await server?.stop();
});

test("the RI Platform sample works as written", async () => {
  const [CLUSTER_URL, API_TOKEN] = [server.url, server.adminToken];
  const client = new Client(CLUSTER_URL, API_TOKEN);
  const project = await client.createProject({ name: "Fraud Demo", description: "This is an Onboarding Demo" });
  assert.equal(project.name, "Fraud Demo");
  assert.equal(project.description, "This is an Onboarding Demo");
  const ws1 = await client.workspace(WS1);
  assert.equal(project.workspace_id, ws1.id);
  const ids = [];
  for await (const p of client.listProjects()) ids.push(p.id);
  assert.ok(ids.includes(project.id));
});

test("configuration: environment, https by default, no token refused at construction", () => {
  const saved = { url: process.env.LATCHKEY_URL, key: process.env.LATCHKEY_API_KEY };
  try {
    process.env.LATCHKEY_URL = "keys.example.com";
    process.env.LATCHKEY_API_KEY = makeToken();
    const fromEnv = new Client();
    assert.equal(fromEnv.baseUrl, "https://keys.example.com");
    assert.equal(fromEnv.authMode, "access_token");
    delete process.env.LATCHKEY_API_KEY;
    assert.throws(() => new Client("keys.example.com"), (e) => {
      assert.ok(e instanceof ConfigurationError);
      assert.match(e.message, /LATCHKEY_API_KEY/);
      assert.match(e.message, /anonymous: true/);
      return true;
    });
    assert.equal(new Client({ url: "keys.example.com", anonymous: true }).authMode, "none");
    assert.throws(() => new Client({ url: "k.example", token: makeToken(), anonymous: true }), ConfigurationError);
    delete process.env.LATCHKEY_URL;
    assert.throws(() => new Client(), /LATCHKEY_URL/);
    assert.throws(() => new Client("ftp://x.example", "t"), ConfigurationError);
    assert.equal(new Client("http://127.0.0.1:9/", "t").baseUrl, "http://127.0.0.1:9");
    assert.equal(new Client("h.example", makeToken("lkc")).authMode, "token");
    const secret = makeToken();
    assert.ok(!String(new Client("h.example", secret)).includes(secret));
  } finally {
    if (saved.url === undefined) delete process.env.LATCHKEY_URL;
    else process.env.LATCHKEY_URL = saved.url;
    if (saved.key === undefined) delete process.env.LATCHKEY_API_KEY;
    else process.env.LATCHKEY_API_KEY = saved.key;
  }
});

test("me, workspaces and names that need encoding", async () => {
  const me = await admin.me();
  assert.equal(me.username, "admin");
  assert.equal(me.role, "owner");
  assert.deepEqual(me.memberships.map((m) => m.workspace_name), [WS1]);
  const console = new Client({ url: server.url, anonymous: true });
  await console.signIn("admin", server.adminPassword);
  assert.equal(console.authMode, "session");
  const name = unique("Team / Ünïcode & spaces?");
  const created = await console.createWorkspace(name);
  assert.equal((await console.workspace(name)).id, created.id);
  await console.signOut();
  assert.equal(console.authMode, "none");
  await assert.rejects(console.me(), AuthenticationError);
});

test("a token's whole life", async () => {
  const created = await admin.tokens.create({
    workspace: WS1,
    name: unique("ci"),
    expires_in_days: 30,
    scopes: ["projects:read", "projects:write"],
  });
  assert.ok(isWellFormed(created.token));
  assert.equal(tokenTypeOf(created.token), "personal");
  assert.equal(created.hint, `lkp_…${created.token.slice(-4)}`);
  assert.deepEqual(created.scopes, ["projects:read", "projects:write"]);
  assert.equal((await admin.tokens.get(created.id)).name, created.name);
  assert.equal("token" in (await admin.tokens.get(created.id)), false);

  const holder = new Client(server.url, created.token);
  assert.ok(Array.isArray((await holder.listProjects()).items));

  assert.equal((await admin.verify(created.token)).valid, true);
  assert.equal((await admin.tokens.revoke(created.id)).state, "revoked");
  assert.deepEqual(await admin.verify(created.token), { valid: false, reason: "revoked" });
  assert.equal((await admin.tokens.restore(created.id)).state, "active");

  const key = unique("rotate");
  const rotated = await admin.tokens.rotate(created.id, { grace_seconds: 300, idempotency_key: key });
  const again = await admin.tokens.rotate(created.id, { grace_seconds: 300, idempotency_key: key });
  assert.equal(again.token, rotated.token, "a retry with the same key gets the same secret");
  assert.equal((await admin.verify(created.token)).valid, true, "old secret within the grace period");
  assert.equal((await admin.verify(rotated.token)).valid, true);

  const events = [];
  for await (const e of admin.auditEvents({ token: created.id })) events.push(e.action);
  assert.ok(events.includes("token.created") && events.includes("token.revoked"), events.join());

  await admin.tokens.delete(created.id);
  await assert.rejects(admin.tokens.get(created.id), NotFoundError);
});

test("workspace tokens, bound to projects", async () => {
  const project = await admin.createProject({ name: unique("Checkout"), workspace: WS1 });
  const frontend = await admin.tokens.create({
    workspace: WS1,
    name: unique("checkout-web"),
    type: "frontend",
    projects: [project.id],
    environment: "production",
  });
  assert.equal(frontend.owner_id, null);
  assert.deepEqual(frontend.projects, [project.id]);
  assert.equal(frontend.environment, "production");
  assert.equal(new Client(server.url, frontend.token).authMode, "token");
  await admin.tokens.delete(frontend.id);
});

test("errors carry status, code and message", async () => {
  await assert.rejects(admin.tokens.get("01a2155c-0000-7000-8000-000000000000"), (e) => {
    assert.ok(e instanceof NotFoundError && e instanceof APIError);
    assert.equal(e.status, 404);
    assert.equal(e.code, "not_found");
    assert.ok(e.message.length > 0);
    return true;
  });
  await assert.rejects(admin.tokens.create({ workspace: WS1, name: "" }), (e) => {
    assert.ok(e instanceof ValidationError);
    assert.equal(e.status, 422);
    assert.equal(e.code, "invalid_field");
    assert.equal(e.field, "name");
    return true;
  });
  await assert.rejects(admin.tokens.create({ workspace: WS1, name: "too long", expires_in_days: 3650 }), (e) => {
    assert.ok(e instanceof ValidationError);
    assert.equal(e.code, "lifetime_exceeds_policy");
    return true;
  });
  const stranger = new Client(server.url, makeToken("lkc"));
  await assert.rejects(stranger.me(), (e) => e instanceof AuthenticationError && e.status === 401);
  const client = await admin.tokens.create({ workspace: WS1, name: unique("backend"), type: "client" });
  await assert.rejects(new Client(server.url, client.token).users.list(), PermissionDeniedError);
  await admin.tokens.delete(client.id);
  const nowhere = new Client({ url: "http://127.0.0.1:9", anonymous: true, maxRetries: 0 });
  assert.equal(await nowhere.ready(), false);
  assert.equal(ConflictError.name, "ConflictError");
});

test("iterating a list walks every page", async () => {
  const prefix = unique("paged");
  const made = [];
  for (let i = 0; i < 5; i++) made.push(await admin.tokens.create({ workspace: WS1, name: `${prefix}-${i}` }));
  const first = await admin.tokens.list({ workspace: WS1, limit: 2 });
  assert.ok(first instanceof Page);
  assert.equal(first.items.length, 2);
  assert.ok(first.hasNextPage());
  const every = [];
  for await (const t of admin.tokens.list({ workspace: WS1, limit: 2 })) every.push(t.id);
  assert.ok(every.length > 2);
  assert.equal(new Set(every).size, every.length, "no page twice");
  for (const t of made) assert.ok(every.includes(t.id));
  const byPages = [];
  for await (const page of first.iterPages()) byPages.push(...page.items.map((t) => t.id));
  assert.deepEqual(byPages, every);
  const second = await first.nextPage();
  assert.equal(second.items[0].id, every[2]);
  assert.deepEqual(JSON.parse(JSON.stringify(first)).items.length, 2);
  for (const t of made) await admin.tokens.delete(t.id);
});

test("a personal token is exchanged for a JWT, shared, and refreshed before it expires", async () => {
  const created = await admin.tokens.create({ workspace: WS1, name: unique("jwt") });
  const log = recordingFetch();
  let now = Date.now();
  const client = new Client({ url: server.url, token: created.token, fetch: log.fetch, now: () => now });
  assert.equal(client.authMode, "access_token");
  await Promise.all([client.me(), client.me(), client.workspaces()]);
  const refreshes = () => log.requests.filter((r) => r.path === "/api/v1/token/refresh").length;
  assert.equal(refreshes(), 1, "concurrent calls share one exchange");
  const used = log.requests.filter((r) => r.path !== "/api/v1/token/refresh").map((r) => r.authorization);
  assert.ok(used.every((a) => a.startsWith("Bearer eyJ") && a.split(".").length === 3), used.join());
  assert.ok(!used.some((a) => a.includes(created.token)), "the personal token itself is not sent");
  assert.ok(client.tokenExpiration instanceof Date);

  await client.me();
  assert.equal(refreshes(), 1, "a fresh JWT is reused");
  now += 59_000; // past 80 % of the 60 s lifetime: refreshed before the next request
  await client.me();
  assert.equal(refreshes(), 2);

  // A revoked personal token fails at the exchange.
  await admin.tokens.revoke(created.id);
  now += 60_000;
  await assert.rejects(client.me(), (e) => e instanceof AuthenticationError && e.code === "invalid_token");
  await admin.tokens.delete(created.id);
});

test("a JWT the server refuses is exchanged again, once", async () => {
  const created = await admin.tokens.create({ workspace: WS1, name: unique("jwt-refused") });
  const log = recordingFetch();
  const client = new Client({ url: server.url, token: created.token, fetch: log.fetch });
  await client.me();
  client.core.auth.access = `${client.core.auth.access.slice(0, -4)}AAAA`; // a broken signature
  const me = await client.me();
  assert.equal(me.username, "admin");
  assert.equal(log.requests.filter((r) => r.path === "/api/v1/token/refresh").length, 2);
  await admin.tokens.delete(created.id);
});

test("a token that expires within 7 days is warned about, once", async () => {
  const created = await admin.tokens.create({ workspace: WS1, name: unique("soon"), type: "client", expires_in_days: 3 });
  const warnings = [];
  const client = new Client({ url: server.url, token: created.token, onWarning: (m) => warnings.push(m) });
  await client.listProjects();
  await client.listProjects();
  assert.equal(warnings.length, 1, warnings.join());
  assert.match(warnings[0], /expires .* \(in 2 days\)/);
  assert.ok(!warnings[0].includes(created.token));
  const quiet = [];
  await new Client({ url: server.url, token: server.adminToken, onWarning: (m) => quiet.push(m) }).me();
  assert.deepEqual(quiet, []);
  await admin.tokens.delete(created.id);
});

test("users, members, settings, introspection, leak reports", async () => {
  const console = new Client({ url: server.url, anonymous: true });
  await console.signIn("admin", server.adminPassword);
  const ws = await console.createWorkspace(unique("Fraud Team"));
  const alice = await console.users.create({ username: unique("alice"), password: "a long password 123", email: "a@example.com" });
  assert.equal(alice.role, "member");
  const member = await console.members.put(ws.id, alice.id, "viewer");
  assert.equal(member.role, "viewer");
  const members = [];
  for await (const m of console.members.list(ws.name)) members.push(m.username);
  assert.ok(members.includes(alice.username));
  await console.members.remove(ws.id, alice.id);
  assert.equal((await console.users.deactivate(alice.id)).active, false);
  assert.equal((await console.users.reactivate(alice.id)).active, true);
  const settings = await console.tokenSettings();
  assert.ok(settings.enabled_types.includes("personal"));
  const changed = await console.updateTokenSettings({ personal_token_ttl_days: 90 });
  assert.equal(changed.personal_token_ttl_days, 90);
  await console.updateTokenSettings({ personal_token_ttl_days: null });
  assert.ok((await console.instanceSettings()).default_token_lifetime_days > 0);

  const secret = (await admin.tokens.create({ workspace: WS1, name: unique("leaky"), type: "client" })).token;
  const info = await console.introspect(secret);
  assert.equal(info.active, true);
  assert.equal(info.latchkey_type, "client");
  await new Client({ url: server.url, anonymous: true }).reportLeaked([secret]);
  assert.deepEqual(await admin.verify(secret), { valid: false, reason: "revoked" });
  assert.deepEqual(await console.introspect(secret), { active: false });
  const jwks = await admin.jwks();
  assert.ok(jwks.keys.length >= 1 && jwks.keys[0].crv === "Ed25519");
  assert.equal((await admin.health()).status, "ok");
  assert.equal((await admin.request("GET", "/api/v1/me")).username, "admin");
});
