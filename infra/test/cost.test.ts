import assert from "node:assert/strict";
import { test } from "node:test";

import { costTable, defaultUsage, monthlyCost, PRICES, total, usageFor } from "../components/cost";
import { readSettings } from "../config";
import { configFrom } from "./mocks";

const defaults = () => readSettings(configFrom({ environmentSuffix: "cost" }));

test("the default configuration costs under $500 a month", () => {
  const lines = monthlyCost(usageFor(defaults()));
  const sum = total(lines);
  assert.ok(sum < 500, `$${sum} per month`);
  assert.ok(sum > 100, "three regions of NAT, ALB, Aurora and Fargate cannot be nearly free");
  for (const item of ["NAT", "Aurora Serverless v2", "ALB", "Fargate", "KMS", "CloudWatch", "DynamoDB", "Lambda"]) {
    assert.ok(lines.some((l) => l.item.includes(item)), item);
  }
  assert.ok(lines.some((l) => l.item === "Fargate (12 tasks, blue and green, 0.25 vCPU / 0.5 GB)"), "blue and green in three regions");
  assert.ok(lines.some((l) => l.item === "KMS keys (7)"));
});

test("the price follows the configuration: DMS and the VPN add their hourly prices; more capacity costs more", () => {
  const base = total(monthlyCost(usageFor(defaults())));
  const both = monthlyCost(usageFor(readSettings(configFrom({ environmentSuffix: "cost", createDms: true, createVpn: true, oracleCaCertificateFile: "ca.pem" }))));
  assert.ok(both.some((l) => l.item.startsWith("DMS")));
  assert.ok(both.some((l) => l.item.startsWith("Site-to-site VPN")));
  assert.equal(Math.round((total(both) - base) * 100), Math.round(730 * (PRICES.dmsT3MediumHour + PRICES.vpnConnectionHour) * 100));
  const bigger = readSettings(configFrom({ environmentSuffix: "cost", auroraMinAcu: 2, auroraMaxAcu: 8, desiredCount: 4 }));
  assert.ok(total(monthlyCost(usageFor(bigger))) > base + 300);
  assert.ok(total(monthlyCost(defaultUsage(2))) < base, "two regions cost less than three");
});

test("the README table is generated from the same lines, priced on a stated date", () => {
  const lines = monthlyCost(usageFor(defaults()));
  const table = costTable(lines);
  assert.ok(table.startsWith("| item | USD / month |"));
  assert.ok(table.includes(`**${total(lines).toFixed(2)}**`));
  assert.match(PRICES.date, /^\d{4}-\d{2}-\d{2}$/);
});
