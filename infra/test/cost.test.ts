import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { test } from "node:test";

import { costTable, defaultUsage, lambdaUsage, monthlyCost, PRICES, total, usageFor } from "../components/cost";
import { MEMORY_MB } from "../components/functions";
import { readSettings } from "../config";
import { configFrom } from "./mocks";

const settings = (values: Record<string, unknown> = {}) => readSettings(configFrom({ environmentSuffix: "cost", ...values }));
const defaults = () => monthlyCost(usageFor(settings()));

// Once not met ($542.09 with both colours at full count all month, a todo): the idle colour at
// zero tasks outside a release (issue 17) brings the default under.
test("the default configuration costs under $500 a month", () => {
  const sum = total(defaults());
  assert.ok(sum < 500, `$${sum} per month`);
});

test("the default configuration's cost: every line priced per region, the new lines present", () => {
  const lines = defaults();
  const sum = total(lines);
  assert.ok(sum > 100 && sum < 600, `$${sum}: three regions of NAT, ALB, Aurora and Fargate`);
  for (const item of ["NAT", "Public IPv4", "Aurora Serverless v2", "ALB", "Fargate", "KMS", "CloudWatch", "DynamoDB", "Lambda"]) {
    assert.ok(lines.some((l) => l.item.includes(item) && l.monthlyUsd > 0), item);
  }
  for (const l of lines) {
    assert.deepEqual(Object.keys(l.byRegion), ["us-east-1", "eu-west-1", "ap-southeast-1"], l.item);
    assert.equal(l.monthlyUsd, Math.round(Object.values(l.byRegion).reduce((a, b) => a + b, 0) * 100) / 100, l.item);
  }
  const line = (prefix: string) => lines.find((l) => l.item.startsWith(prefix)) as (typeof lines)[number];
  for (const item of ["NAT", "Aurora Serverless v2", "ALBs", "Fargate"]) {
    const r = line(item).byRegion;
    assert.ok(r["ap-southeast-1"] > r["us-east-1"], `${item}: Singapore costs more than Virginia`);
    // Fargate lists the same price in Ireland as in Virginia
    assert.ok(item === "Fargate" ? r["eu-west-1"] === r["us-east-1"] : r["eu-west-1"] > r["us-east-1"], `${item}: Ireland`);
  }
  assert.deepEqual(line("Public IPv4").byRegion, { "us-east-1": 10.95, "eu-west-1": 10.95, "ap-southeast-1": 10.95 }, "3 addresses x $0.005 x 730 h");
  for (const r of ["eu-west-1", "ap-southeast-1"]) {
    assert.ok(line("Lambda").byRegion[r] > 0, `${r}: its own lag-probe and failover`);
    assert.ok(line("Lambda").byRegion[r] < line("Lambda").byRegion["us-east-1"], `${r}: not the validator or the shifter`);
    assert.ok(line("DynamoDB").byRegion[r] > 0, `${r}: the global table's replica takes every write`);
    assert.ok(line("CloudWatch").byRegion[r] > 5, `${r}: its probe's metrics, its writer and lag alarms, its functions' logs`);
  }
  assert.ok(line("DynamoDB").item.includes("replicated"));
  assert.equal(line("Container Insights").monthlyUsd, 0, "off by default");
  assert.ok(line("Fargate").item.includes("ARM64"));
});

test("Lambda is priced at the functions' configured memory: the control plane in every region, the rest in the primary", () => {
  const base = lambdaUsage();
  assert.equal(Math.round(base.controlPlane.gbSeconds), Math.round(43200 * 55 * 0.25 + 600 * 0.25 + (43200 / 5) * 0.25), "lag-probe at 256 MB dominates, in each region (failover: ten minutes and its sync every five)");
  assert.equal(Math.round(base.primary.gbSeconds), Math.round((43200 + 43200 / 5) * 0.25 + 30 * 300 * 1 + 100 * 30 * 0.25), "the shifter (tick every minute, reconcile every five), the validator and the cutover");
  const doubled = lambdaUsage(Object.fromEntries(Object.entries(MEMORY_MB).map(([f, mb]) => [f, mb * 2])));
  assert.equal(Math.round(doubled.controlPlane.gbSeconds + doubled.primary.gbSeconds), Math.round((base.controlPlane.gbSeconds + base.primary.gbSeconds) * 2));
});

