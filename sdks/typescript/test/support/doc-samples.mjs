// Writes every ```ts block of docs/sdk-typescript.md to test/.docs/sample-N.ts (imports
// hoisted, the rest in an async function taking CLUSTER_URL and API_TOKEN), for `npm run
// typecheck`; the SDK's own imports point at src/.
import { mkdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";

const here = dirname(fileURLToPath(import.meta.url));
const doc = readFileSync(resolve(here, "../../../../docs/sdk-typescript.md"), "utf8");
const out = resolve(here, "../.docs");
rmSync(out, { recursive: true, force: true });
mkdirSync(out, { recursive: true });
const blocks = [...doc.matchAll(/```ts\n([\s\S]*?)```/g)].map((m) => m[1]);
if (blocks.length < 3) throw new Error(`expected ts samples in docs/sdk-typescript.md, found ${blocks.length}`);
blocks.forEach((block, i) => {
  const lines = block.split("\n");
  const imports = lines
    .filter((l) => l.startsWith("import "))
    .map((l) => l.replace(/"latchkey(\/[a-z]+)?"/, (_m, sub) => `"../../src/${sub ? sub.slice(1) : "index"}.js"`));
  const body = lines.filter((l) => !l.startsWith("import ")).map((l) => `  ${l}`);
  const text = [
    ...imports,
    "",
    `export async function sample${i + 1}(CLUSTER_URL: string, API_TOKEN: string): Promise<void> {`,
    "  void CLUSTER_URL;",
    "  void API_TOKEN;",
    ...body,
    "}",
    "",
  ].join("\n");
  writeFileSync(join(out, `sample-${i + 1}.ts`), text);
});
console.log(`docs/sdk-typescript.md: ${blocks.length} ts samples to type-check`);
