// The platform with the example (default) configuration: every requirement of the
// network, database, application, state and parameters, checked on what would be created.
import assert from "node:assert/strict";
import { before, test } from "node:test";

import { calls, install, isSecret, ofType, one, plain, resources, settle } from "./mocks";

install("platform");

import { readSettings } from "../config";
import { isWildcardAction, PolicyDocument, RESOURCE_WILDCARD_ALLOWED } from "../components/iam";
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
  assert.ok(!calls.includes("aws:ssm/getParameter:getParameter"), "DMS is off: no SSM lookup");
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
  const auroraKeys = ofType("aws:kms/key:Key").filter((k) => k.name.startsWith("kms-aurora"));
  assert.deepEqual(auroraKeys.map((k) => k.region).sort(), [...REGIONS].sort(), "a KMS key per region");
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
    assert.equal(ofType("aws:cloudwatch/logGroup:LogGroup", region).filter((g) => g.inputs.name.startsWith("/ecs/")).length, 1);
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

const FUNCTIONS = ["data-validator", "lag-probe", "traffic-shifter", "failover"];

test("four Lambdas: provided.al2023 on arm64, JSON logs into a log group with retention", () => {
  const fns = ofType("aws:lambda/function:Function");
  assert.deepEqual(fns.map((f) => f.inputs.name).sort(), FUNCTIONS.map((f) => `${f}-t1`).sort());
  for (const f of fns) {
    assert.equal(f.region, "us-east-1");
    assert.equal(f.inputs.runtime, "provided.al2023");
    assert.deepEqual(f.inputs.architectures, ["arm64"]);
    assert.equal(f.inputs.handler, "bootstrap");
    assert.equal(f.inputs.loggingConfig.logFormat, "JSON");
    const group = ofType("aws:cloudwatch/logGroup:LogGroup").find((g) => g.inputs.name === `/aws/lambda/${f.inputs.name}`);
    assert.ok(group && group.inputs.retentionInDays > 0, f.inputs.name);
    assert.equal(f.inputs.layers, undefined, "no Oracle layer unless configured");
  }
  const byName = new Map(fns.map((f) => [f.inputs.name, f.inputs]));
  assert.equal(byName.get("failover-t1").reservedConcurrentExecutions, 1, "failover cannot be stormed");
  for (const f of ["data-validator-t1", "lag-probe-t1", "failover-t1"]) {
    assert.equal(byName.get(f).vpcConfig.subnetIds.length, 2, `${f} runs in the private subnets`);
  }
  assert.equal(byName.get("traffic-shifter-t1").vpcConfig, undefined, "the shifter needs no database");
});

test("each function's environment matches what its crate reads", () => {
  const env = (fn: string) => ofType("aws:lambda/function:Function").find((f) => f.inputs.name === `${fn}-t1`)?.inputs.environment.variables;
  const common = ["CUTOVER_SUFFIX", "CUTOVER_PRIMARY_REGION", "CUTOVER_REGIONS", "CUTOVER_STATE_TABLE", "CUTOVER_OPS_TOPIC_ARN",
    "CUTOVER_METRICS_NAMESPACE", "CUTOVER_DB_SSM_PREFIX", "CUTOVER_APP_SSM_PREFIX", "CUTOVER_DB_SSLMODE"];
  const own: Record<string, string[]> = {
    "data-validator": ["CUTOVER_VALIDATION_TOPIC_ARN", "CUTOVER_VALIDATION_SCHEMAS"],
    "lag-probe": ["CUTOVER_LAG_WINDOW_MS", "CUTOVER_LAG_CADENCE_MS"],
    "traffic-shifter": ["CUTOVER_SERVICE", "CUTOVER_LISTENER_ARNS", "CUTOVER_BLUE_TG_ARNS", "CUTOVER_GREEN_TG_ARNS", "CUTOVER_WATCHED_ALARMS"],
    failover: ["CUTOVER_FAILOVER_DRIVER", "CUTOVER_GLOBAL_CLUSTER_ID", "CUTOVER_CLUSTER_ARNS", "CUTOVER_RPO_BUDGET_MS", "CUTOVER_FAILOVER_ALARMS"],
  };
  for (const fn of FUNCTIONS) {
    const vars = env(fn);
    for (const v of [...common, ...own[fn]]) assert.ok(v in vars, `${fn}: ${v}`);
    assert.equal(vars.CUTOVER_REGIONS, "us-east-1,eu-west-1,ap-southeast-1");
    assert.equal(vars.CUTOVER_DB_SSLMODE, "verify-full");
    for (const [k, v] of Object.entries(vars)) assert.ok(!/password|secret/i.test(k) && !/generated-secret/.test(String(v)), `${fn}: ${k} carries no secret`);
  }
  const listeners = String(env("traffic-shifter").CUTOVER_LISTENER_ARNS).split(",");
  assert.deepEqual(listeners.map((l) => l.split("=")[0]), ["us-east-1", "eu-west-1", "ap-southeast-1"]);
  assert.match(String(env("failover").CUTOVER_CLUSTER_ARNS), /^us-east-1=arn:aws:mock:us-east-1:.*aurora-us-east-1-t1/);
});