test("the global table: each region pays its own writes and, as replicated writes, every other region's, at its own price", () => {
  const u = defaultUsage();
  const lines = monthlyCost(u);
  const dynamo = lines.find((l) => l.item.startsWith("DynamoDB")) as (typeof lines)[number];
  const all = 3 * u.dynamodbMillionWritesPerRegion + u.primaryDynamodbMillionWrites;
  for (const r of ["eu-west-1", "ap-southeast-1"]) {
    const p = PRICES.regions[r];
    const expected = u.dynamodbMillionWritesPerRegion * p.dynamodbWritePerMillion + (all - u.dynamodbMillionWritesPerRegion) * p.dynamodbReplicatedWritePerMillion;
    assert.equal(dynamo.byRegion[r], Math.round(expected * 100) / 100, r);
  }
  const single = monthlyCost(defaultUsage(["us-east-1"]));
  assert.ok((single.find((l) => l.item.startsWith("DynamoDB"))?.monthlyUsd as number) < dynamo.monthlyUsd / 3, "one region: no replicated writes");
});

test("the price follows the configuration: DMS (single-AZ) and the VPN add their hourly prices; more capacity, x86 and Container Insights cost more", () => {
  const base = total(defaults());
  const both = monthlyCost(usageFor(settings({ createDms: true, createVpn: true, oracleCaWalletFile: "cwallet.sso" })));
  assert.ok(both.some((l) => l.item === "DMS replication instance (dms.t3.medium, single-AZ)"));
  assert.ok(both.some((l) => l.item.startsWith("Site-to-site VPN")));
  const us = PRICES.regions["us-east-1"];
  assert.equal(Math.round((total(both) - base) * 100), Math.round(730 * (us.dmsT3MediumHour + us.vpnConnectionHour) * 100));
  assert.ok(total(monthlyCost(usageFor(settings({ auroraMinAcu: 2, auroraMaxAcu: 8, desiredCount: 4 })))) > base + 300);
  assert.ok(total(monthlyCost(defaultUsage(["us-east-1", "eu-west-1"]))) < base, "two regions cost less than three");
  assert.ok(total(monthlyCost(usageFor(settings({ taskArchitecture: "X86_64" })))) > base, "x86 Fargate costs more");
  const insights = monthlyCost(usageFor(settings({ containerInsights: true })));
  assert.ok(insights.find((l) => l.item.startsWith("Container Insights"))?.monthlyUsd as number > 0);
  assert.throws(() => monthlyCost(defaultUsage(["us-east-1", "eu-central-1"])), /no prices for eu-central-1/);
});

test("the README table is generated from the same lines, a column per region, priced on a stated date", () => {
  const lines = defaults();
  const table = costTable(lines);
  assert.ok(table.startsWith("| item | us-east-1 | eu-west-1 | ap-southeast-1 | USD / month |"));
  assert.ok(table.includes(`**${total(lines).toFixed(2)}**`));
  assert.match(PRICES.date, /^\d{4}-\d{2}-\d{2}$/);
  // The table in infra/README.md is what `npm run cost` prints now, not an older run of it.
  const readme = readFileSync(join(__dirname, "..", "..", "README.md"), "utf8");
  assert.ok(readme.includes(table), `infra/README.md holds \`npm run cost\`'s table:\n${table}`);
  assert.ok(readme.includes(`It is **$${total(lines).toFixed(2)}, under the $500 target**`), "and quotes its total");
});

test("the root README and the infra README's known gaps quote the modelled total npm run cost prints", () => {
  const sum = `$${total(defaults()).toFixed(2)}`;
  const read = (path: string) => readFileSync(join(__dirname, "..", "..", ...path.split("/")), "utf8");
  assert.ok(read("../README.md").includes(`the default is modelled at ${sum} a month`), `README.md: ${sum}`);
  assert.ok(read("README.md").includes(`the default is modelled at ${sum}, $${(500 - total(defaults())).toFixed(2)} under the $500`), `infra/README.md: ${sum}`);
});
