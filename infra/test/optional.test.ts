// The platform with everything optional switched on: DMS and its reverse task, the VPN, the Oracle Instant Client
// layer and e-mail alerts.
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { before, test } from "node:test";

import * as pulumi from "@pulumi/pulumi";

import { build, calls, install, isSecret, ofType, one, options, plain, resourceName } from "./mocks";

install("optional");

import { reverseTableMappings, tableMappings } from "../components/migration";
import { checkAlarmDelivery, checkEventDelivery } from "./delivery";
import type { Platform } from "../components/platform";

const LAYER = "arn:aws:lambda:us-east-1:123456789012:layer:oracle-instant-client:3";
const HOOK = "arn:aws:lambda:us-east-1:123456789012:function:release-hook";
const APPROVAL = "arn:aws:lambda:eu-west-1:123456789012:function:approval:live";
let platform: Platform;

before(async () => {
  platform = await build({
    environmentSuffix: "t2",
    createDms: true,
    reverseDms: true,
    createVpn: true,
    customerGatewayIp: "198.51.100.7",
    oracleInstantClientLayerArn: LAYER,
    alertEmail: "oncall@example.com",
    validationTables: "app.orders,app.order_items",
    failoverReservedConcurrency: 1,
    releaseHooks: { preTraffic: HOOK, postTraffic: HOOK, prePromote: APPROVAL },
    releaseHookDetails: { url: "http://{colour}.{region}.app.internal/health", requests: 20 },
    caBundleFile: "test/fixtures/rds-ca.pem",
    oracleCaWalletFile: "test/fixtures/cwallet.sso",
    certificateArns: Object.fromEntries(["us-east-1", "eu-west-1", "ap-southeast-1"].map((r) => [r, `arn:aws:acm:${r}:123456789012:certificate/cert-${r}`])),
  });
});

test("createDms: replication instance, Oracle source, Aurora target, full load and CDC, in the primary's private subnets", () => {
  const instance = ofType("aws:dms/replicationInstance:ReplicationInstance");
  assert.deepEqual(instance.map((i) => [i.region, i.inputs.publiclyAccessible, i.inputs.multiAz]), [["us-east-1", false, false]]);
  assert.deepEqual(instance[0].inputs.vpcSecurityGroupIds, ["sg-dms-us-east-1-t2-id"], "its own group, not the functions'");
  const dmsSg = one("aws:ec2/securityGroup:SecurityGroup", "sg-dms-us-east-1");
  assert.equal(dmsSg.inputs.ingress, undefined, "nothing inbound");
  assert.deepEqual(dmsSg.inputs.egress.map((e: { protocol: string; fromPort: number; cidrBlocks: string[] }) => [e.protocol, e.fromPort, e.cidrBlocks]),
    [["tcp", 2484, ["192.168.0.0/16"]], ["tcp", 5432, ["10.10.0.0/16"]]], "to Oracle on-premises and Aurora only");
  const db: { fromPort: number; securityGroups?: string[] }[] = one("aws:ec2/securityGroup:SecurityGroup", "sg-db-us-east-1").inputs.ingress;
  assert.ok(db.some((r) => r.fromPort === 5432 && r.securityGroups?.[0] === "sg-dms-us-east-1-t2-id"), "the database admits DMS");
  assert.equal(ofType("aws:ec2/securityGroup:SecurityGroup").filter((g) => g.name.startsWith("sg-dms")).length, 1, "in the primary only");
  const subnets = one("aws:dms/replicationSubnetGroup:ReplicationSubnetGroup", "dms-subnets");
  assert.deepEqual(subnets.inputs.subnetIds, ["subnet-private-0-us-east-1-t2-id", "subnet-private-1-us-east-1-t2-id"]);
  const source = one("aws:dms/endpoint:Endpoint", "dms-source-oracle");
  assert.deepEqual([source.inputs.endpointType, source.inputs.engineName, source.inputs.serverName, source.inputs.port],
    ["source", "oracle", "onprem-oracle.example.com", 2484], "TCPS: the listener's 2484 by default");
  assert.equal(plain(source.inputs.password), "oracle-secret", "from an SSM SecureString, not config");
  assert.ok(isSecret(source.inputs.password));
  assert.ok(calls.includes("aws:ssm/getParameter:getParameter"));
  const target = one("aws:dms/endpoint:Endpoint", "dms-target-aurora");
  assert.deepEqual([target.inputs.endpointType, target.inputs.engineName], ["target", "aurora-postgresql"]);
  assert.equal(target.inputs.serverName, "aurora-us-east-1-t2.cluster-x.us-east-1.rds.amazonaws.com");
  const task = one("aws:dms/replicationTask:ReplicationTask", "dms-task-t2");
  assert.equal(task.inputs.migrationType, "full-load-and-cdc");
  assert.equal(task.inputs.startReplicationTask, false, "started by an operator, once the source is ready");
  assert.deepEqual(JSON.parse(task.inputs.tableMappings), JSON.parse(tableMappings()));
  const rules = JSON.parse(tableMappings()).rules;
  assert.equal(rules[0]["rule-action"], "include");
  assert.ok(rules.slice(1).every((r: Record<string, string>) => r["rule-action"] === "exclude"));
  assert.ok(platform.replicationTaskArn);
});

