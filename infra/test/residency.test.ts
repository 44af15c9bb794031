// Data residency: with the default configuration and with everything optional switched on,
// every resource is created through a provider of an allowed region, and no input names
// any other region (no cross-region copy, endpoint, log destination or peer outside it).
import assert from "node:assert/strict";
import { before, test } from "node:test";

import { build, install, resources } from "./mocks";

install("residency");

import { DEFAULT_ALLOWED_REGIONS } from "../config";

const REGION = /\b(?:us|eu|ap|sa|ca|me|af|il|mx|cn|us-gov)-(?:north|south|east|west|central|northeast|southeast|southwest|northwest)-\d\b/g;

before(async () => {
  await build({
    environmentSuffix: "t5", createDms: true, reverseDms: true, createVpn: true, alertEmail: "oncall@example.com",
    caBundleFile: "test/fixtures/rds-ca.pem", oracleCaWalletFile: "test/fixtures/cwallet.sso",
  });
});

test("every resource's provider region is an allowed region", () => {
  const aws = resources.filter((r) => r.type.startsWith("aws:") || r.type === "pulumi:providers:aws");
  assert.ok(aws.length > 100, `${aws.length} resources`);
  for (const r of aws) assert.ok(DEFAULT_ALLOWED_REGIONS.includes(r.region), `${r.type} ${r.name} in ${r.region}`);
});

test("no resource input names a region outside the allowed ones", () => {
  for (const r of resources) {
    const named = new Set(JSON.stringify(r.inputs).match(REGION) ?? []);
    for (const region of named) assert.ok(DEFAULT_ALLOWED_REGIONS.includes(region), `${r.type} ${r.name} names ${region}`);
  }
  assert.deepEqual("arn:aws:sns:us-west-2:1:x eu-central-1".match(REGION), ["us-west-2", "eu-central-1"], "the pattern finds regions");
});
