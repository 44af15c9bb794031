// The cutover's and the runbook's policy builders, pure: plain documents, no mocks.
import assert from "node:assert/strict";
import { test } from "node:test";

import { itemGrants, parametersRead, SECURE } from "../components/functions";
import { DATABASE_FUNCTIONS, databaseRole } from "../components/parameters";
import { cutoverCalls, isWildcardAction, ITEM_FAMILIES, runbookPolicy } from "../components/iam";

test("cutoverCalls: writes-to is the one parameter written; DescribeAlarms on the named alarms only; no wildcard", () => {
  const statements = cutoverCalls({
    writesToParameterArn: "arn:aws:ssm:us-east-1:1:parameter/migration/app/s/writes-to",
    stableAlarmArns: ["arn:aws:cloudwatch:us-east-1:1:alarm:app-5xx-rate-s"],
  });
  assert.deepEqual(statements.map((st) => [st.Action, st.Resource]), [
    [["ssm:PutParameter"], ["arn:aws:ssm:us-east-1:1:parameter/migration/app/s/writes-to"]],
    [["cloudwatch:DescribeAlarms"], ["arn:aws:cloudwatch:us-east-1:1:alarm:app-5xx-rate-s"]],
  ]);
  assert.ok(statements.every((st) => st.Action.every((a) => !isWildcardAction(a)) && !st.Resource.includes("*")));
});

test("the cutover's items: MIGRATION read and written (no DeleteItem, no Scan), FAILOVER and VALIDATION#* read only", () => {
  const grants = itemGrants("cutover");
  const by = (family: string) => grants.filter((g) => g.families.includes(family)).flatMap((g) => g.actions).sort();
  assert.deepEqual(by(ITEM_FAMILIES.migration), ["dynamodb:ConditionCheckItem", "dynamodb:GetItem", "dynamodb:PutItem", "dynamodb:Query", "dynamodb:UpdateItem"]);
  assert.deepEqual(by(ITEM_FAMILIES.failover), ["dynamodb:GetItem"]);
  assert.deepEqual(by(ITEM_FAMILIES.validation), ["dynamodb:GetItem", "dynamodb:Query"]);
  assert.deepEqual(by(ITEM_FAMILIES.lag), []);
  assert.ok(grants.every((g) => g.families.length === 1));
});

test("the cutover's parameters: its own role's access, the application's role name, the source DSN and the reverse conninfo; not the CA bundle parameter", () => {
  const read = parametersRead("cutover", "s", ["us-east-1"]);
  assert.deepEqual(read, ["database", "users/cutover", "passwords/cutover", "writer-endpoint", "user", "source-admin-dsn", "reverse-conninfo"].map((p) => `db/s/${p}`));
  assert.deepEqual(read.filter((p) => SECURE.test(p)), ["db/s/passwords/cutover", "db/s/source-admin-dsn", "db/s/reverse-conninfo"]);
  assert.ok(!read.includes("db/s/password"), "never the application's password");
  assert.ok(!read.some((p) => p.endsWith("/ca-bundle")), "CUTOVER_DB_CA_FILE is set");
});