test("createDms creates the account-wide dms-vpc-role (by default) before the subnet group that needs it", () => {
  const role = one("aws:iam/role:Role", "dms-vpc-role");
  assert.equal(role.inputs.name, "dms-vpc-role", "DMS looks for exactly this name");
  assert.equal(JSON.parse(role.inputs.assumeRolePolicy).Statement[0].Principal.Service, "dms.amazonaws.com");
  const attached = one("aws:iam/rolePolicyAttachment:RolePolicyAttachment", "dms-vpc-role-policy");
  assert.deepEqual([attached.inputs.role, attached.inputs.policyArn], ["dms-vpc-role", "arn:aws:iam::aws:policy/service-role/AmazonDMSVPCManagementRole"]);
  const deps = (options.get(one("aws:dms/replicationSubnetGroup:ReplicationSubnetGroup", "dms-subnets").name)?.dependsOn as pulumi.Resource[]).map(resourceName);
  assert.deepEqual(deps, ["dms-vpc-role-policy-t2"]);
});

test("releaseHooks: the shifter is told each phase's function and the details, and may invoke exactly those functions", () => {
  const shifters = ofType("aws:lambda/function:Function").filter((f) => /^traffic-shifter-/.test(f.inputs.name));
  assert.ok(shifters.length >= 1);
  for (const f of shifters) {
    const vars = f.inputs.environment.variables;
    assert.deepEqual([vars.CUTOVER_PRE_TRAFFIC_HOOK, vars.CUTOVER_POST_TRAFFIC_HOOK, vars.CUTOVER_PRE_PROMOTE_HOOK], [HOOK, HOOK, APPROVAL], f.inputs.name);
    assert.deepEqual(JSON.parse(vars.CUTOVER_HOOK_DETAILS), { url: "http://{colour}.{region}.app.internal/health", requests: 20 });
  }
  const policies = ofType("aws:iam/rolePolicy:RolePolicy").map((p) => ({ owner: p.name, doc: JSON.parse(String(plain(p.inputs.policy))) }));
  const invoking = policies.flatMap(({ owner, doc }) => (doc.Statement as { Sid: string; Action: string[]; Resource: string[] }[])
    .filter((st) => st.Action.includes("lambda:InvokeFunction")).map((st) => ({ owner, st })));
  assert.ok(invoking.length >= 1);
  for (const { owner, st } of invoking.filter(({ st }) => st.Sid === "InvokeReleaseHooks")) {
    assert.match(owner, /traffic-shifter/);
    assert.deepEqual(st.Action, ["lambda:InvokeFunction"]);
    assert.deepEqual(st.Resource, [HOOK, APPROVAL], "each hook once, nothing else");
  }
  assert.equal(invoking.filter(({ st }) => st.Sid === "InvokeReleaseHooks").length, shifters.length, "one grant per shifter copy");
});

