// tests/env/node.sh, the Node a fresh machine gets for the infra steps: its decisions, run in a
// sandbox whose PATH holds a fake `node`, `npm` and `apt-get` (no download, no install).
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, test } from "node:test";

const repo = join(__dirname, "..", "..", "..");
const script = join(repo, "tests", "env", "node.sh");
const sandboxes: string[] = [];
after(() => sandboxes.forEach((d) => rmSync(d, { recursive: true, force: true })));

/** What the script may find on PATH besides the fakes. */
const TOOLS = ["bash", "sh", "sed", "head", "uname", "mktemp", "rm", "mkdir", "tar", "gzip", "mv", "dirname", "chmod", "cat"];

const fake = (path: string, body: string) => {
  writeFileSync(path, `#!/bin/sh\n${body}\n`);
  chmodSync(path, 0o755);
};
const nodePrinting = (version: string) => `echo ${version}`;

/**
 * Runs node.sh with `node` printing `version` (or no node at all). The fake npm's `pack` makes a
 * tarball like the registry's (package/bin/node printing v22.23.5); its global install puts an
 * npm 10 in the prefix; the fake apt-get installs Debian 12's node 18 and npm.
 */
function run(version: string | undefined) {
  const dir = mkdtempSync(join(tmpdir(), "cutover-node-"));
  sandboxes.push(dir);
  const bin = join(dir, "bin");
  mkdirSync(bin);
  for (const tool of TOOLS) {
    const found = spawnSync("sh", ["-c", `command -v ${tool}`], { encoding: "utf8" }).stdout.trim();
    assert.ok(found, `${tool} on this machine`);
    symlinkSync(found, join(bin, tool));
  }
  const log = join(dir, "calls.log");
  writeFileSync(log, "");
  if (version !== undefined) fake(join(bin, "node"), nodePrinting(version));
  fake(join(bin, "npm"), [
    `echo "npm $*" >> ${log}`,
    `case "$1" in`,
    `  pack) name="\${2%@*}"; mkdir -p p/package/bin; printf '#!/bin/sh\\necho v22.23.5\\n' > p/package/bin/node;`,
    `        chmod +x p/package/bin/node; tar -czf "$name-22.23.5.tgz" -C p package; rm -rf p ;;`,
    `  install) while [ "$1" != --prefix ]; do shift; done; mkdir -p "$2/bin"; printf '#!/bin/sh\\necho 10.9.3\\n' > "$2/bin/npm"; chmod +x "$2/bin/npm" ;;`,
    `  --version) echo 9.2.0 ;;`,
    `esac`,
  ].join("\n"));
  fake(join(bin, "apt-get"), [
    `echo "apt-get $*" >> ${log}`,
    `if [ "$1" = install ]; then printf '#!/bin/sh\\n${nodePrinting("v18.20.4")}\\n' > ${bin}/node; chmod +x ${bin}/node; fi`,
  ].join("\n"));
  const tools = join(dir, "tools");
  const out = spawnSync(join(bin, "bash"), [script], { encoding: "utf8", env: { PATH: bin, CUTOVER_TOOLS: tools, HOME: dir } });
  const local = join(tools, "node", "bin");
  const localVersion = existsSync(join(local, "node")) ? spawnSync(join(local, "node"), ["--version"], { encoding: "utf8" }).stdout.trim() : undefined;
  return { status: out.status, stderr: out.stderr, calls: readFileSync(log, "utf8").trim().split("\n").filter((l) => l !== ""), localVersion, npm: existsSync(join(local, "npm")) };
}

const arch = process.arch === "arm64" ? "arm64" : "x64";
const download = [
  `npm pack node-linux-${arch}@22 --silent`,
  /^npm install --global --prefix .*\/tools\/node --no-audit --no-fund --loglevel=error npm@10$/,
];
const assertDownloaded = (r: ReturnType<typeof run>) => {
  assert.equal(r.status, 0, r.stderr);
  const calls = r.calls.filter((c) => c.startsWith("npm "));
  assert.equal(calls[0], download[0]);
  assert.match(calls[1], download[1] as RegExp);
  assert.equal(r.localVersion, "v22.23.5", "the registry's Node 22 in .tools/node");
  assert.ok(r.npm, "npm 10 beside it");
  assert.match(r.stderr, /using .*tools\/node\/bin\/node v22\.23\.5, npm 10\.9\.3/);
};

test("node.sh: a Node at or above engines.node (20.17) is used as it is, nothing installed", () => {
  for (const version of ["v20.17.0", "v20.20.2", "v21.0.0", "v22.1.0"]) {
    const r = run(version);
    assert.equal(r.status, 0, `${version}: ${r.stderr}`);
    assert.deepEqual(r.calls, [], `${version}: no download, no apt-get`);
    assert.equal(r.localVersion, undefined);
    assert.match(r.stderr, new RegExp(`using .*bin/node ${version.replace(/\./g, "\\.")} \\(infra needs >= 20\\.17\\)`));
  }
});

test("node.sh: an older Node (Debian 12's 18, or 20.16) gets the npm registry's Node 22 and npm 10 in .tools/node", () => {
  for (const version of ["v18.20.4", "v20.16.9"]) {
    const r = run(version);
    assertDownloaded(r);
    assert.ok(!r.calls.some((c) => c.startsWith("apt-get")), `${version}: node exists, no apt-get`);
    assert.match(r.stderr, new RegExp(`is ${version.replace(/\./g, "\\.")}, older than 20\\.17`));
  }
});

test("node.sh: no Node at all: Debian's nodejs and npm first, then (18 is too old) the registry's Node 22", () => {
  const r = run(undefined);
  assert.deepEqual(r.calls.filter((c) => c.startsWith("apt-get")), ["apt-get update -qq", "apt-get install -y -qq nodejs npm"]);
  assertDownloaded(r);
});
