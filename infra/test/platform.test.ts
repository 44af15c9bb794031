// The platform with the example (default) configuration: every requirement of the
// network, database, application, state and parameters, checked on what would be created.
import assert from "node:assert/strict";
import { before, test } from "node:test";

import { calls, install, isSecret, ofType, one, plain, resources, settle } from "./mocks";

install("platform");

import { readSettings } from "../config";
import { initialForward, listenerOptions } from "../components/application";
import { createPlatform, PlatformOutputs } from "../components/platform";

const REGIONS = ["us-east-1", "eu-west-1", "ap-southeast-1"];
let out: PlatformOutputs;

before(async () => {
  const settings = readSettings({
    require: () => "t1",
    get: () => undefined,
    getNumber: () => undefined,
    getBoolean: () => undefined,
    getObject: () => undefined,
  });
  out = createPlatform(settings);
  await settle();
});

test("one explicit provider per region", () => {
  const providers = ofType("pulumi:providers:aws");
  assert.deepEqual(providers.map((p) => p.region).sort(), [...REGIONS].sort());
  // Every AWS resource names its region's provider, none relies on the ambient region.
  const unscoped = resources.filter((r) => r.type.startsWith("aws:") && r.region === "none");
  assert.deepEqual(unscoped.map((r) => r.name), []);
  assert.ok(calls.every((c) => c === "aws:index/getAvailabilityZones:getAvailabilityZones"), "DMS is off: no SSM lookup");
});

test("names follow <resource-type>-<suffix>", () => {
  const named = resources.filter((r) => r.type.startsWith("aws:") || r.type.startsWith("random:"));
  for (const r of named) assert.ok(r.name.endsWith("-t1"), r.name);
  assert.equal(one("aws:dynamodb/table:Table", "migration-state").inputs.name, "migration-state-t1");
});

test("each region: VPC, two public and two private subnets in two AZs, exactly one NAT gateway", () => {
  for (const region of REGIONS) {
    assert.equal(ofType("aws:ec2/vpc:Vpc", region).length, 1, region);
    const subnets = ofType("aws:ec2/subnet:Subnet", region);
    assert.equal(subnets.filter((s) => s.inputs.tags.tier === "public").length, 2, region);
    assert.equal(subnets.filter((s) => s.inputs.tags.tier === "private").length, 2, region);
    assert.deepEqual(new Set(subnets.map((s) => s.inputs.availabilityZone)), new Set(["zone-a", "zone-b"]));
    assert.equal(ofType("aws:ec2/natGateway:NatGateway", region).length, 1, `one NAT in ${region}`);
    const privateRt = ofType("aws:ec2/routeTable:RouteTable", region).find((t) => t.name.includes("rt-private"));
    assert.ok(privateRt);
    assert.ok(privateRt.inputs.routes[0].natGatewayId, "private subnets leave through the NAT");
  }
});

test("S3 and DynamoDB gateway endpoints sit on the private route tables", () => {
  for (const region of REGIONS) {
    const endpoints = ofType("aws:ec2/vpcEndpoint:VpcEndpoint", region);
    assert.deepEqual(endpoints.map((e) => e.inputs.serviceName).sort(), [
      `com.amazonaws.${region}.dynamodb`, `com.amazonaws.${region}.s3`,
    ]);
    for (const e of endpoints) {
      assert.equal(e.inputs.vpcEndpointType, "Gateway");
      assert.equal(e.inputs.routeTableIds.length, 1);
      assert.match(e.inputs.routeTableIds[0], /rt-private/);
    }
  }
});

test("security groups: ALB from the internet on 80/443, tasks from the ALB only, database 5432 from tasks and functions only", () => {
  for (const region of REGIONS) {
    const sg = (part: string) => ofType("aws:ec2/securityGroup:SecurityGroup", region).find((s) => s.name.includes(part));
    const alb = sg("sg-alb");
    assert.deepEqual(alb?.inputs.ingress.map((i: { fromPort: number }) => i.fromPort).sort(), [443, 80]);
    for (const rule of alb?.inputs.ingress ?? []) assert.deepEqual(rule.cidrBlocks, ["0.0.0.0/0"]);
    const tasks = sg("sg-tasks");
    assert.equal(tasks?.inputs.ingress.length, 1);
    assert.equal(tasks?.inputs.ingress[0].cidrBlocks, undefined, "no CIDR: the ALB's group only");
    assert.match(tasks?.inputs.ingress[0].securityGroups[0], /sg-alb/);
    assert.equal(sg("sg-functions")?.inputs.ingress, undefined, "functions take no inbound traffic");
    const db = sg("sg-db");
    assert.equal(db?.inputs.ingress.length, 2);
    for (const rule of db?.inputs.ingress ?? []) {
      assert.equal(rule.fromPort, 5432);
      assert.equal(rule.toPort, 5432);
      assert.equal(rule.cidrBlocks, undefined);
      assert.equal(rule.securityGroups.length, 1);
    }
    assert.deepEqual(
      db?.inputs.ingress.map((r: { securityGroups: string[] }) => r.securityGroups[0].replace(/-id$/, "").split("-")[1]).sort(),
      ["functions", "tasks"],
    );
  }
});