test("each database function reads its own role's user and password and no other's; no function reads the application's password", () => {
  for (const fn of DATABASE_FUNCTIONS) {
    const read = parametersRead(fn, "s", ["us-east-1"]);
    const logins = read.filter((p) => /\/(users|passwords)\//.test(p));
    assert.deepEqual(logins, [`db/s/users/${fn}`, `db/s/passwords/${fn}`], fn);
    assert.ok(SECURE.test(`db/s/passwords/${fn}`), `${fn}: the password is a SecureString`);
    assert.ok(!read.includes("db/s/password") && !read.some((p) => /admin-(user|password)$/.test(p)), `${fn}: not the master's or the application's login`);
    assert.equal(databaseRole(fn), `cutover_${fn.replace(/-/g, "_")}`);
  }
  assert.deepEqual(parametersRead("traffic-shifter", "s", ["us-east-1"]), [], "the shifter has no database role");
});

test("runbookPolicy: invoke the functions named, publish to the topic, nothing of the state table", () => {
  const doc = runbookPolicy({ functionArns: ["arn:v", "arn:c", "arn:s"], opsTopicArn: "arn:t", snsKeyArn: "arn:k" });
  assert.deepEqual(doc.Statement.map((st) => [st.Sid, st.Action, st.Resource]), [
    ["Invoke", ["lambda:InvokeFunction"], ["arn:v", "arn:c", "arn:s"]],
    ["Notify", ["sns:Publish"], ["arn:t"]],
    ["EncryptNotifications", ["kms:GenerateDataKey", "kms:Decrypt"], ["arn:k"]],
  ]);
  assert.ok(!JSON.stringify(doc).includes("dynamodb"));
});

test("reconcileCalls: exactly the reconciliation's calls, on this stack's clusters, Aurora's snapshots of them, its own lost-* names and each region's Aurora key through RDS there", async () => {
  const { reconcileCalls, RESOURCE_WILDCARD_ALLOWED } = await import("../components/iam");
  const statements = reconcileCalls({
    suffix: "s",
    regions: ["us-east-1", "eu-west-1"],
    rdsArn: (region, resource) => `arn:aws:rds:${region}:1:${resource}`,
    clusterArns: ["arn:aws:rds:us-east-1:1:cluster:aurora-us-east-1-s", "arn:aws:rds:eu-west-1:1:cluster:aurora-eu-west-1-s"],
    clusterIds: ["aurora-us-east-1-s", "aurora-eu-west-1-s"],
    subnetGroups: ["db-subnets-us-east-1-s", "db-subnets-eu-west-1-s"],
    parameterGroups: ["aurora-params-us-east-1-s", "aurora-params-eu-west-1-s"],
    keyArns: ["arn:aws:kms:us-east-1:1:key/k1", "arn:aws:kms:eu-west-1:1:key/k2"],
  });
  const actions = [...new Set(statements.flatMap((st) => st.Action))].sort();
  // functions/failover/src/old_primary.rs, call for call; the key's two through RDS.
  assert.deepEqual(actions, [
    "kms:CreateGrant", "kms:DescribeKey",
    "rds:AddTagsToResource", "rds:CopyDBClusterSnapshot", "rds:CreateDBInstance", "rds:DeleteDBCluster",
    "rds:DeleteDBClusterSnapshot", "rds:DeleteDBInstance", "rds:DescribeDBClusterSnapshots", "rds:DescribeDBClusters",
    "rds:DescribeDBInstances", "rds:RestoreDBClusterFromSnapshot",
  ]);
  const on = (action: string) => statements.filter((st) => st.Action.includes(action)).flatMap((st) => st.Resource);
  assert.deepEqual(on("rds:CopyDBClusterSnapshot"), [
    "arn:aws:rds:us-east-1:1:cluster-snapshot:rds:unplanned-global-failover-aurora-us-east-1-s-*",
    "arn:aws:rds:eu-west-1:1:cluster-snapshot:rds:unplanned-global-failover-aurora-eu-west-1-s-*",
    "arn:aws:rds:us-east-1:1:cluster-snapshot:cutover-s-lost-*",
    "arn:aws:rds:eu-west-1:1:cluster-snapshot:cutover-s-lost-*",
  ]);
  // Deleting reaches only what the reconciliation creates: never the stack's own clusters.
  for (const del of ["rds:DeleteDBCluster", "rds:DeleteDBInstance", "rds:DeleteDBClusterSnapshot"]) {
    assert.ok(on(del).length > 0 && on(del).every((arn) => /:(cluster|db|cluster-snapshot):cutover-s-lost-\*$/.test(String(arn))), del);
  }
  // The old primary's own cluster is read (where it was, its key), never restored into or deleted.
  assert.deepEqual(on("rds:DescribeDBClusters").filter((arn) => String(arn).includes(":cluster:aurora-")),
    ["arn:aws:rds:us-east-1:1:cluster:aurora-us-east-1-s", "arn:aws:rds:eu-west-1:1:cluster:aurora-eu-west-1-s"]);
  // The restore goes in the old primary's subnet group with its parameter group, in each region.
  const restore = on("rds:RestoreDBClusterFromSnapshot");
  for (const region of ["us-east-1", "eu-west-1"]) {
    assert.ok(restore.includes(`arn:aws:rds:${region}:1:subgrp:db-subnets-${region}-s`), region);
    assert.ok(restore.includes(`arn:aws:rds:${region}:1:cluster-pg:aurora-params-${region}-s`), region);
  }
  assert.ok(!restore.some((arn) => String(arn).includes(":cluster:aurora-")), "never restores over a stack cluster");
  // Each region's key: only CreateGrant and DescribeKey, only through RDS in its own region.
  const keys = statements.filter((st) => st.Action.some((a) => a.startsWith("kms:")));
  assert.deepEqual(keys.map((st) => [st.Sid, st.Action, st.Resource, st.Condition]), [
    ["SnapshotKeyUsEast1", ["kms:CreateGrant", "kms:DescribeKey"], ["arn:aws:kms:us-east-1:1:key/k1"], { StringEquals: { "kms:ViaService": "rds.us-east-1.amazonaws.com" } }],
    ["SnapshotKeyEuWest1", ["kms:CreateGrant", "kms:DescribeKey"], ["arn:aws:kms:eu-west-1:1:key/k2"], { StringEquals: { "kms:ViaService": "rds.eu-west-1.amazonaws.com" } }],
  ]);
  assert.equal(new Set(statements.map((st) => st.Sid)).size, statements.length, "statement ids are unique");
  assert.ok(statements.every((st) => st.Action.every((a) => !isWildcardAction(a))));
  assert.ok(statements.every((st) => !st.Resource.includes("*") || st.Action.every((a) => a in RESOURCE_WILDCARD_ALLOWED)));
});
