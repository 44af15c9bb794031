// Part 1 with the example (default) configuration: network, peering, database, application,
// state and parameters, checked on what would be created and with which options.
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { before, test } from "node:test";

import * as pulumi from "@pulumi/pulumi";

import { build, calls, install, isSecret, ofType, one, options, plain, Recorded, resourceName, resources } from "./mocks";

install("platform");

import { subnetCidrs } from "../config";

const REGIONS = ["us-east-1", "eu-west-1", "ap-southeast-1"];
const SECONDARIES = REGIONS.slice(1);
type Rule = { protocol: string; fromPort: number; toPort: number; cidrBlocks?: string[]; securityGroups?: string[] };

before(async () => {
  await build({ environmentSuffix: "t1" });
});

test("one explicit provider per region, and every AWS resource names one", () => {
  const providers = ofType("pulumi:providers:aws");
  assert.deepEqual(providers.map((p) => p.region).sort(), [...REGIONS].sort());
  const unscoped = resources.filter((r) => r.type.startsWith("aws:") && r.region === "none");
  assert.deepEqual(unscoped.map((r) => r.name), []);
});

test("names follow <resource-type>-<suffix>; load balancer and target group names fit in 32 characters", () => {
  const named = resources.filter((r) => r.type.startsWith("aws:") || r.type.startsWith("random:"));
  for (const r of named) assert.ok(r.name.endsWith("-t1"), r.name);
  assert.equal(one("aws:dynamodb/table:Table", "migration-state").inputs.name, "migration-state-t1");
  for (const r of [...ofType("aws:lb/loadBalancer:LoadBalancer"), ...ofType("aws:lb/targetGroup:TargetGroup")]) {
    assert.ok(r.inputs.name.length <= 32 && !r.inputs.name.endsWith("-"), r.inputs.name);
  }
  assert.ok(ofType("aws:lb/targetGroup:TargetGroup").some((t) => t.inputs.name === "tg-green-apse1-t1"));
});

test("each region: VPC, public, private and function subnets in two AZs, exactly one NAT gateway", () => {
  for (const region of REGIONS) {
    assert.equal(ofType("aws:ec2/vpc:Vpc", region).length, 1, region);
    const subnets = ofType("aws:ec2/subnet:Subnet", region);
    for (const tier of ["public", "private", "functions"]) {
      const inTier = subnets.filter((s) => s.inputs.tags.tier === tier);
      assert.equal(inTier.length, 2, `${region} ${tier}`);
      assert.deepEqual(inTier.map((s) => s.inputs.availabilityZone), ["zone-a", "zone-b"], `${region} ${tier}: two AZs`);
    }
    assert.equal(ofType("aws:ec2/natGateway:NatGateway", region).length, 1, `one NAT in ${region}`);
    assert.equal(ofType("aws:ec2/eip:Eip", region).length, 1, `one EIP in ${region}`);
  }
});

test("routes: the internet through the IGW from public subnets, through the NAT from the others; none inline", () => {
  for (const t of ofType("aws:ec2/routeTable:RouteTable")) assert.equal(t.inputs.routes, undefined, `${t.name}: inline routes would fight the peering's`);
  for (const region of REGIONS) {
    const defaults = ofType("aws:ec2/route:Route", region).filter((r) => r.inputs.destinationCidrBlock === "0.0.0.0/0");
    assert.equal(defaults.length, 2, region);
    const viaNat = defaults.find((r) => r.inputs.natGatewayId !== undefined);
    assert.match(viaNat?.inputs.routeTableId, /rt-private/);
    assert.match(defaults.find((r) => r.inputs.gatewayId !== undefined)?.inputs.routeTableId, /rt-public/);
    const privateAssociations = ofType("aws:ec2/routeTableAssociation:RouteTableAssociation", region)
      .filter((a) => /subnet-(private|functions)/.test(a.inputs.subnetId));
    assert.equal(privateAssociations.length, 4);
    for (const a of privateAssociations) assert.match(a.inputs.routeTableId, /rt-private/);
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
      assert.deepEqual(e.inputs.routeTableIds, [`rt-private-${region}-t1-id`]);
    }
  }
});

