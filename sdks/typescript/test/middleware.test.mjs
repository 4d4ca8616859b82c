// The Express and Hono middleware in real apps (Express on a random port, Hono through its
// own fetch handler), checking tokens with the real Latchkey server: by verify, and by
// access JWT against the JWKS.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import express from "express";
import { Hono } from "hono";
import { Client, TokenVerifier } from "../dist/index.js";
import { requireToken as expressToken } from "../dist/express.js";
import { requireToken as honoToken } from "../dist/hono.js";
import { makeToken, recordingFetch, startServer, unique } from "./support/server.mjs";

const WS1 = "Workspace 1";
// The JWTs' `iss` is the configured public_url (a real deployment sets it; the test server's
// own address is random).
const PUBLIC_URL = "http://latchkey.test";
let server;
let admin;
let reader;
let writer;
let backend;

before(async () => {
  server = await startServer({ public_url: PUBLIC_URL });
  admin = new Client(server.url, server.adminToken);
  reader = await admin.tokens.create({ workspace: WS1, name: unique("reader"), scopes: ["projects:read"] });
  writer = await admin.tokens.create({ workspace: WS1, name: unique("writer"), scopes: ["projects:read", "projects:write"] });
  backend = await admin.tokens.create({ workspace: WS1, name: unique("backend"), type: "client" });
});
after(async () => {
  await server?.stop();
});

async function accessJwt(secret) {
  const answer = await fetch(`${server.url}/api/v1/token/refresh`, {
    method: "POST",
    headers: { "Content-Type": "application/json" },
    body: JSON.stringify({ refresh: secret }),
  });
  assert.equal(answer.status, 200);
  return (await answer.json()).access;
}

const bearer = (secret) => ({ Authorization: `Bearer ${secret}` });

/** An Express app with the middleware, listening on a random port. */
async function expressApp(options) {
  const app = express();
  app.get("/reports", expressToken({ ...options, scopes: ["projects:read"] }), (req, res) => {
    res.json({ identity: res.locals.latchkey, same: req.latchkey === res.locals.latchkey });
  });
  app.post("/reports", expressToken({ ...options, scopes: ["projects:write"] }), (_req, res) => {
    res.status(201).json({ ok: true });
  });
  app.get("/backend-only", expressToken({ ...options, types: ["client"] }), (_req, res) => res.json({ ok: true }));
  const listener = await new Promise((resolve) => {
    const l = app.listen(0, "127.0.0.1", () => resolve(l));
  });
  const { port } = listener.address();
  return {
    url: `http://127.0.0.1:${port}`,
    close: () => new Promise((resolve) => listener.close(resolve)),
  };
}

for (const mode of ["verify", "jwt"]) {
  test(`express (${mode}): identity, scopes, types, bad and revoked tokens`, async () => {
    const log = recordingFetch();
    const verifier = new TokenVerifier({
      url: server.url,
      jwt: mode === "jwt",
      issuer: PUBLIC_URL,
      clientOptions: { fetch: log.fetch },
    });
    const app = await expressApp({ verifier });
    try {
      const presented = mode === "jwt" ? await accessJwt(reader.token) : reader.token;
      const ok = await fetch(`${app.url}/reports`, { headers: bearer(presented) });
      assert.equal(ok.status, 200);
      const { identity, same } = await ok.json();
      assert.equal(same, true);
      assert.equal(identity.token_id, reader.id);
      assert.equal(identity.type, "personal");
      assert.equal(identity.owner_id, reader.owner_id);
      assert.equal(identity.workspace_id, reader.workspace_id);
      assert.deepEqual(identity.scopes, ["projects:read"]);
      assert.equal(identity.via, mode);
      if (mode === "jwt") {
        assert.equal(log.requests.filter((r) => r.path === "/api/v1/tokens/verify").length, 0, "no round trip");
        assert.equal(log.requests.filter((r) => r.path === "/.well-known/jwks.json").length, 1);
        await fetch(`${app.url}/reports`, { headers: bearer(presented) });
        assert.equal(log.requests.filter((r) => r.path === "/.well-known/jwks.json").length, 1, "keys cached");
      }

      const denied = await fetch(`${app.url}/reports`, { method: "POST", headers: bearer(presented) });
      assert.equal(denied.status, 403);
      assert.equal((await denied.json()).error.code, "insufficient_scope");
      assert.match(denied.headers.get("www-authenticate"), /error="insufficient_scope".*scope="projects:write"/);
      const writes = await fetch(`${app.url}/reports`, {
        method: "POST",
        headers: bearer(mode === "jwt" ? await accessJwt(writer.token) : writer.token),
      });
      assert.equal(writes.status, 201);

      const wrongType = await fetch(`${app.url}/backend-only`, { headers: bearer(presented) });
      assert.equal(wrongType.status, 403);
      assert.equal((await fetch(`${app.url}/backend-only`, { headers: { "X-API-Key": backend.token } })).status, 200);

      const missing = await fetch(`${app.url}/reports`);
      assert.equal(missing.status, 401);
      assert.equal((await missing.json()).error.code, "unauthenticated");
      assert.match(missing.headers.get("www-authenticate"), /^Bearer/);
      for (const bad of [makeToken(), "lkp_typo", `${presented.slice(0, -3)}abc`]) {
        const refused = await fetch(`${app.url}/reports`, { headers: bearer(bad) });
        assert.equal(refused.status, 401, bad);
        assert.equal((await refused.json()).error.code, "invalid_token");
      }
    } finally {
      await app.close();
    }
  });
}

