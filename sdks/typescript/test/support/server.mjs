// Test harness: the real `latchkey` binary on a random port over a fresh SQLite file, as the
// Python SDK's conftest starts it. The binary comes from LATCHKEY_BIN, else
// <repo>/target/debug/latchkey (scripts/test.sh builds it first).
import { spawn } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync, existsSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve, dirname } from "node:path";
import { fileURLToPath } from "node:url";
import { randomInt, randomUUID } from "node:crypto";
import { crc32 } from "node:zlib";

const REPO = resolve(dirname(fileURLToPath(import.meta.url)), "../../../..");
const BASE62 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
export const ADMIN_PASSWORD = "preset admin password 123";

/** A well-formed token (valid checksum) that no server has issued. */
export function makeToken(prefix = "lkp") {
  let body = "";
  for (let i = 0; i < 32; i++) body += BASE62[randomInt(62)];
  let n = crc32(body) >>> 0; // zlib's CRC32, independent of the SDK's own
  let digits = "";
  while (n > 0) {
    digits = BASE62[n % 62] + digits;
    n = Math.floor(n / 62);
  }
  return `${prefix}_${body}${digits.padStart(6, "0")}`;
}

export function unique(name) {
  return `${name}-${randomUUID().slice(0, 8)}`;
}

function toml(sections) {
  let text = "";
  for (const [key, value] of Object.entries(sections)) {
    if (typeof value !== "object") text += `${key} = ${JSON.stringify(value)}\n`;
  }
  for (const [section, values] of Object.entries(sections)) {
    if (typeof values !== "object") continue;
    text += `[${section}]\n`;
    for (const [key, value] of Object.entries(values)) text += `${key} = ${JSON.stringify(value)}\n`;
  }
  return text;
}

/** Starts a server; `stop()` ends it (SIGTERM) and removes its files. */
export async function startServer(config = {}) {
  const binary = process.env.LATCHKEY_BIN ?? join(REPO, "target", "debug", "latchkey");
  if (!existsSync(binary)) throw new Error(`latchkey binary not found at ${binary}: build it first`);
  const dir = mkdtempSync(join(tmpdir(), "latchkey-ts-"));
  const sections = {
    passwords: { memory_kib: 64, iterations: 1 },
    throttle: { sign_in_attempts: 1000, failed_token_checks: 10000 },
    ...config,
  };
  writeFileSync(join(dir, "latchkey.toml"), toml(sections));
  const adminToken = makeToken("lkp");
  const env = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith("LATCHKEY_")));
  Object.assign(env, {
    LATCHKEY_ADMIN_PASSWORD: ADMIN_PASSWORD,
    LATCHKEY_ADMIN_TOKEN: adminToken,
    LATCHKEY_CONFIG: join(dir, "latchkey.toml"),
    LATCHKEY_LOG_FORMAT: "text",
    RUST_LOG: "info",
  });
  const child = spawn(binary, ["serve", "--listen", "127.0.0.1:0", "--data-dir", join(dir, "data")], {
    env,
    stdio: ["ignore", "ignore", "pipe"],
  });
  const lines = [];
  const address = await new Promise((resolveAddress, reject) => {
    const timer = setTimeout(() => reject(new Error(`no address announced:\n${lines.join("\n")}`)), 60_000);
    let buffered = "";
    child.stderr.on("data", (chunk) => {
      buffered += chunk.toString();
      let newline;
      while ((newline = buffered.indexOf("\n")) >= 0) {
        const line = buffered.slice(0, newline);
        buffered = buffered.slice(newline + 1);
        lines.push(line);
        const match = /latchkey listening.*address=(\S+)/.exec(line);
        if (match) {
          clearTimeout(timer);
          resolveAddress(match[1]);
        }
      }
    });
    child.on("exit", (code) => {
      clearTimeout(timer);
      reject(new Error(`latchkey exited (${code}):\n${lines.join("\n")}`));
    });
  });
  const url = `http://${address}`;
  const deadline = Date.now() + 60_000;
  for (;;) {
    try {
      if ((await fetch(`${url}/readyz`)).status === 200) break;
    } catch {}
    if (Date.now() > deadline) throw new Error(`never ready:\n${lines.join("\n")}`);
    await new Promise((r) => setTimeout(r, 50));
  }
  // Tests create many tokens for the admin: lift the caps.
  const auth = { Authorization: `Bearer ${adminToken}`, "Content-Type": "application/json" };
  const me = await (await fetch(`${url}/api/v1/me`, { headers: auth })).json();
  await fetch(`${url}/api/v1/orgs/${me.org.id}/token-settings`, {
    method: "PATCH",
    headers: auth,
    body: JSON.stringify({ max_tokens_per_user: null }),
  });
  await fetch(`${url}/api/v1/instance/settings`, {
    method: "PATCH",
    headers: auth,
    body: JSON.stringify({ max_active_tokens: null }),
  });
  return {
    url,
    adminToken,
    adminPassword: ADMIN_PASSWORD,
    lines,
    async stop() {
      if (child.exitCode === null) {
        const exited = new Promise((r) => child.once("exit", r));
        child.kill("SIGTERM");
        await exited;
      }
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

/** A fetch that records what the client sent (the server stays real). */
export function recordingFetch() {
  const requests = [];
  const wrapped = async (input, init = {}) => {
    const url = new URL(typeof input === "string" ? input : input.url);
    const headers = new Headers(init.headers);
    requests.push({ method: init.method ?? "GET", path: url.pathname, authorization: headers.get("authorization") });
    return fetch(input, init);
  };
  return { fetch: wrapped, requests };
}
