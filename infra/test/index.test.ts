// index.ts only reads config and composes: with the stack's config set, it builds the platform.
import assert from "node:assert/strict";
import { test } from "node:test";

import * as pulumi from "@pulumi/pulumi";

import { install, ofType, settle } from "./mocks";

install("index");
pulumi.runtime.setAllConfig({
  "cutover:environmentSuffix": "t3", "cutover:createVpn": "true", "cutover:auroraMaxAcu": "8",
  "cutover:createDms": "true", "cutover:createDmsVpcRole": "false", "cutover:oracleSslMode": "none",
  "cutover:caBundleFile": "test/fixtures/rds-ca.pem",
});

test("index composes the platform from the stack config", async () => {
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  const index = require("../index");
  await settle();
  assert.equal(index.regions.length, 3);
  assert.equal(ofType("cutover:platform:Platform")[0].name, "cutover-t3");
  assert.equal(ofType("aws:rds/globalCluster:GlobalCluster")[0].name, "aurora-global-t3");
  assert.equal(ofType("aws:rds/cluster:Cluster")[0].inputs.serverlessv2ScalingConfiguration.maxCapacity, 8);
  assert.equal(ofType("aws:ec2/vpnConnection:VpnConnection").length, 1);
  assert.equal(ofType("aws:dms/replicationTask:ReplicationTask").length, 1);
  const source = ofType("aws:dms/endpoint:Endpoint").find((e) => e.inputs.endpointType === "source");
  assert.deepEqual([source?.inputs.sslMode, source?.inputs.certificateArn], ["none", undefined], "oracleSslMode=none: plaintext, by choice");
  assert.ok(index.replicationTaskArn);
  assert.equal(ofType("aws:iam/role:Role").filter((r) => r.inputs.name === "dms-vpc-role").length, 0, "createDmsVpcRole=false: the account already has it");
});