test("security groups: ALB 80/443 from the internet; tasks from the ALB only; functions take nothing", () => {
  for (const region of REGIONS) {
    const sg = (part: string) => one("aws:ec2/securityGroup:SecurityGroup", `${part}-${region}`);
    const alb: Rule[] = sg("sg-alb").inputs.ingress;
    assert.deepEqual(alb.map((i) => [i.protocol, i.fromPort, i.toPort]), [["tcp", 80, 80], ["tcp", 443, 443]]);
    for (const rule of alb) assert.deepEqual(rule.cidrBlocks, ["0.0.0.0/0"]);
    const tasks: Rule[] = sg("sg-tasks").inputs.ingress;
    assert.deepEqual(tasks.map((i) => [i.protocol, i.fromPort, i.toPort, i.cidrBlocks, i.securityGroups]),
      [["tcp", 80, 80, undefined, [`sg-alb-${region}-t1-id`]]]);
    assert.equal(sg("sg-functions").inputs.ingress, undefined, "functions take no inbound traffic");
  }
});

test("security-group egress: the ALB to the tasks' port; tasks and functions TCP 443 out, 5432 to the databases, the Oracle port to onPremCidr; no all-protocol rule, nothing else to 0.0.0.0/0", () => {
  const vpcs: Record<string, string> = { "us-east-1": "10.10.0.0/16", "eu-west-1": "10.20.0.0/16", "ap-southeast-1": "10.30.0.0/16" };
  const groups = ofType("aws:ec2/securityGroup:SecurityGroup");
  assert.ok(groups.length >= 12, "every region's groups are walked");
  // A group's egress: its inline rules and its separate ones (the ALB's refers to the tasks' group, which refers back).
  const rulesOf = (g: Recorded): Rule[] => [
    ...((g.inputs.egress ?? []) as Rule[]),
    ...ofType("aws:ec2/securityGroupRule:SecurityGroupRule").filter((r) => r.inputs.securityGroupId === `${g.name}-id`)
      .map((r) => {
        assert.equal(r.inputs.type, "egress", `${r.name}: separate rules are egress only (a group's ingress stays inline)`);
        const { protocol, fromPort, toPort, cidrBlocks, sourceSecurityGroupId } = r.inputs;
        return { protocol, fromPort, toPort, cidrBlocks, securityGroups: sourceSecurityGroupId === undefined ? undefined : [sourceSecurityGroupId] };
      }),
  ];
  for (const g of groups) {
    for (const rule of rulesOf(g)) {
      assert.notEqual(rule.protocol, "-1", `${g.name}: no all-protocol egress`);
      if (rule.cidrBlocks?.includes("0.0.0.0/0")) {
        assert.deepEqual([rule.protocol, rule.fromPort, rule.toPort], ["tcp", 443, 443], `${g.name}: only HTTPS to the internet`);
      }
    }
    assert.ok(g.inputs.ipv6CidrBlocks === undefined && !JSON.stringify(g.inputs.egress ?? []).includes("::/0"), `${g.name}: no IPv6 egress`);
  }
  const egress = (part: string, region: string) => rulesOf(one("aws:ec2/securityGroup:SecurityGroup", `${part}-${region}`))
    .map((r) => [r.protocol, r.fromPort, r.toPort, r.cidrBlocks ?? r.securityGroups]);
  const internet = ["tcp", 443, 443, ["0.0.0.0/0"]];
  for (const region of REGIONS) {
    const primary = region === "us-east-1";
    // The source: the application writes to Oracle until the switch (writes-to = source) in every region; the validator and the cutover read it in the primary.
    const oracle = ["tcp", 2484, 2484, ["192.168.0.0/16"]];
    assert.deepEqual(egress("sg-alb", region), [["tcp", 80, 80, [`sg-tasks-${region}-t1-id`]]], `${region}: the ALB reaches the tasks' container port only`);
    assert.deepEqual(egress("sg-tasks", region), [internet, ["tcp", 5432, 5432, [vpcs[region]]], oracle], `${region}: tasks`);
    // lag-probe and failover reach every region's database over the peerings.
    assert.deepEqual(egress("sg-functions", region), [internet, ["tcp", 5432, 5432, [vpcs[region], ...REGIONS.filter((r) => r !== region).map((r) => vpcs[r])]],
      ...(primary ? [oracle] : [])], `${region}: functions`);
    assert.deepEqual(egress("sg-db", region), [], `${region}: the database has no egress`);
  }
});

