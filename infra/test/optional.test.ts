// The platform with DMS and the VPN switched on.
import assert from "node:assert/strict";
import { before, test } from "node:test";

import { calls, install, isSecret, ofType, one, plain, settle } from "./mocks";

install("optional");

import { readSettings } from "../config";
import { tableMappings } from "../components/migration";
import { createPlatform, PlatformOutputs } from "../components/platform";

let out: PlatformOutputs;

before(async () => {
  const values: Record<string, unknown> = {
    createDms: true, createVpn: true, customerGatewayIp: "198.51.100.7",
    oracleInstantClientLayerArn: "arn:aws:lambda:us-east-1:123456789012:layer:oracle-instant-client:3",
    alertEmail: "oncall@example.com",
  };
  out = createPlatform(readSettings({
    require: () => "t2",
    get: (k) => values[k] as string | undefined,
    getNumber: () => undefined,
    getBoolean: (k) => values[k] as boolean | undefined,
    getObject: () => undefined,
  }));
  await settle();
});

test("createDms: replication instance, Oracle source, Aurora target, full load and CDC", () => {
  assert.equal(ofType("aws:dms/replicationInstance:ReplicationInstance", "us-east-1").length, 1);
  const source = one("aws:dms/endpoint:Endpoint", "dms-source-oracle");
  assert.equal(source.inputs.engineName, "oracle");
  assert.equal(source.inputs.serverName, "onprem-oracle.example.com");
  assert.equal(plain(source.inputs.password), "oracle-secret", "from an SSM SecureString, not config");
  assert.ok(isSecret(source.inputs.password));
  assert.ok(calls.includes("aws:ssm/getParameter:getParameter"));
  const target = one("aws:dms/endpoint:Endpoint", "dms-target-aurora");
  assert.equal(target.inputs.engineName, "aurora-postgresql");
  assert.equal(target.inputs.sslMode, "require");
  const task = ofType("aws:dms/replicationTask:ReplicationTask")[0];
  assert.equal(task.inputs.migrationType, "full-load-and-cdc");
  assert.ok(out.replicationTaskArn);
  const rules = JSON.parse(tableMappings()).rules;
  assert.equal(rules[0]["rule-action"], "include");
  assert.ok(rules.some((r: Record<string, unknown>) => r["rule-action"] === "exclude"));
});

test("createVpn: customer gateway, VPN gateway on the primary VPC, connection with a static route", () => {
  const cgw = ofType("aws:ec2/customerGateway:CustomerGateway");
  assert.equal(cgw.length, 1);
  assert.equal(cgw[0].inputs.ipAddress, "198.51.100.7");
  const vgw = ofType("aws:ec2/vpnGateway:VpnGateway")[0];
  assert.match(vgw.inputs.vpcId, /vpc-us-east-1-t2/);
  const vpn = ofType("aws:ec2/vpnConnection:VpnConnection")[0];
  assert.equal(vpn.inputs.staticRoutesOnly, true);
  assert.equal(ofType("aws:ec2/vpnConnectionRoute:VpnConnectionRoute")[0].inputs.destinationCidrBlock, "192.168.0.0/16");
  assert.equal(ofType("aws:ec2/vpnGatewayRoutePropagation:VpnGatewayRoutePropagation").length, 1);
  assert.ok(out.vpnConnectionId);
});

test("the Oracle Instant Client layer goes to data-validator only, when configured", () => {
  const fns = ofType("aws:lambda/function:Function");
  for (const f of fns) {
    if (f.inputs.name === "data-validator-t2") assert.deepEqual(f.inputs.layers, ["arn:aws:lambda:us-east-1:123456789012:layer:oracle-instant-client:3"]);
    else assert.equal(f.inputs.layers, undefined, f.inputs.name);
  }
});

test("with DMS: a task-failure rule to the ops topic and a DMS widget; alerts by e-mail when configured", () => {
  const rule = ofType("aws:cloudwatch/eventRule:EventRule").find((r) => r.name === "dms-task-failure-t2");
  assert.deepEqual(JSON.parse(rule?.inputs.eventPattern).detail.eventType, ["REPLICATION_TASK_FAILED"]);
  const body = JSON.parse(ofType("aws:cloudwatch/dashboard:Dashboard")[0].inputs.dashboardBody);
  assert.ok(body.widgets.some((w: { properties: { title: string } }) => w.properties.title.startsWith("DMS")));
  const sub = ofType("aws:sns/topicSubscription:TopicSubscription");
  assert.equal(sub.length, 1);
  assert.equal(sub[0].inputs.endpoint, "oncall@example.com");
});
