/**
 * Latchkey's token format (DESIGN.md §2), checked offline: `<prefix>_<32 base62><6 base62
 * of CRC32 over the 32>`; prefixes lkp personal, lkl legacy, lkc client, lkf frontend,
 * lka admin.
 */

import type { TokenType } from "./types.js";

const ALPHABET = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
const PREFIXES: Record<string, TokenType> = {
  lkp: "personal",
  lkl: "legacy",
  lkc: "client",
  lkf: "frontend",
  lka: "admin",
};
const SHAPE = /^(lk[plcfa])_([0-9A-Za-z]{32})([0-9A-Za-z]{6})$/;

/** A regular expression matching Latchkey API tokens (for secret scanners and logs). */
export const TOKEN_PATTERN = /\blk[plcfa]_[0-9A-Za-z]{38}\b/g;

let crcTable: Uint32Array | undefined;

function crc32(text: string): number {
  if (crcTable === undefined) {
    crcTable = new Uint32Array(256);
    for (let n = 0; n < 256; n++) {
      let c = n;
      for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
      crcTable[n] = c >>> 0;
    }
  }
  let crc = 0xffffffff;
  for (let i = 0; i < text.length; i++) {
    crc = (crcTable[(crc ^ text.charCodeAt(i)) & 0xff] ?? 0) ^ (crc >>> 8);
  }
  return (crc ^ 0xffffffff) >>> 0;
}

/** The 6-character base62 CRC32 checksum of a token's 32 random characters. */
export function checksum(body: string): string {
  let n = crc32(body);
  let out = "";
  while (n > 0) {
    out = ALPHABET[n % 62] + out;
    n = Math.floor(n / 62);
  }
  return out.padStart(6, "0");
}

/** Whether `token` has a Latchkey token's shape and a correct checksum (it may still not
 * exist or work: ask `client.verify`). */
export function isWellFormed(token: string): boolean {
  const m = SHAPE.exec(token);
  return m !== null && checksum(m[2] ?? "") === m[3];
}

/** The token type a token's prefix names, or `undefined`. */
export function tokenTypeOf(token: string): TokenType | undefined {
  return token[3] === "_" ? PREFIXES[token.slice(0, 3)] : undefined;
}

/** A display hint for a secret, as the server's lists show it (`lkp_…a1B2`). */
export function hintOf(secret: string | undefined): string {
  if (!secret) return "<none>";
  const prefix = secret.slice(0, 3);
  if (secret[3] === "_" && prefix in PREFIXES && secret.length > 12) {
    return `${prefix}_…${secret.slice(-4)}`;
  }
  return "<redacted>";
}