test("database: 5432 only, from the tasks' and functions' groups, plus every other region's function subnets", () => {
  const functionsOf = (vpc: string) => subnetCidrs(vpc).functions;
  const vpcs: Record<string, string> = { "us-east-1": "10.10.0.0/16", "eu-west-1": "10.20.0.0/16", "ap-southeast-1": "10.30.0.0/16" };
  for (const region of REGIONS) {
    const rules: Rule[] = one("aws:ec2/securityGroup:SecurityGroup", `sg-db-${region}`).inputs.ingress;
    for (const rule of rules) assert.deepEqual([rule.protocol, rule.fromPort, rule.toPort], ["tcp", 5432, 5432], JSON.stringify(rule));
    const byGroup = rules.filter((r) => r.securityGroups !== undefined);
    assert.deepEqual(byGroup.map((r) => [r.securityGroups, r.cidrBlocks]), [
      [[`sg-tasks-${region}-t1-id`], undefined],
      [[`sg-functions-${region}-t1-id`], undefined],
    ]);
    const byCidr = rules.filter((r) => r.cidrBlocks !== undefined);
    assert.deepEqual(one("aws:ec2/securityGroup:SecurityGroup", `sg-db-${region}`).inputs.egress, [], "Aurora opens no connection: no egress at all");
    // Each region's lag-probe writes to the writer and reads every reader; each region's failover probes the writer.
    assert.deepEqual(byCidr.map((r) => r.cidrBlocks), [REGIONS.filter((r) => r !== region).flatMap((r) => functionsOf(vpcs[r]))],
      `${region}: only the other regions' function subnets`);
  }
});

test("peering: every pair of regions, accepted on the second side, routed both ways on the private tables", () => {
  const connections = ofType("aws:ec2/vpcPeeringConnection:VpcPeeringConnection");
  const pairs = REGIONS.flatMap((a, i) => REGIONS.slice(i + 1).map((b) => [a, b]));
  assert.deepEqual(connections.map((c) => [c.region, c.inputs.peerRegion]), pairs);
  for (const c of connections) assert.equal(c.inputs.vpcId, `vpc-${c.region}-t1-id`);
  const accepters = ofType("aws:ec2/vpcPeeringConnectionAccepter:VpcPeeringConnectionAccepter");
  assert.deepEqual(accepters.map((a) => [a.region, a.inputs.autoAccept]), pairs.map(([, b]) => [b, true]));
  const cidr: Record<string, string> = { "us-east-1": "10.10.0.0/16", "eu-west-1": "10.20.0.0/16", "ap-southeast-1": "10.30.0.0/16" };
  for (const [a, b] of pairs) {
    for (const [from, to] of [[a, b], [b, a]]) {
      const route = ofType("aws:ec2/route:Route", from).find((r) => r.inputs.destinationCidrBlock === cidr[to]);
      assert.equal(route?.inputs.routeTableId, `rt-private-${from}-t1-id`, `${from} -> ${to}`);
      assert.ok(route?.inputs.vpcPeeringConnectionId, `${from} -> ${to} over a peering`);
    }
  }
  assert.match(one("aws:ec2/vpcPeeringConnection:VpcPeeringConnection", "pcx-eu-west-1-ap-southeast-1").name, /pcx-eu-west-1-ap-southeast-1-t1/);
  assert.equal(ofType("aws:ec2/route:Route").filter((r) => r.inputs.vpcPeeringConnectionId !== undefined).length, 6);
});

