// The cutover's and the runbook's policy builders, pure: plain documents, no mocks.
import assert from "node:assert/strict";
import { test } from "node:test";

import { itemGrants, parametersRead, SECURE } from "../components/functions";
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

test("the cutover's parameters: the database access and its four own, three of them SecureStrings; not the CA bundle parameter", () => {
  const read = parametersRead("cutover", "s", ["us-east-1"]);
  assert.deepEqual(read, ["database", "user", "password", "writer-endpoint", "admin-user", "admin-password", "source-admin-dsn", "reverse-conninfo"].map((p) => `db/s/${p}`));
  assert.deepEqual(read.filter((p) => SECURE.test(p)), ["db/s/password", "db/s/admin-password", "db/s/source-admin-dsn", "db/s/reverse-conninfo"]);
  assert.ok(!read.some((p) => p.endsWith("/ca-bundle")), "CUTOVER_DB_CA_FILE is set");
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