test("every IAM policy: no wildcard action, '*' resources only where AWS allows nothing narrower", () => {
  const docs = ofType("aws:iam/rolePolicy:RolePolicy").map((p) => ({ name: p.name, doc: JSON.parse(String(plain(p.inputs.policy))) as PolicyDocument }));
  const inline = ofType("aws:iam/role:Role").flatMap((r) => (r.inputs.inlinePolicies ?? []).map((p: { policy: string }) => ({ name: r.name, doc: JSON.parse(p.policy) as PolicyDocument })));
  assert.ok(docs.length >= 9, `${docs.length} role policies`);
  for (const { name, doc } of [...docs, ...inline]) {
    for (const st of doc.Statement) {
      for (const action of st.Action) {
        assert.ok(!isWildcardAction(action), `${name}: wildcard action ${action}`);
        if (st.Resource.includes("*")) assert.ok(action in RESOURCE_WILDCARD_ALLOWED, `${name}: ${action} on "*"`);
      }
      for (const r of st.Resource) if (r !== "*") assert.match(String(r), /^arn:aws:/, `${name}: ${r}`);
    }
  }
  assert.equal(isWildcardAction("s3:*"), true);
  assert.equal(isWildcardAction("ssm:GetParameter"), false);
  const shifter = docs.find((d) => d.name === "policy-traffic-shifter-t1")?.doc;
  const modify = shifter?.Statement.find((st) => st.Action.includes("elasticloadbalancing:ModifyListener"));
  assert.equal(modify?.Resource.length, 3, "ModifyListener only on this stack's three listeners");
  const validator = docs.find((d) => d.name === "policy-data-validator-t1")?.doc;
  const metrics = validator?.Statement.find((st) => st.Action.includes("cloudwatch:PutMetricData"));
  assert.deepEqual(metrics?.Condition, { StringEquals: { "cloudwatch:namespace": "Cutover" } });
});

test("triggers: lag-probe and the shifter's tick every minute, validation daily, alarm changes to the shifter and failover", () => {
  const rules = ofType("aws:cloudwatch/eventRule:EventRule").filter((r) => r.region === "us-east-1");
  const schedule = (fn: string) => rules.find((r) => r.name === `schedule-${fn}-t1`)?.inputs.scheduleExpression;
  assert.equal(schedule("lag-probe"), "rate(1 minute)");
  assert.equal(schedule("traffic-shifter"), "rate(1 minute)");
  assert.equal(schedule("data-validator"), "rate(1 day)");
  const tick = ofType("aws:cloudwatch/eventTarget:EventTarget").find((t) => t.name === "schedule-traffic-shifter-target-t1");
  assert.deepEqual(JSON.parse(tick?.inputs.input), { command: "tick" });
  for (const fn of ["traffic-shifter", "failover"]) {
    const rule = rules.find((r) => r.name === `alarms-to-${fn}-t1`);
    const pattern = JSON.parse(rule?.inputs.eventPattern);
    assert.deepEqual(pattern["detail-type"], ["CloudWatch Alarm State Change"]);
    assert.deepEqual(pattern.detail.state.value, ["ALARM"]);
    assert.ok(ofType("aws:lambda/permission:Permission").some((p) => p.name === `alarms-to-${fn}-invoke-t1`));
  }
  const forwarded = ofType("aws:cloudwatch/eventTarget:EventTarget").filter((t) => t.name.startsWith("alarms-forward-target"));
  assert.deepEqual(forwarded.map((t) => t.region).sort(), ["ap-southeast-1", "eu-west-1"]);
  assert.equal(ofType("aws:lambda/permission:Permission").length, 5);
});