test("Aurora: a global cluster, the primary in us-east-1 and a secondary in each other region, Serverless v2", () => {
  const global = ofType("aws:rds/globalCluster:GlobalCluster");
  assert.equal(global.length, 1);
  assert.equal(global[0].region, "us-east-1");
  assert.equal(global[0].inputs.engine, "aurora-postgresql");
  assert.equal(global[0].inputs.forceDestroy, true);
  assert.deepEqual(options.get(global[0].name)?.ignoreChanges, ["engineVersion"], "an upgrade through the global cluster is not drift");
  assert.equal(global[0].inputs.databaseName, "app");
  const clusters = ofType("aws:rds/cluster:Cluster");
  assert.deepEqual(clusters.map((c) => c.region), REGIONS);
  for (const c of clusters) {
    assert.equal(c.inputs.globalClusterIdentifier, "aurora-global-t1-id");
    assert.equal(c.inputs.engine, "aurora-postgresql");
    assert.equal(c.inputs.storageEncrypted, true);
    assert.equal(c.inputs.kmsKeyId, `arn:aws:mock:${c.region}:123456789012:aws:kms/key:Key/kms-aurora-${c.region}-t1`, "the region's own key");
    assert.equal(c.inputs.backupRetentionPeriod, 7);
    assert.equal(c.inputs.skipFinalSnapshot, true);
    assert.equal(c.inputs.deletionProtection, false);
    assert.deepEqual(c.inputs.serverlessv2ScalingConfiguration, { minCapacity: 0.5, maxCapacity: 4 });
    assert.deepEqual(c.inputs.vpcSecurityGroupIds, [`sg-db-${c.region}-t1-id`]);
    assert.deepEqual(options.get(c.name)?.ignoreChanges, ["replicationSourceIdentifier", "engineVersion"], "a failover or an upgrade is not drift");
  }
  const secondaries = clusters.filter((c) => c.region !== "us-east-1");
  for (const c of secondaries) {
    assert.equal(c.inputs.masterPassword, undefined, "secondaries take the primary's credentials");
    const dependsOn = options.get(c.name)?.dependsOn as pulumi.Resource[];
    assert.deepEqual(dependsOn.map(resourceName), ["aurora-1-us-east-1-t1"], "joins once the primary's writer exists");
  }
  assert.deepEqual(clusters.map((c) => c.inputs.databaseName), ["app", undefined, undefined], "named on the primary, as on the global cluster");
  const instances = ofType("aws:rds/clusterInstance:ClusterInstance");
  assert.deepEqual(instances.map((i) => [i.region, i.inputs.instanceClass, i.inputs.publiclyAccessible]), REGIONS.map((r) => [r, "db.serverless", false]));
  for (const i of instances) assert.deepEqual(options.get(i.name)?.ignoreChanges, ["engineVersion"], `${i.name}: upgraded with its cluster`);
  const auroraKeys = ofType("aws:kms/key:Key").filter((k) => k.name.startsWith("kms-aurora"));
  assert.deepEqual(auroraKeys.map((k) => k.region), REGIONS, "a KMS key per region");
});

test("TLS is forced on every cluster", () => {
  const groups = ofType("aws:rds/clusterParameterGroup:ClusterParameterGroup");
  assert.deepEqual(groups.map((g) => g.region), REGIONS);
  for (const g of groups) {
    assert.equal(g.inputs.family, "aurora-postgresql15");
    assert.deepEqual(g.inputs.parameters.map((p: { name: string; value: string }) => [p.name, p.value]), [["rds.force_ssl", "1"]]);
    assert.equal(one("aws:rds/cluster:Cluster", `aurora-${g.region}`).inputs.dbClusterParameterGroupName, g.inputs.name);
  }
});