test("Aurora: a global cluster, the primary in us-east-1 and a secondary in each other region", () => {
  const global = ofType("aws:rds/globalCluster:GlobalCluster");
  assert.equal(global.length, 1);
  assert.equal(global[0].inputs.engine, "aurora-postgresql");
  assert.equal(global[0].inputs.deletionProtection, false);
  assert.equal(global[0].inputs.forceDestroy, true);
  const clusters = ofType("aws:rds/cluster:Cluster");
  assert.deepEqual(clusters.map((c) => c.region).sort(), [...REGIONS].sort());
  for (const c of clusters) {
    assert.equal(c.inputs.globalClusterIdentifier, "aurora-global-t1-id");
    assert.equal(c.inputs.storageEncrypted, true);
    assert.match(c.inputs.kmsKeyId, new RegExp(`:${c.region}:.*kms-aurora-${c.region}-t1`), "the region's own key");
    assert.equal(c.inputs.backupRetentionPeriod, 7);
    assert.equal(c.inputs.skipFinalSnapshot, true);
    assert.equal(c.inputs.deletionProtection, false);
    assert.deepEqual(c.inputs.serverlessv2ScalingConfiguration, { minCapacity: 0.5, maxCapacity: 4 });
    assert.match(c.inputs.dbClusterParameterGroupName, /aurora-params/);
  }
  const primary = clusters.find((c) => c.region === "us-east-1");
  assert.equal(primary?.inputs.masterUsername, "cutover_admin");
  assert.equal(plain(primary?.inputs.masterPassword), "generated-secret-0123456789", "from @pulumi/random");
  assert.ok(isSecret(primary?.inputs.masterPassword), "kept as a secret in the state");
  for (const c of clusters.filter((x) => x.region !== "us-east-1")) {
    assert.equal(c.inputs.masterPassword, undefined, "secondaries take the primary's credentials");
  }
  assert.equal(ofType("aws:kms/key:Key").length, 3, "a KMS key per region");
  for (const i of ofType("aws:rds/clusterInstance:ClusterInstance")) assert.equal(i.inputs.instanceClass, "db.serverless");
  assert.equal(ofType("aws:rds/clusterInstance:ClusterInstance").length, 3);
});

test("TLS is forced on every cluster", () => {
  const groups = ofType("aws:rds/clusterParameterGroup:ClusterParameterGroup");
  assert.equal(groups.length, 3);
  for (const g of groups) {
    assert.equal(g.inputs.family, "aurora-postgresql15");
    assert.deepEqual(g.inputs.parameters.map((p: { name: string; value: string }) => [p.name, p.value]), [["rds.force_ssl", "1"]]);
  }
});

test("the master password lives in an SSM SecureString, generated, never in config", () => {
  const pw = ofType("random:index/randomPassword:RandomPassword");
  assert.equal(pw.length, 1);
  assert.ok(pw[0].inputs.length >= 32);
  const param = one("aws:ssm/parameter:Parameter", "master-password");
  assert.equal(param.inputs.type, "SecureString");
  assert.equal(plain(param.inputs.value), "generated-secret-0123456789");
  assert.ok(isSecret(param.inputs.value));
});