test("express (verify): a revoked token fails on its next request; Latchkey away fails closed", async () => {
  const soon = await admin.tokens.create({ workspace: WS1, name: unique("soon-revoked"), scopes: ["projects:read"] });
  const app = await expressApp({ url: server.url });
  try {
    assert.equal((await fetch(`${app.url}/reports`, { headers: bearer(soon.token) })).status, 200);
    await admin.tokens.revoke(soon.id);
    const refused = await fetch(`${app.url}/reports`, { headers: bearer(soon.token) });
    assert.equal(refused.status, 401);
    assert.match(refused.headers.get("www-authenticate"), /revoked/);
  } finally {
    await app.close();
  }
  const away = await expressApp({ url: "http://127.0.0.1:9", clientOptions: { maxRetries: 0 } });
  try {
    const answer = await fetch(`${away.url}/reports`, { headers: bearer(makeToken()) });
    assert.equal(answer.status, 503);
    assert.equal((await answer.json()).error.code, "unavailable");
  } finally {
    await away.close();
  }
});

test("jwt mode: a JWT for another issuer or with a forged signature is refused", async () => {
  const wrongIssuer = new TokenVerifier({ url: server.url, jwt: true, issuer: "https://other.example" });
  const jwt = await accessJwt(reader.token);
  const header = () => `Bearer ${jwt}`;
  const result = await wrongIssuer.check((n) => (n === "authorization" ? header() : undefined), {});
  assert.equal(result.ok, false);
  assert.equal(result.refusal.status, 401);
  const [h, p] = jwt.split(".");
  const claims = JSON.parse(Buffer.from(p, "base64url").toString());
  claims.scp = ["admin"];
  const forged = `${h}.${Buffer.from(JSON.stringify(claims)).toString("base64url")}.${jwt.split(".")[2]}`;
  const verifier = new TokenVerifier({ url: server.url, jwt: true, issuer: PUBLIC_URL });
  const genuine = await verifier.check((n) => (n === "authorization" ? `Bearer ${jwt}` : undefined));
  assert.equal(genuine.ok, true);
  const check = await verifier.check((n) => (n === "authorization" ? `Bearer ${forged}` : undefined));
  assert.equal(check.ok, false);
  assert.match(check.refusal.challenge, /bad_signature/);
});

test("hono: identity in c.get('latchkey'), scopes, refusals", async () => {
  for (const jwt of [false, true]) {
    const app = new Hono();
    const verifier = new TokenVerifier({ url: server.url, jwt, issuer: PUBLIC_URL });
    app.get("/reports", honoToken({ verifier, scopes: ["projects:read"] }), (c) => c.json(c.get("latchkey")));
    app.post("/reports", honoToken({ verifier, scopes: ["projects:write"] }), (c) => c.json({ ok: true }, 201));
    const presented = jwt ? await accessJwt(reader.token) : reader.token;
    const ok = await app.request("/reports", { headers: bearer(presented) });
    assert.equal(ok.status, 200);
    const identity = await ok.json();
    assert.equal(identity.token_id, reader.id);
    assert.equal(identity.via, jwt ? "jwt" : "verify");
    const denied = await app.request("/reports", { method: "POST", headers: bearer(presented) });
    assert.equal(denied.status, 403);
    assert.equal((await denied.json()).error.code, "insufficient_scope");
    const missing = await app.request("/reports");
    assert.equal(missing.status, 401);
    assert.match(missing.headers.get("www-authenticate"), /^Bearer/);
    const bad = await app.request("/reports", { headers: { "X-API-Key": makeToken() } });
    assert.equal(bad.status, 401);
    assert.equal((await bad.json()).error.code, "invalid_token");
  }
});