test("failoverReservedConcurrency: set on every region's failover only", () => {
  for (const f of ofType("aws:lambda/function:Function")) {
    // Every region's failover: each region's quota is its own, and the primary's may be the one lost.
    assert.equal(f.inputs.reservedConcurrentExecutions, /^failover-([a-z0-9-]+-)?t2$/.test(f.inputs.name) ? 1 : undefined, f.inputs.name);
  }
});

test("DMS endpoints over TLS: Oracle over TCPS verified against the configured CA, Aurora verify-full against the RDS bundle", () => {
  const cert = (id: string) => one("aws:dms/certificate:Certificate", id);
  const source = one("aws:dms/endpoint:Endpoint", "dms-source-oracle");
  assert.equal(source.inputs.sslMode, "verify-ca", "DMS offers verify-ca for Oracle");
  assert.equal(source.inputs.certificateArn, `arn:aws:mock:us-east-1:123456789012:aws:dms/certificate:Certificate/dms-cert-oracle-t2`);
  // DMS takes an Oracle endpoint's CA as an Oracle wallet (ImportCertificate's CertificateWallet, a .sso file), base64 in the resource.
  const oracleCert = cert("dms-cert-oracle").inputs;
  assert.equal(plain(oracleCert.certificateWallet), readFileSync("test/fixtures/cwallet.sso").toString("base64"), "the wallet file's bytes, base64");
  assert.equal(oracleCert.certificatePem, undefined, "not a PEM: DMS's Oracle endpoints read a wallet");
  const target = one("aws:dms/endpoint:Endpoint", "dms-target-aurora");
  assert.equal(target.inputs.sslMode, "verify-full");
  assert.equal(target.inputs.certificateArn, `arn:aws:mock:us-east-1:123456789012:aws:dms/certificate:Certificate/dms-cert-rds-t2`);
  assert.match(String(plain(cert("dms-cert-rds").inputs.certificatePem)), /TEST-FIXTURE-rds-ca/, "caBundleFile, the functions' bundle");
});

test("reverseDms: a second task, CDC only, from the Aurora writer (verify-full) back to Oracle (TCPS), on the same instance, created stopped, never truncating Oracle", () => {
  const tasks = ofType("aws:dms/replicationTask:ReplicationTask");
  assert.deepEqual(tasks.map((t) => t.inputs.replicationTaskId).sort(), ["dms-reverse-task-t2", "dms-task-t2"]);
  const reverse = one("aws:dms/replicationTask:ReplicationTask", "dms-reverse-task");
  assert.equal(reverse.region, "us-east-1");
  assert.equal(reverse.inputs.migrationType, "cdc", "no full load: Oracle holds the data; only Aurora's changes after the switch go back");
  assert.equal(reverse.inputs.startReplicationTask, false, "started at the switch, not by pulumi up");
  assert.equal(JSON.parse(reverse.inputs.replicationTaskSettings).FullLoadSettings.TargetTablePrepMode, "DO_NOTHING");
  assert.equal(reverse.inputs.replicationInstanceArn, one("aws:dms/replicationTask:ReplicationTask", "dms-task-t2").inputs.replicationInstanceArn);
  const endpoint = (id: string) => one("aws:dms/endpoint:Endpoint", id);
  const source = endpoint("dms-reverse-source-aurora");
  assert.equal(reverse.inputs.sourceEndpointArn, `arn:aws:mock:us-east-1:123456789012:aws:dms/endpoint:Endpoint/dms-reverse-source-aurora-t2`);
  assert.deepEqual([source.inputs.endpointType, source.inputs.engineName, source.inputs.serverName, source.inputs.port],
    ["source", "aurora-postgresql", "aurora-us-east-1-t2.cluster-x.us-east-1.rds.amazonaws.com", 5432], "the Aurora writer");
  assert.deepEqual([source.inputs.sslMode, source.inputs.certificateArn], ["verify-full", "arn:aws:mock:us-east-1:123456789012:aws:dms/certificate:Certificate/dms-cert-rds-t2"]);
  const target = endpoint("dms-reverse-target-oracle");
  assert.equal(reverse.inputs.targetEndpointArn, `arn:aws:mock:us-east-1:123456789012:aws:dms/endpoint:Endpoint/dms-reverse-target-oracle-t2`);
  const forward = endpoint("dms-source-oracle");
  assert.deepEqual([target.inputs.endpointType, target.inputs.engineName], ["target", "oracle"]);
  for (const k of ["serverName", "port", "databaseName", "username", "sslMode", "certificateArn"]) {
    assert.deepEqual(target.inputs[k], forward.inputs[k], `${k}: the Oracle endpoint's own settings`);
  }
  assert.equal(target.inputs.sslMode, "verify-ca", "TCPS, the listener's CA checked");
  assert.ok(isSecret(target.inputs.password), "the Oracle password stays a secret");
  assert.equal(ofType("aws:dms/certificate:Certificate").length, 2, "the same two certificates");
  const rules = JSON.parse(reverseTableMappings()).rules;
  assert.deepEqual(JSON.parse(reverse.inputs.tableMappings), { rules });
  assert.deepEqual(rules.filter((r: Record<string, string>) => r["rule-action"] === "exclude").map((r: { "object-locator": { "schema-name": string } }) => r["object-locator"]["schema-name"]),
    ["pg_catalog", "information_schema", "cutover"], "not PostgreSQL's own schemas, not lag-probe's heartbeat");
  for (const g of ofType("aws:rds/clusterParameterGroup:ClusterParameterGroup")) {
    assert.deepEqual(g.inputs.parameters.map((p: { name: string; value: string }) => [p.name, p.value]), [["rds.force_ssl", "1"], ["rds.logical_replication", "1"]],
      `${g.region}: DMS reads Aurora's changes by logical replication, on whichever cluster writes`);
  }
  assert.ok(platform.reverseReplicationTaskArn);
});