test("the master password: generated, a secret in the state, an SSM SecureString under its own key, never in config", () => {
  const pw = ofType("random:index/randomPassword:RandomPassword");
  assert.equal(pw.length, 1);
  assert.ok(pw[0].inputs.length >= 32);
  assert.doesNotMatch(pw[0].inputs.overrideSpecial, /[/"@ ]/, "characters Aurora refuses");
  const primary = one("aws:rds/cluster:Cluster", "aurora-us-east-1");
  assert.equal(plain(primary.inputs.masterPassword), "generated-secret-0123456789");
  assert.ok(isSecret(primary.inputs.masterPassword));
  const param = ofType("aws:ssm/parameter:Parameter").find((p) => p.inputs.name === "/migration/db/t1/password");
  assert.equal(param?.inputs.type, "SecureString");
  assert.equal(param?.inputs.keyId, "arn:aws:mock:us-east-1:123456789012:aws:kms/key:Key/kms-ssm-t1");
  assert.equal(plain(param?.inputs.value), "generated-secret-0123456789");
  assert.ok(isSecret(param?.inputs.value));
  const example = readFileSync(join(__dirname, "..", "..", "Pulumi.dev.yaml"), "utf8");
  assert.doesNotMatch(example, /password|secret/i, "no credential in the example configuration");
});

test("application per region: Fargate 256/512 with logs; a blue and a green service, each in its own target group", () => {
  for (const region of REGIONS) {
    assert.equal(ofType("aws:ecs/cluster:Cluster", region).length, 1);
    const task = ofType("aws:ecs/taskDefinition:TaskDefinition", region)[0];
    assert.deepEqual([task.inputs.cpu, task.inputs.memory, task.inputs.networkMode], ["256", "512", "awsvpc"]);
    assert.deepEqual(task.inputs.requiresCompatibilities, ["FARGATE"]);
    assert.deepEqual(task.inputs.runtimePlatform, { cpuArchitecture: "ARM64", operatingSystemFamily: "LINUX" }, "arm64 Fargate: about 20 % cheaper");
    assert.deepEqual(ofType("aws:ecs/cluster:Cluster", region)[0].inputs.settings, [{ name: "containerInsights", value: "disabled" }], "Container Insights off by default (priced when on)");
    const container = JSON.parse(task.inputs.containerDefinitions)[0];
    assert.equal(container.logConfiguration.logDriver, "awslogs");
    assert.equal(container.logConfiguration.options["awslogs-group"], `/ecs/app-${region}-t1`);
    // A colour is a task definition: one family per colour.
    assert.deepEqual(ofType("aws:ecs/taskDefinition:TaskDefinition", region).map((t) => t.inputs.family),
      [`app-blue-${region}-t1`, `app-green-${region}-t1`]);
    for (const t of ofType("aws:ecs/taskDefinition:TaskDefinition", region)) {
      assert.deepEqual(options.get(t.name)?.ignoreChanges, ["containerDefinitions"],
        "a release names its image in the shifter's start: a new containerImage in config registers no revision");
      assert.equal(t.inputs.skipDestroy, true, "a replaced definition never deregisters the revision the live colour runs");
    }
    const group = ofType("aws:cloudwatch/logGroup:LogGroup", region).find((g) => g.inputs.name === `/ecs/app-${region}-t1`);
    assert.ok(group && group.inputs.retentionInDays > 0);
    const services = ofType("aws:ecs/service:Service", region);
    assert.deepEqual(services.map((s) => [s.inputs.name, s.inputs.desiredCount, s.inputs.loadBalancers[0].targetGroupArn.replace(/.*Group\//, ""),
      s.inputs.taskDefinition.replace(/.*Definition\//, "")]), [
      [`app-blue-${region}-t1`, 2, `tg-blue-${region}-t1`, `task-app-blue-${region}-t1`],
      [`app-green-${region}-t1`, 0, `tg-green-${region}-t1`, `task-app-green-${region}-t1`],
    ], "the idle colour runs nothing outside a release; each colour its own task definition");
    for (const s of services) {
      assert.equal(s.inputs.launchType, "FARGATE");
      assert.equal(s.inputs.networkConfiguration.assignPublicIp, false);
      assert.deepEqual(s.inputs.networkConfiguration.securityGroups, [`sg-tasks-${region}-t1-id`]);
      assert.equal(s.inputs.forceDelete, true);
      assert.deepEqual(options.get(s.name)?.ignoreChanges, ["desiredCount", "taskDefinition"],
        "the shifter owns each colour's count and task definition: pulumi up never changes the live colour");
    }
    const targets = ofType("aws:appautoscaling/target:Target", region);
    assert.deepEqual(targets.map((t) => t.inputs.minCapacity), [2, 0], "blue's floor its count, idle green's 0");
    for (const t of targets) {
      assert.deepEqual(options.get(t.name)?.ignoreChanges, ["minCapacity"], "the shifter moves the floors with the counts");
    }
  }
});

test("the listener forwards blue 100 / green 0, and pulumi up never resets the weights the shifter set", () => {
  for (const region of REGIONS) {
    const listener = ofType("aws:lb/listener:Listener", region)[0];
    const groups = listener.inputs.defaultActions[0].forward.targetGroups;
    assert.deepEqual(groups.map((g: { arn: string; weight: number }) => [g.arn.replace(/.*Group\//, ""), g.weight]),
      [[`tg-blue-${region}-t1`, 100], [`tg-green-${region}-t1`, 0]]);
    assert.deepEqual(options.get(listener.name)?.ignoreChanges, ["defaultActions"]);
    assert.deepEqual([listener.inputs.port, listener.inputs.protocol, listener.inputs.certificateArn], [80, "HTTP", undefined], "plain HTTP without a certificate");
    assert.equal(ofType("aws:lb/listener:Listener", region).length, 1);
  }
});

test("autoscaling: each service tracks CPU and memory between its desired count and maxCount (the idle green from 0)", () => {
  for (const region of REGIONS) {
    const targets = ofType("aws:appautoscaling/target:Target", region);
    assert.deepEqual(targets.map((t) => [t.inputs.resourceId, t.inputs.minCapacity, t.inputs.maxCapacity]), [
      [`service/ecs-${region}-t1/app-blue-${region}-t1`, 2, 6],
      [`service/ecs-${region}-t1/app-green-${region}-t1`, 0, 6],
    ]);
    const policies = ofType("aws:appautoscaling/policy:Policy", region).map((p) => [
      p.inputs.resourceId, p.inputs.policyType, p.inputs.targetTrackingScalingPolicyConfiguration.predefinedMetricSpecification.predefinedMetricType,
    ]);
    for (const color of ["blue", "green"]) {
      const mine = policies.filter(([id]) => id === `service/ecs-${region}-t1/app-${color}-${region}-t1`);
      assert.deepEqual(mine.map(([, type, metric]) => [type, metric]).sort(), [
        ["TargetTrackingScaling", "ECSServiceAverageCPUUtilization"],
        ["TargetTrackingScaling", "ECSServiceAverageMemoryUtilization"],
      ], `${region} ${color}`);
    }
  }
});

test("state: DynamoDB on demand, pk/sk strings, point-in-time recovery, encrypted, TTL on expires_at; a global table with a replica in every other region", () => {
  const t = one("aws:dynamodb/table:Table", "migration-state");
  assert.equal(t.region, "us-east-1");
  assert.equal(t.inputs.billingMode, "PAY_PER_REQUEST");
  assert.deepEqual([t.inputs.hashKey, t.inputs.rangeKey], ["pk", "sk"]);
  assert.deepEqual(t.inputs.attributes, [{ name: "pk", type: "S" }, { name: "sk", type: "S" }]);
  assert.equal(t.inputs.pointInTimeRecovery.enabled, true);
  assert.equal(t.inputs.serverSideEncryption.enabled, true);
  assert.equal(t.inputs.serverSideEncryption.kmsKeyArn, undefined, "the AWS managed key, which every region has: no customer key per replica");
  assert.deepEqual(t.inputs.ttl, { attributeName: "expires_at", enabled: true });
  assert.deepEqual([t.inputs.streamEnabled, t.inputs.streamViewType], [true, "NEW_AND_OLD_IMAGES"], "global tables replicate through the stream");
  assert.deepEqual(t.inputs.replicas.map((r: { regionName: string }) => r.regionName), SECONDARIES, "a replica in each other region: three copies");
  for (const r of t.inputs.replicas) {
    assert.equal(r.pointInTimeRecovery, true, `${r.regionName}: PITR on the replica too`);
    assert.equal(r.consistencyMode, "EVENTUAL", "multi-region strong consistency is not offered across these continents");
    assert.equal(r.kmsKeyArn, undefined);
  }
  assert.equal(ofType("aws:dynamodb/table:Table").length, 1, "one table; the replicas are its own");
});

test("parameters: the SSM hierarchy the functions read, in every region; secrets as SecureString under the region's key; run-time-owned values left alone", () => {
  const params = ofType("aws:ssm/parameter:Parameter");
  const hierarchy = [
    "/migration/db/t1/writer-endpoint",
    "/migration/db/t1/reader-endpoint/us-east-1",
    "/migration/db/t1/reader-endpoint/eu-west-1",
    "/migration/db/t1/reader-endpoint/ap-southeast-1",
    "/migration/db/t1/database",
    "/migration/db/t1/user",
    "/migration/db/t1/password",
    ...["data-validator", "lag-probe", "failover", "cutover"].flatMap((fn) => [`/migration/db/t1/users/${fn}`, `/migration/db/t1/passwords/${fn}`]),
    "/migration/db/t1/source-dsn",
    "/migration/app/t1/active-region",
    "/migration/app/t1/traffic-policy",
  ].sort();
  // The cutover's, in the primary only: one copy of the switch the cutover function flips.
  const cutover = ["source-admin-dsn", "reverse-conninfo", "source-endpoint"].map((p) => `/migration/db/t1/${p}`)
    .concat("/migration/app/t1/writes-to");
  for (const region of REGIONS) {
    const mine = params.filter((p) => p.region === region);
    assert.deepEqual(mine.map((p) => p.inputs.name).sort(), region === "us-east-1" ? [...hierarchy, ...cutover].sort() : hierarchy, `${region}: the whole hierarchy`);
    const key = region === "us-east-1" ? "kms-ssm-t1" : `kms-ssm-${region}-t1`;
    assert.equal(one("aws:kms/key:Key", key).region, region);
    for (const p of mine) {
      const secure = /\/(password|passwords\/[a-z-]+|source-dsn|source-admin-dsn|reverse-conninfo)$/.test(p.inputs.name);
      assert.equal(p.inputs.type, secure ? "SecureString" : "String", p.inputs.name);
      if (secure) assert.equal(p.inputs.keyId, `arn:aws:mock:${region}:123456789012:aws:kms/key:Key/${key}`, `${p.inputs.name}: ${region}'s own key`);
      assert.ok(isSecret(p.inputs.value), `${p.inputs.name}: the provider keeps every parameter value secret in the state`);
      // Operator-owned secrets and the run-time switches: seeded once, never overwritten.
      const owned = /\/(writer-endpoint|source-dsn|active-region|source-admin-dsn|reverse-conninfo|writes-to|passwords\/[a-z-]+)$/.test(p.inputs.name);
      assert.deepEqual(options.get(p.name)?.ignoreChanges ?? [], owned ? ["value"] : [], p.inputs.name);
    }
    const value = (n: string) => plain(mine.find((p) => p.inputs.name === n)?.inputs.value);
    assert.equal(value("/migration/db/t1/writer-endpoint"), "aurora-us-east-1-t1.cluster-x.us-east-1.rds.amazonaws.com:5432", "seeded with the primary's writer");
    assert.equal(value("/migration/db/t1/reader-endpoint/eu-west-1"), "aurora-eu-west-1-t1.cluster-ro-x.eu-west-1.rds.amazonaws.com:5432");
    assert.equal(value("/migration/app/t1/active-region"), "us-east-1");
  }
  const primary = (n: string) => plain(params.find((p) => p.region === "us-east-1" && p.inputs.name === n)?.inputs.value);
  assert.equal(primary("/migration/app/t1/writes-to"), "source", "the application writes to the source until the switch");
  assert.equal(primary("/migration/db/t1/source-endpoint"), "onprem-oracle.example.com:2484");
  assert.equal(primary("/migration/db/t1/users/lag-probe"), "cutover_lag_probe", "the role infra/sql/roles.sql creates");
  assert.match(String(primary("/migration/db/t1/passwords/failover")), /SET-ME/, "a placeholder the operator replaces, never the master password");
  assert.equal(params.filter((p) => /\/admin-(user|password)$/.test(p.inputs.name)).length, 0, "no function is handed the master user");
  assert.match(String(primary("/migration/db/t1/source-admin-dsn")), /SET-ME/, "a placeholder, never a real secret");
  assert.match(String(primary("/migration/db/t1/reverse-conninfo")), /^host=aurora-us-east-1-t1\.cluster-x\..* sslmode=verify-full$/);
  assert.match(String(primary("/migration/db/t1/reverse-conninfo")), /password=SET-ME/);
});

test("nothing is retained or protected on destroy", () => {
  assert.ok(options.size >= resources.length - 1, "options recorded for every resource");
  for (const [resource, opts] of options) {
    assert.notEqual(opts.retainOnDelete, true, resource);
    assert.notEqual(opts.protect, true, resource);
  }
  for (const r of resources) {
    for (const flag of ["deletionProtection", "enableDeletionProtection", "deletionProtectionEnabled"]) {
      assert.notEqual(r.inputs[flag], true, `${r.name}.${flag}`);
    }
  }
  for (const k of ofType("aws:kms/key:Key")) assert.equal(k.inputs.deletionWindowInDays, 7);
});

test("without createDms and createVpn: no DMS, no VPN, no lookup of the Oracle password", () => {
  assert.deepEqual(resources.filter((r) => /^aws:(dms|ec2\/(customerGateway|vpnGateway|vpnConnection))/.test(r.type)).map((r) => r.name), []);
  assert.ok(!calls.includes("aws:ssm/getParameter:getParameter"));
});
