import assert from "node:assert/strict";
import { test } from "node:test";

import { costTable, defaultUsage, monthlyCost, PRICES, total } from "../components/cost";

test("the default configuration costs under $500 a month", () => {
  const lines = monthlyCost(defaultUsage());
  const sum = total(lines);
  assert.ok(sum < 500, `$${sum} per month`);
  assert.ok(sum > 100, "three regions of NAT, ALB, Aurora and Fargate cannot be nearly free");
  for (const item of ["NAT", "Aurora Serverless v2", "ALB", "Fargate", "KMS", "CloudWatch", "DynamoDB", "Lambda"]) {
    assert.ok(lines.some((l) => l.item.includes(item)), item);
  }
});

test("DMS and the VPN add their hourly prices; more capacity costs more", () => {
  const base = total(monthlyCost(defaultUsage()));
  const withBoth = monthlyCost(defaultUsage(3, 2, true, true));
  assert.ok(withBoth.some((l) => l.item.startsWith("DMS")));
  assert.ok(withBoth.some((l) => l.item.startsWith("Site-to-site VPN")));
  assert.equal(Math.round((total(withBoth) - base) * 100) / 100, Math.round(730 * (PRICES.dmsT3MediumHour + PRICES.vpnConnectionHour) * 100) / 100);
  assert.ok(total(monthlyCost(defaultUsage(3, 6))) > base);
});

test("the README table is generated from the same lines", () => {
  const lines = monthlyCost(defaultUsage());
  const table = costTable(lines);
  assert.ok(table.startsWith("| item | USD / month |"));
  assert.ok(table.includes(`**${total(lines).toFixed(2)}**`));
  assert.equal(PRICES.date, "2026-11-01");
});
