// DMS without reverseDms: the forward task only, and Aurora without logical replication.
import assert from "node:assert/strict";
import { before, test } from "node:test";

import { build, install, ofType } from "./mocks";

install("forward");

import type { Platform } from "../components/platform";

let platform: Platform;

before(async () => {
  platform = await build({
    environmentSuffix: "t7", createDms: true, caBundleFile: "test/fixtures/rds-ca.pem", oracleCaWalletFile: "test/fixtures/cwallet.sso",
  });
});

test("createDms without reverseDms: one task (full load and CDC), no reverse endpoints, no logical replication on Aurora", () => {
  const tasks = ofType("aws:dms/replicationTask:ReplicationTask");
  assert.deepEqual(tasks.map((t) => [t.inputs.replicationTaskId, t.inputs.migrationType]), [["dms-task-t7", "full-load-and-cdc"]]);
  assert.deepEqual(ofType("aws:dms/endpoint:Endpoint").map((e) => e.inputs.endpointId).sort(), ["dms-source-oracle-t7", "dms-target-aurora-t7"]);
  for (const g of ofType("aws:rds/clusterParameterGroup:ClusterParameterGroup")) {
    assert.deepEqual(g.inputs.parameters.map((p: { name: string }) => p.name), ["rds.force_ssl"], g.region);
  }
  const pattern = JSON.parse(ofType("aws:cloudwatch/eventRule:EventRule").find((r) => r.name.startsWith("dms-task-failure"))?.inputs.eventPattern);
  assert.deepEqual(pattern.resources, ["arn:aws:dms:us-east-1:123456789012:task:TASKID0123"]);
  assert.equal(platform.reverseReplicationTaskArn, undefined);
});