test("application per region: Fargate 256/512 with logs, blue/green weighted 100/0, autoscaling on CPU and memory", () => {
  for (const region of REGIONS) {
    assert.equal(ofType("aws:ecs/cluster:Cluster", region).length, 1);
    const task = ofType("aws:ecs/taskDefinition:TaskDefinition", region)[0];
    assert.equal(task.inputs.cpu, "256");
    assert.equal(task.inputs.memory, "512");
    assert.deepEqual(task.inputs.requiresCompatibilities, ["FARGATE"]);
    const container = JSON.parse(task.inputs.containerDefinitions)[0];
    assert.equal(container.logConfiguration.logDriver, "awslogs");
    const listener = ofType("aws:lb/listener:Listener", region)[0];
    const groups = listener.inputs.defaultActions[0].forward.targetGroups;
    assert.deepEqual(groups.map((g: { weight: number }) => g.weight), [100, 0]);
    assert.match(groups[0].arn, /tg-blue/);
    assert.match(groups[1].arn, /tg-green/);
    assert.equal(ofType("aws:lb/targetGroup:TargetGroup", region).length, 2);
    const service = ofType("aws:ecs/service:Service", region)[0];
    assert.equal(service.inputs.launchType, "FARGATE");
    assert.equal(service.inputs.networkConfiguration.assignPublicIp, false);
    const metrics = ofType("aws:appautoscaling/policy:Policy", region).map(
      (p) => p.inputs.targetTrackingScalingPolicyConfiguration.predefinedMetricSpecification.predefinedMetricType,
    );
    assert.deepEqual(metrics.sort(), ["ECSServiceAverageCPUUtilization", "ECSServiceAverageMemoryUtilization"]);
    assert.equal(ofType("aws:cloudwatch/logGroup:LogGroup", region).length, 1);
  }
});

test("pulumi up never resets the weights the traffic-shifter set", () => {
  const opts = listenerOptions({});
  assert.deepEqual(opts.ignoreChanges, ["defaultActions"]);
  assert.deepEqual(initialForward("b", "g")[0].forward.targetGroups, [{ arn: "b", weight: 100 }, { arn: "g", weight: 0 }]);
});

test("state: DynamoDB on demand, point-in-time recovery, encrypted, TTL", () => {
  const t = one("aws:dynamodb/table:Table", "migration-state");
  assert.equal(t.region, "us-east-1");
  assert.equal(t.inputs.billingMode, "PAY_PER_REQUEST");
  assert.equal(t.inputs.hashKey, "pk");
  assert.equal(t.inputs.rangeKey, "sk");
  assert.equal(t.inputs.pointInTimeRecovery.enabled, true);
  assert.equal(t.inputs.serverSideEncryption.enabled, true);
  assert.equal(t.inputs.ttl.attributeName, "expires_at");
  assert.equal(t.inputs.deletionProtectionEnabled, false);
});

test("parameters: the SSM hierarchy the functions read, secrets as SecureString", async () => {
  const byName = new Map(ofType("aws:ssm/parameter:Parameter").map((p) => [p.inputs.name, p.inputs]));
  const expected = [
    "/migration/db/t1/writer-endpoint",
    "/migration/db/t1/reader-endpoint/us-east-1",
    "/migration/db/t1/reader-endpoint/eu-west-1",
    "/migration/db/t1/reader-endpoint/ap-southeast-1",
    "/migration/db/t1/database",
    "/migration/db/t1/user",
    "/migration/db/t1/password",
    "/migration/db/t1/source-dsn",
    "/migration/db/t1/ca-bundle",
    "/migration/app/t1/active-region",
    "/migration/app/t1/traffic-policy",
  ];
  for (const n of expected) assert.ok(byName.has(n), n);
  assert.deepEqual(out.parameterNames, expected);
  assert.equal(byName.get("/migration/db/t1/password").type, "SecureString");
  assert.equal(byName.get("/migration/db/t1/source-dsn").type, "SecureString");
  assert.equal(plain(byName.get("/migration/db/t1/writer-endpoint").value), "aurora-us-east-1-t1.cluster-x.us-east-1.rds.amazonaws.com:5432");
  assert.equal(plain(byName.get("/migration/app/t1/active-region").value), "us-east-1");
  for (const [n, p] of byName) if (n.endsWith("password")) assert.equal(p.type, "SecureString", n);
});

test("optional migration parts are absent by default", async () => {
  assert.equal(ofType("aws:dms/replicationInstance:ReplicationInstance").length, 0);
  assert.equal(ofType("aws:dms/replicationTask:ReplicationTask").length, 0);
  assert.equal(ofType("aws:ec2/vpnConnection:VpnConnection").length, 0);
  assert.equal(ofType("aws:ec2/customerGateway:CustomerGateway").length, 0);
  assert.equal(out.replicationTaskArn, undefined);
  assert.equal(out.vpnConnectionId, undefined);
});

test("nothing is retained or protected on destroy", () => {
  for (const r of resources) {
    assert.notEqual(r.inputs.deletionProtection, true, r.name);
    assert.notEqual(r.inputs.enableDeletionProtection, true, r.name);
    assert.notEqual(r.inputs.deletionProtectionEnabled, true, r.name);
    if (r.type === "aws:rds/cluster:Cluster") assert.equal(r.inputs.skipFinalSnapshot, true);
  }
});
