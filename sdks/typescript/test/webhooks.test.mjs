// client.webhooks against the real server and a real HTTP receiver on loopback: create
// (the secret once), list/get without it, a signed test delivery, the deliveries list with
// attempts, redelivery to a failing receiver, pause, delete; 422 naming the field; members
// refused.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { createHmac } from "node:crypto";
import { createServer } from "node:http";
import { Client, NotFoundError, PermissionDeniedError, ValidationError } from "../dist/index.js";
import { startServer, unique } from "./support/server.mjs";

let server;
let admin;
let receiver;
const received = [];
let answer = 200;

before(async () => {
  server = await startServer({ webhooks: { allow_private_addresses: true, poll_interval_ms: 50, timeout_secs: 5 } });
  admin = new Client(server.url, server.adminToken);
  receiver = createServer((req, res) => {
    const chunks = [];
    req.on("data", (c) => chunks.push(c));
    req.on("end", () => {
      received.push({ path: req.url, headers: req.headers, body: Buffer.concat(chunks).toString("utf8") });
      res.writeHead(answer).end();
    });
  });
  await new Promise((resolve) => receiver.listen(0, "127.0.0.1", resolve));
});
after(async () => {
  await new Promise((resolve) => receiver?.close(resolve));
  await server?.stop();
});

function receiverUrl() {
  return `http://127.0.0.1:${receiver.address().port}/hook`;
}

/** Polls `check` until it returns something truthy (20 s deadline). */
async function eventually(what, check) {
  const deadline = Date.now() + 20_000;
  for (;;) {
    const value = await check();
    if (value) return value;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

/** Standard Webhooks: v1,base64(HMAC-SHA256(secret, "id.timestamp.body")). */
function signatureHolds(secret, request) {
  const key = Buffer.from(secret.slice("whsec_".length), "base64");
  const signed = `${request.headers["webhook-id"]}.${request.headers["webhook-timestamp"]}.${request.body}`;
  const expected = `v1,${createHmac("sha256", key).update(signed).digest("base64")}`;
  return request.headers["webhook-signature"].split(" ").includes(expected);
}

async function all(pages) {
  const out = [];
  for await (const item of pages) out.push(item);
  return out;
}

test("an endpoint gets signed messages, lists its deliveries and redelivers", async () => {
  const created = await admin.webhooks.create({ url: receiverUrl(), events: ["token.created"], description: "ci" });
  assert.match(created.secret, /^whsec_[A-Za-z0-9+/=]+$/);
  assert.equal(Buffer.from(created.secret.slice(6), "base64").length, 32);
  assert.deepEqual(created.events, ["token.created"]);
  assert.equal(created.enabled, true);
  const fetched = await admin.webhooks.get(created.id);
  assert.equal(fetched.secret, undefined);
  assert.equal(fetched.description, "ci");
  const listed = await all(admin.webhooks.list());
  assert.ok(listed.some((w) => w.id === created.id && w.secret === undefined));

  const queued = await admin.webhooks.test(created.id);
  assert.equal(queued.event_type, "webhook.test");
  assert.equal(queued.state, "pending");
  const first = await eventually("the test message", () => received.find((r) => r.headers["webhook-id"] === queued.event_id));
  assert.equal(first.path, "/hook");
  assert.ok(signatureHolds(created.secret, first));
  assert.equal(JSON.parse(first.body).type, "webhook.test");
  const delivered = await eventually("a delivered row", async () => {
    const [d] = (await admin.webhooks.deliveries(created.id)).items;
    return d?.state === "delivered" ? d : undefined;
  });
  assert.equal(delivered.attempts, 1);
  assert.equal(delivered.last_status, 200);
  assert.equal(delivered.next_attempt_at, null);
  assert.equal(delivered.attempt_log.length, 1);

  // A real event: a token created reaches the endpoint, without its secret.
  const token = await admin.tokens.create({ workspace: "Workspace 1", name: unique("hooked"), type: "client" });
  const event = await eventually("token.created", () =>
    received.find((r) => JSON.parse(r.body).type === "token.created"),
  );
  assert.ok(signatureHolds(created.secret, event));
  assert.equal(JSON.parse(event.body).data.token.id, token.id);
  assert.ok(!event.body.includes(token.token));

  // Redelivery to a failing receiver: a new delivery of the same message, its 503 shown.
  answer = 503;
  const again = await admin.webhooks.redeliver(created.id, delivered.id);
  assert.equal(again.event_id, delivered.event_id);
  assert.notEqual(again.id, delivered.id);
  const failing = await eventually("the failed attempt", async () => {
    const rows = await all(admin.webhooks.deliveries(created.id));
    return rows.find((d) => d.id === again.id && d.attempts === 1);
  });
  answer = 200;
  assert.equal(failing.state, "pending");
  assert.equal(failing.last_status, 503);
  assert.equal(failing.last_error, "HTTP 503");
  assert.ok(failing.next_attempt_at > failing.last_attempt_at);
  assert.equal(received.filter((r) => r.headers["webhook-id"] === delivered.event_id).length, 2);

  const paused = await admin.webhooks.update(created.id, { enabled: false, description: null });
  assert.equal(paused.enabled, false);
  assert.equal(paused.description, null);
  await admin.webhooks.delete(created.id);
  await assert.rejects(admin.webhooks.get(created.id), NotFoundError);
});

test("bad input names the field; members are refused", async () => {
  await assert.rejects(admin.webhooks.create({ url: "ftp://example.com/", events: ["token.created"] }), (e) => {
    assert.ok(e instanceof ValidationError);
    assert.equal(e.status, 422);
    assert.equal(e.field, "url");
    return true;
  });
  await assert.rejects(admin.webhooks.create({ url: receiverUrl(), events: [] }), (e) => {
    assert.ok(e instanceof ValidationError);
    assert.equal(e.field, "events");
    return true;
  });
  await assert.rejects(admin.webhooks.create({ url: receiverUrl(), events: ["token.exploded"] }), (e) => {
    assert.ok(e instanceof ValidationError);
    assert.match(e.field, /^events/);
    return true;
  });
  const hook = await admin.webhooks.create({ url: receiverUrl(), events: ["user.deactivated"] });

  const console = new Client({ url: server.url, anonymous: true });
  await console.signIn("admin", server.adminPassword);
  const username = unique("wh-member");
  await console.users.create({ username, password: "a long password 123" });
  const member = new Client({ url: server.url, anonymous: true });
  await member.signIn(username, "a long password 123");
  for (const call of [
    () => member.webhooks.create({ url: receiverUrl(), events: ["token.created"] }),
    () => member.webhooks.list(),
    () => member.webhooks.get(hook.id),
    () => member.webhooks.update(hook.id, { enabled: false }),
    () => member.webhooks.test(hook.id),
    () => member.webhooks.deliveries(hook.id),
    () => member.webhooks.redeliver(hook.id, hook.id),
    () => member.webhooks.delete(hook.id),
  ]) {
    await assert.rejects(call(), PermissionDeniedError);
  }
  assert.equal((await admin.webhooks.get(hook.id)).enabled, true);
  await admin.webhooks.delete(hook.id);
});