test("with certificateArns: the weighted listener is HTTPS on 443 (TLS 1.2+), and port 80 only redirects to it", () => {
  for (const region of ["us-east-1", "eu-west-1", "ap-southeast-1"]) {
    const listeners = ofType("aws:lb/listener:Listener", region);
    const https = listeners.find((l) => l.inputs.port === 443);
    assert.deepEqual([https?.inputs.protocol, https?.inputs.certificateArn, https?.inputs.sslPolicy],
      ["HTTPS", `arn:aws:acm:${region}:123456789012:certificate/cert-${region}`, "ELBSecurityPolicy-TLS13-1-2-2021-06"]);
    assert.deepEqual(https?.inputs.defaultActions[0].forward.targetGroups.map((g: { weight: number }) => g.weight), [100, 0]);
    assert.deepEqual(options.get(https?.name as string)?.ignoreChanges, ["defaultActions"], "the shifter owns the weights");
    const http = listeners.find((l) => l.inputs.port === 80);
    assert.deepEqual([http?.inputs.protocol, http?.inputs.defaultActions], ["HTTP", [{ type: "redirect", redirect: { protocol: "HTTPS", port: "443", statusCode: "HTTP_301" } }]]);
    assert.equal(listeners.length, 2);
    assert.deepEqual((options.get(http?.name as string)?.dependsOn as pulumi.Resource[]).map(resourceName), [https?.name],
      "port 80 is free only once the weighted listener has moved to 443");
  }
  const shifter = ofType("aws:lambda/function:Function").find((f) => f.inputs.name === "traffic-shifter-t2");
  for (const item of String(shifter?.inputs.environment.variables.CUTOVER_LISTENER_ARNS).split(",")) {
    const [region, arn] = item.split("=");
    assert.equal(arn.replace(/.*\//, ""), `listener-${region}-t2`, "the shifter moves the HTTPS listener's weights");
  }
});

test("createVpn: customer gateway, VPN gateway on the primary VPC, connection with a static route, propagated to the private routes", () => {
  const cgw = ofType("aws:ec2/customerGateway:CustomerGateway");
  assert.deepEqual(cgw.map((c) => [c.region, c.inputs.ipAddress, c.inputs.type]), [["us-east-1", "198.51.100.7", "ipsec.1"]]);
  assert.equal(one("aws:ec2/vpnGateway:VpnGateway", "vgw").inputs.vpcId, "vpc-us-east-1-t2-id");
  const vpn = ofType("aws:ec2/vpnConnection:VpnConnection")[0];
  assert.equal(vpn.inputs.staticRoutesOnly, true);
  assert.equal(ofType("aws:ec2/vpnConnectionRoute:VpnConnectionRoute")[0].inputs.destinationCidrBlock, "192.168.0.0/16");
  const propagation = ofType("aws:ec2/vpnGatewayRoutePropagation:VpnGatewayRoutePropagation");
  assert.deepEqual(propagation.map((p) => p.inputs.routeTableId), ["rt-private-us-east-1-t2-id"]);
  assert.ok(platform.vpnConnectionId);
});

test("the Oracle Instant Client layer goes to data-validator only, when configured", () => {
  for (const f of ofType("aws:lambda/function:Function")) {
    const ca = f.region === "us-east-1"
      ? "arn:aws:mock:us-east-1:123456789012:aws:lambda/layerVersion:LayerVersion/layer-db-ca-t2"
      : `arn:aws:mock:${f.region}:123456789012:aws:lambda/layerVersion:LayerVersion/layer-db-ca-${f.region}-t2`;
    if (f.inputs.name === "data-validator-t2") assert.deepEqual(f.inputs.layers, [ca, LAYER]);
    else if (f.inputs.name === "traffic-shifter-t2") assert.equal(f.inputs.layers, undefined);
    else assert.deepEqual(f.inputs.layers, [ca], f.inputs.name);
  }
  const validator = ofType("aws:lambda/function:Function").find((f) => f.inputs.name === "data-validator-t2");
  assert.equal(validator?.inputs.environment.variables.CUTOVER_VALIDATION_TABLES, "app.orders,app.order_items");
});

test("with DMS: a task-failure rule for this task to the ops topic, and a DMS widget on the dashboard", () => {
  const rule = one("aws:cloudwatch/eventRule:EventRule", "dms-task-failure");
  const pattern = JSON.parse(rule.inputs.eventPattern);
  assert.deepEqual(pattern.detail.eventType, ["REPLICATION_TASK_FAILED"]);
  assert.deepEqual(pattern.resources, ["arn:aws:dms:us-east-1:123456789012:task:TASKID0123", "arn:aws:dms:us-east-1:123456789012:task:TASKIDREVERSE"],
    "the reverse task too: its failure after the switch loses the way back");
  assert.match(one("aws:cloudwatch/eventTarget:EventTarget", "dms-task-failure-target").inputs.arn, /sns-ops-t2$/);
  const body = JSON.parse(ofType("aws:cloudwatch/dashboard:Dashboard")[0].inputs.dashboardBody);
  const dms = body.widgets.find((w: { properties: { title: string } }) => w.properties.title.startsWith("DMS"));
  assert.deepEqual(dms.properties.metrics[0].slice(0, 6), ["AWS/DMS", "CDCLatencySource", "ReplicationInstanceIdentifier", "dms-t2", "ReplicationTaskIdentifier", "TASKID0123"]);
});

test("with DMS, the task-failure rule reaches the ops topic (topic policy and key), and every alarm still does", () => {
  assert.equal(checkEventDelivery(), 1);
  assert.ok(checkAlarmDelivery() > 0);
});

test("alertEmail: an e-mail subscription to every ops topic and to the validation topic", () => {
  const subs = ofType("aws:sns/topicSubscription:TopicSubscription");
  assert.deepEqual(subs.map((s) => [s.region, s.inputs.protocol, s.inputs.endpoint, s.inputs.topic.replace(/.*\//, "")]).sort(), [
    ["ap-southeast-1", "email", "oncall@example.com", "sns-ops-ap-southeast-1-t2"],
    ["eu-west-1", "email", "oncall@example.com", "sns-ops-eu-west-1-t2"],
    ["us-east-1", "email", "oncall@example.com", "sns-ops-t2"],
    ["us-east-1", "email", "oncall@example.com", "sns-validation-t2"],
  ]);
});