test("notifications: ops and validation topics, KMS-encrypted; no e-mail unless configured", () => {
  const topics = ofType("aws:sns/topic:Topic");
  assert.deepEqual(topics.map((t) => t.inputs.name).sort(), ["cutover-ops-t1", "cutover-validation-t1"]);
  for (const t of topics) assert.match(t.inputs.kmsMasterKeyId, /kms-sns/);
  assert.equal(ofType("aws:sns/topicSubscription:TopicSubscription").length, 0);
});

test("alarms with SNS actions: lag over 1 s at high resolution, p99 over 200 ms, 5xx, unhealthy hosts, validation mismatch, writer unavailable", () => {
  const alarms = ofType("aws:cloudwatch/metricAlarm:MetricAlarm");
  for (const a of alarms) assert.ok(a.inputs.alarmActions.length > 0 && /sns-ops-t1/.test(a.inputs.alarmActions[0]), `${a.name}: ${a.inputs.alarmActions}`);
  const lag = alarms.filter((a) => a.inputs.metricName === "ReplicationLagMs");
  assert.deepEqual(lag.map((a) => a.inputs.dimensions.Region).sort(), ["ap-southeast-1", "eu-west-1"]);
  for (const a of lag) {
    assert.equal(a.inputs.period, 10, "high resolution");
    assert.equal(a.inputs.threshold, 1000);
  }
  const p99 = alarms.filter((a) => a.inputs.extendedStatistic === "p99");
  assert.equal(p99.length, 3);
  for (const a of p99) assert.equal(a.inputs.threshold, 0.2);
  assert.equal(alarms.filter((a) => a.inputs.metricName === "HTTPCode_Target_5XX_Count").length, 3);
  assert.equal(alarms.filter((a) => a.inputs.metricName === "UnHealthyHostCount").length, 3);
  assert.equal(alarms.filter((a) => a.inputs.metricName === "MismatchedRows").length, 1);
  const writer = alarms.find((a) => a.inputs.name === "primary-writer-unavailable-t1");
  assert.equal(writer?.inputs.dimensions.Region, "us-east-1");
  assert.equal(ofType("aws:cloudwatch/eventRule:EventRule").filter((r) => r.name.startsWith("dms-task-failure")).length, 0);
});

test("dashboard: lag per region (heartbeat 1 s and engine), application health per region, ECS, validation", () => {
  const dash = ofType("aws:cloudwatch/dashboard:Dashboard")[0];
  const body = JSON.parse(dash.inputs.dashboardBody);
  const titles: string[] = body.widgets.map((w: { properties: { title: string } }) => w.properties.title);
  assert.ok(titles.includes("Replication lag (heartbeat, 1 s)"));
  assert.ok(titles.includes("Replication lag (engine)"));
  assert.ok(titles.includes("Validation"));
  for (const r of REGIONS) {
    assert.ok(titles.some((t) => t.startsWith(`Application ${r}`)), r);
    assert.ok(titles.some((t) => t.startsWith(`ECS ${r}`)), r);
  }
  assert.equal(body.widgets[0].properties.period, 1);
  assert.ok(!titles.some((t) => t.startsWith("DMS")), "no DMS widget without DMS");
});

test("runbook: validate (plan, Map over validate-segment, merge) -> shift region by region -> validate -> record the phase; failures abort", () => {
  const sm = ofType("aws:sfn/stateMachine:StateMachine")[0];
  const def = JSON.parse(sm.inputs.definition);
  assert.equal(def.StartAt, "PreValidatePlan");
  assert.equal(def.States.PreValidateSegments.Type, "Map");
  assert.equal(def.States.PreValidateSegments.ItemProcessor.States.ValidateSegment.Parameters.Payload.command, "validate-segment");
  assert.equal(def.States.StartShift.Parameters.Payload.scope, "region-by-region");
  assert.equal(def.States.RecordPhase.Resource, "arn:aws:states:::dynamodb:putItem");
  assert.equal(def.States.AbortShift.Parameters.Payload.command, "abort");
  for (const [id, st] of Object.entries(def.States) as [string, { Type: string; Catch?: unknown[] }][]) {
    if (st.Type === "Task" && id !== "RecordPhase" && id !== "AbortShift") assert.ok(st.Catch, `${id} catches failures`);
  }
});
