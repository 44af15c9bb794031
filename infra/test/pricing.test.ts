// Every resource type the stack declares (everything optional switched on) is priced by a
// cost line or listed as free with a reason: a priced resource added without a price fails.
import assert from "node:assert/strict";
import { before, test } from "node:test";

import { build, install, resources } from "./mocks";

install("pricing");

import { FREE_TYPES, monthlyCost, PRICED_TYPES, usageFor } from "../components/cost";
import { readSettings } from "../config";
import { configFrom } from "./mocks";

const ALL_ON = {
  environmentSuffix: "t6", createDms: true, reverseDms: true, createVpn: true, alertEmail: "oncall@example.com", containerInsights: true,
  caBundleFile: "test/fixtures/rds-ca.pem", oracleCaWalletFile: "test/fixtures/cwallet.sso",
  certificateArns: Object.fromEntries(["us-east-1", "eu-west-1", "ap-southeast-1"].map((r) => [r, `arn:aws:acm:${r}:123456789012:certificate/c`])),
};

before(async () => {
  await build(ALL_ON);
});

test("every declared resource type has a price or a reason it is free", () => {
  const types = [...new Set(resources.map((r) => r.type).filter((t) => !t.startsWith("cutover:")))].sort();
  const unpriced = types.filter((t) => !(t in PRICED_TYPES) && !(t in FREE_TYPES));
  assert.deepEqual(unpriced, [], "add a cost line (PRICED_TYPES) or a reason (FREE_TYPES)");
  for (const t of Object.keys(PRICED_TYPES)) assert.ok(!(t in FREE_TYPES), `${t}: priced or free, not both`);
  for (const t of [...Object.keys(PRICED_TYPES), ...Object.keys(FREE_TYPES)]) assert.ok(types.includes(t), `${t} is still declared`);
});

test("every priced type names a line the model produces, with a cost, for this configuration", () => {
  const lines = monthlyCost(usageFor(readSettings(configFrom(ALL_ON))));
  for (const [type, item] of Object.entries(PRICED_TYPES)) {
    const line = lines.find((l) => l.item.startsWith(item));
    assert.ok(line && line.monthlyUsd > 0, `${type}: "${item}" is a priced line`);
  }
});
