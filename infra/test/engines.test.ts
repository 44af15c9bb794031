// The README's Node (20.17+, the oldest release every locked package accepts) installs the
// locked tree without an EBADENGINE warning: every package's declared engine accepts it.
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { test } from "node:test";

// eslint-disable-next-line @typescript-eslint/no-require-imports
const semver: { satisfies(version: string, range: string): boolean; minVersion(range: string): { version: string } } = require("semver");

const root = join(__dirname, "..", "..");
const lock = JSON.parse(readFileSync(join(root, "package-lock.json"), "utf8"));
const pkg = JSON.parse(readFileSync(join(root, "package.json"), "utf8"));

test("every locked package accepts the oldest Node package.json allows (no EBADENGINE on Node 20)", () => {
  const oldest = semver.minVersion(pkg.engines.node).version;
  assert.match(oldest, /^20\./, "Node 20, as the README says and this machine has");
  const refused = Object.entries(lock.packages as Record<string, { engines?: { node?: string } | string[] }>)
    .filter(([, p]) => !Array.isArray(p.engines) && typeof p.engines?.node === "string" && !semver.satisfies(oldest, p.engines.node))
    .map(([name, p]) => `${name} wants node ${(p.engines as { node: string }).node}`);
  assert.deepEqual(refused, []);
  assert.ok(semver.satisfies(process.version, pkg.engines.node), `this Node (${process.version}) is one the project supports`);
  assert.match(readFileSync(join(root, "README.md"), "utf8"), /Node\.js 20\.17/);
});
