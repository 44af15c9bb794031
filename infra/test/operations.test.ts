// Part 2 with the example (default) configuration: the functions, their roles, triggers,
// notifications, alarms, dashboard and the runbook, checked on what would be created.
import assert from "node:assert/strict";
import { before, test } from "node:test";

import * as pulumi from "@pulumi/pulumi";

import { build, install, ofType, one, options, plain, Recorded, resourceName, resources } from "./mocks";

install("operations");

import { isWildcardAction, MANAGED_POLICIES_ALLOWED, PolicyDocument, RESOURCE_WILDCARD_ALLOWED, Statement } from "../components/iam";
import { KEY_POLICY_ROOT_SID } from "../components/notifications";
import { allows, arnOf, checkAlarmDelivery, checkEventDelivery, grants } from "./delivery";

const REGIONS = ["us-east-1", "eu-west-1", "ap-southeast-1"];
const FUNCTIONS = ["data-validator", "lag-probe", "traffic-shifter", "failover", "cutover"];
const IN_VPC = ["data-validator", "lag-probe", "failover", "cutover"];
const ACCOUNT = "123456789012";
/** The control plane of every region: all five functions in the primary, lag-probe and failover in each other region. */
const COPIES: { name: string; region: string }[] = [
  ...FUNCTIONS.map((name) => ({ name, region: "us-east-1" })),
  ...REGIONS.slice(1).flatMap((region) => ["lag-probe", "failover"].map((name) => ({ name, region }))),
];
/** A resource name: `<type>-t1` in the primary, `<type>-<region>-t1` elsewhere. */
const rn = (type: string, region = "us-east-1") => (region === "us-east-1" ? `${type}-t1` : `${type}-${region}-t1`);

before(async () => {
  await build({ environmentSuffix: "t1" });
});

/**
 * The two parameters failover writes in every region of the stack, its own and each other's
 * (functions/failover/src/failover.rs `copy_endpoints` and `sync_endpoints`, through
 * `write_missing`: GetParameter, then PutParameter where the copy differs). Both are String
 * parameters, so no KMS key is involved.
 */
const ENDPOINTS = ["db/t1/writer-endpoint", "app/t1/active-region"];
const ENDPOINT_COPIES = REGIONS.flatMap((r) => ENDPOINTS.map((p) => `arn:aws:ssm:${r}:${ACCOUNT}:parameter/migration/${p}`));

const fn = (name: string, region = "us-east-1"): Recorded => one("aws:lambda/function:Function", rn(`fn-${name}`, region));
const env = (name: string, region = "us-east-1"): Record<string, string> => fn(name, region).inputs.environment.variables;

test("five Lambdas in the primary (the cutover among them), lag-probe and failover in every other region, from target/lambda/<name>/bootstrap.zip: provided.al2023, arm64, JSON logs into a log group with retention", async () => {
  const fns = ofType("aws:lambda/function:Function");
  assert.deepEqual(fns.map((f) => [f.region, f.inputs.name]).sort(), COPIES.map((c) => [c.region, rn(c.name, c.region)]).sort());
  for (const { name, region } of COPIES) {
    const f = fn(name, region);
    assert.equal(f.region, region);
    assert.deepEqual([f.inputs.runtime, f.inputs.architectures, f.inputs.handler], ["provided.al2023", ["arm64"], "bootstrap"]);
    assert.equal(await f.inputs.code.path, `../target/lambda/${name}/bootstrap.zip`);
    assert.equal(f.inputs.loggingConfig.logFormat, "JSON");
    assert.equal(f.inputs.loggingConfig.logGroup, `/aws/lambda/${rn(name, region)}`);
    const group = ofType("aws:cloudwatch/logGroup:LogGroup", region).find((g) => g.inputs.name === `/aws/lambda/${rn(name, region)}`);
    assert.ok(group && group.inputs.retentionInDays > 0, name);
    const deps = (options.get(f.name)?.dependsOn as pulumi.Resource[]).map(resourceName);
    assert.ok(deps.includes(rn(`log-${name}`, region)), `${name} waits for its log group (else Lambda creates one without retention)`);
    const layers = name === "traffic-shifter" ? undefined : [`arn:aws:mock:${region}:${ACCOUNT}:aws:lambda/layerVersion:LayerVersion/${rn("layer-db-ca", region)}`];
    assert.deepEqual(f.inputs.layers, layers, "its own region's CA layer where a database is opened; no Oracle layer unless configured");
  }
});

test("the CA bundle ships as a file in a layer (/opt), not in an SSM parameter (a Standard one holds 4 KB)", async () => {
  assert.deepEqual(ofType("aws:lambda/layerVersion:LayerVersion").map((l) => l.region), REGIONS, "a layer per region (a function takes layers of its own region)");
  const layer = one("aws:lambda/layerVersion:LayerVersion", "layer-db-ca-t1");
  assert.equal(layer.region, "us-east-1");
  assert.deepEqual([layer.inputs.layerName, layer.inputs.compatibleArchitectures, layer.inputs.compatibleRuntimes], ["db-ca-bundle-t1", ["arm64"], ["provided.al2023"]]);
  const assets = await layer.inputs.code.assets;
  assert.deepEqual(Object.keys(assets), ["rds-ca-bundle.pem"], "unpacked as /opt/rds-ca-bundle.pem");
  assert.equal(await assets["rds-ca-bundle.pem"].path, "rds-global-bundle.pem", "caBundleFile");
  for (const { name, region } of COPIES.filter((c) => c.name !== "traffic-shifter")) assert.equal(env(name, region).CUTOVER_DB_CA_FILE, "/opt/rds-ca-bundle.pem", name);
  const params = ofType("aws:ssm/parameter:Parameter");
  assert.ok(!params.some((p) => p.inputs.name.endsWith("/ca-bundle")), "no CA bundle parameter");
  for (const p of params) assert.ok(String(plain(p.inputs.value)).length <= 4096 || p.inputs.tier !== "Standard", `${p.inputs.name} fits a Standard parameter`);
});

test("the functions that reach a database run in the function subnets; no reserved concurrency unless configured", () => {
  for (const { name, region } of COPIES.filter((c) => c.name !== "traffic-shifter")) {
    assert.deepEqual(fn(name, region).inputs.vpcConfig, {
      subnetIds: [`subnet-functions-0-${region}-t1-id`, `subnet-functions-1-${region}-t1-id`],
      securityGroupIds: [`sg-functions-${region}-t1-id`],
    }, `${name} in ${region}: its own region's function subnets`);
  }
  assert.equal(fn("traffic-shifter").inputs.vpcConfig, undefined, "the shifter talks to AWS APIs only");
  for (const { name, region } of COPIES) {
    assert.equal(fn(name, region).inputs.reservedConcurrentExecutions, undefined, `${name}: a new account's quota of 10 cannot spare any`);
  }
});

test("each function's environment is exactly what its crate reads", () => {
  const common = ["CUTOVER_SUFFIX", "CUTOVER_PRIMARY_REGION", "CUTOVER_REGIONS", "CUTOVER_STATE_TABLE", "CUTOVER_OPS_TOPIC_ARN",
    "CUTOVER_METRICS_NAMESPACE", "CUTOVER_DB_SSM_PREFIX", "CUTOVER_APP_SSM_PREFIX", "CUTOVER_DB_SSLMODE"];
  const own: Record<string, string[]> = {
    "data-validator": ["CUTOVER_DB_CA_FILE", "CUTOVER_VALIDATION_TOPIC_ARN", "CUTOVER_VALIDATION_TABLES", "CUTOVER_VALIDATION_SCHEMAS"],
    "lag-probe": ["CUTOVER_DB_CA_FILE", "CUTOVER_LAG_WINDOW_MS", "CUTOVER_LAG_CADENCE_MS", "CUTOVER_LAG_PROBE_ID"],
    "traffic-shifter": ["CUTOVER_SERVICE", "CUTOVER_LISTENER_ARNS", "CUTOVER_BLUE_TG_ARNS", "CUTOVER_GREEN_TG_ARNS", "CUTOVER_WATCHED_ALARMS", "CUTOVER_LATENCY_GATE_MS",
      "CUTOVER_ECS_CLUSTERS", "CUTOVER_BLUE_SERVICES", "CUTOVER_GREEN_SERVICES", "CUTOVER_SCALE_DOWN_BAKE"],
    failover: ["CUTOVER_DB_CA_FILE", "CUTOVER_FAILOVER_DRIVER", "CUTOVER_GLOBAL_CLUSTER_ID", "CUTOVER_CLUSTER_ARNS", "CUTOVER_RPO_BUDGET_MS", "CUTOVER_FAILOVER_ALARMS", "CUTOVER_EVENT_BUS",
      "CUTOVER_RECONCILE_KEEP_DAYS"],
    // The rest of the crate's settings keep their defaults (functions/cutover/src/config.rs).
    cutover: ["CUTOVER_DB_CA_FILE", "CUTOVER_STABLE_WATCH_MS", "CUTOVER_STABLE_ALARMS"],
  };
  for (const { name, region } of COPIES) {
    const vars = env(name, region);
    assert.deepEqual(Object.keys(vars).sort(), [...common, ...own[name]].sort(), name);
    // CUTOVER_PRIMARY_REGION is the crates' home region: every copy's clients talk to its own region.
    assert.deepEqual([vars.CUTOVER_SUFFIX, vars.CUTOVER_PRIMARY_REGION, vars.CUTOVER_REGIONS], ["t1", region, "us-east-1,eu-west-1,ap-southeast-1"]);
    assert.deepEqual([vars.CUTOVER_STATE_TABLE, vars.CUTOVER_METRICS_NAMESPACE, vars.CUTOVER_DB_SSLMODE], ["migration-state-t1", "Cutover", "verify-full"]);
    assert.deepEqual([vars.CUTOVER_DB_SSM_PREFIX, vars.CUTOVER_APP_SSM_PREFIX], ["/migration/db/t1", "/migration/app/t1"]);
    assert.match(vars.CUTOVER_OPS_TOPIC_ARN, new RegExp(`:${region}:.*${rn("sns-ops", region)}$`), `${name} in ${region}: its region's topic`);
    if (name === "lag-probe") assert.equal(vars.CUTOVER_LAG_PROBE_ID, `lag-probe-${region}`, "a heartbeat row per region's probe");
    for (const [k, v] of Object.entries(vars)) {
      assert.ok(!/password|secret/i.test(k) && !/generated-secret/.test(String(v)), `${name}: ${k} carries no secret`);
    }
  }
  assert.deepEqual([env("cutover").CUTOVER_STABLE_WATCH_MS, env("cutover").CUTOVER_STABLE_ALARMS], ["600000", "app-5xx-rate-t1,app-p99-latency-t1"],
    "the watch window the runbook waits, and the application's 5XX and latency alarms");
  const validator = env("data-validator");
  assert.deepEqual([validator.CUTOVER_VALIDATION_TABLES, validator.CUTOVER_VALIDATION_SCHEMAS], ["", "public"]);
  assert.match(validator.CUTOVER_VALIDATION_TOPIC_ARN, /sns-validation-t1$/);
  assert.deepEqual([env("lag-probe").CUTOVER_LAG_WINDOW_MS, env("lag-probe").CUTOVER_LAG_CADENCE_MS], ["55000", "1000"]);
  const shifter = env("traffic-shifter");
  assert.equal(shifter.CUTOVER_SERVICE, "app");
  assert.equal(shifter.CUTOVER_WATCHED_ALARMS, "app-5xx-rate-t1,app-p99-latency-t1,app-5xx-rate-blue-t1,app-p99-latency-blue-t1,app-5xx-rate-green-t1,app-p99-latency-green-t1",
    "the whole ALB's alarms and each colour's own target group's");
  const pairs = (v: string) => v.split(",").map((item) => item.split("="));
  assert.deepEqual(pairs(shifter.CUTOVER_LISTENER_ARNS).map(([r, arn]) => [r, arn.replace(/.*\//, "")]), REGIONS.map((r) => [r, `listener-${r}-t1`]));
  assert.deepEqual(pairs(shifter.CUTOVER_BLUE_TG_ARNS).map(([r, arn]) => [r, arn.replace(/.*\//, "")]), REGIONS.map((r) => [r, `tg-blue-${r}-t1`]));
  assert.deepEqual(pairs(shifter.CUTOVER_GREEN_TG_ARNS).map(([r, arn]) => [r, arn.replace(/.*\//, "")]), REGIONS.map((r) => [r, `tg-green-${r}-t1`]));
  // The shifter scales the colours the application created, by the names it gave them.
  const services = (color: string) => REGIONS.map((r) => [r, ofType("aws:ecs/service:Service", r).find((x) => x.name.includes(`svc-${color}`))?.inputs.name]);
  assert.deepEqual(pairs(shifter.CUTOVER_ECS_CLUSTERS), REGIONS.map((r) => [r, ofType("aws:ecs/cluster:Cluster", r)[0].inputs.name]));
  assert.deepEqual(pairs(shifter.CUTOVER_BLUE_SERVICES), services("blue"));
  assert.deepEqual(pairs(shifter.CUTOVER_GREEN_SERVICES), services("green"));
  assert.match(String(services("green")[1][1]), /^app-green-.*t1$/);
  assert.equal(shifter.CUTOVER_SCALE_DOWN_BAKE, "10m");
  for (const region of REGIONS) {
    const failover = env("failover", region);
    assert.deepEqual([failover.CUTOVER_FAILOVER_DRIVER, failover.CUTOVER_GLOBAL_CLUSTER_ID, failover.CUTOVER_RPO_BUDGET_MS, failover.CUTOVER_EVENT_BUS],
      ["aurora-global", "aurora-global-t1-id", "1000", "default"]);
    assert.equal(failover.CUTOVER_FAILOVER_ALARMS, "primary-writer-unavailable-t1,writer-unreachable-t1");
    assert.deepEqual(pairs(failover.CUTOVER_CLUSTER_ARNS).map(([r, arn]) => [r, arn.replace(/.*\//, "")]), REGIONS.map((r) => [r, `aurora-${r}-t1`]));
  }
});

type KeyStatement = { Sid: string; Principal: { AWS?: string; Service?: string | string[] }; Action: string | string[]; Resource: string };

/** Every identity policy in the stack: role policies and roles' inline policies. */
function identityPolicies(): { owner: string; doc: PolicyDocument }[] {
  const rolePolicies = ofType("aws:iam/rolePolicy:RolePolicy").map((p) => ({ owner: p.name, doc: JSON.parse(String(plain(p.inputs.policy))) }));
  const inline = ofType("aws:iam/role:Role").flatMap((r) => (r.inputs.inlinePolicies ?? []).map((p: { policy: string }) => ({ owner: r.name, doc: JSON.parse(p.policy) })));
  return [...rolePolicies, ...inline];
}

test("every IAM policy: no wildcard action; '*' only for actions AWS scopes no narrower; everything else this stack's ARNs", () => {
  const docs = identityPolicies();
  assert.equal(docs.length, COPIES.length * 2 + 2 + 2 + 3, "nine functions (own + logs), the runbook and the validation machine, two alarm forwarders, the application's task role per region");
  for (const { owner, doc } of docs) {
    for (const st of doc.Statement as Statement[]) {
      assert.equal(st.Effect, "Allow");
      for (const action of st.Action) {
        assert.ok(!isWildcardAction(action), `${owner}: wildcard action ${action}`);
        if (st.Resource.includes("*")) assert.ok(action in RESOURCE_WILDCARD_ALLOWED, `${owner}: ${action} on "*"`);
      }
      for (const r of st.Resource.map(String)) {
        if (r === "*") continue;
        assert.match(r, /^arn:aws:[a-z0-9-]+:[a-z0-9-]*:123456789012:\S+$/, `${owner}: ${r} is an ARN of this account`);
        assert.ok(!/:\*$|\/\*$/.test(r) || /log-[a-z0-9-]+-t1:\*$/.test(r), `${owner}: ${r} is scoped`);
      }
    }
  }
  for (const name of Object.keys(RESOURCE_WILDCARD_ALLOWED)) {
    assert.ok(docs.some(({ doc }) => doc.Statement.some((st) => st.Action.includes(name) && st.Resource.includes("*"))), `${name}: an exception still in use`);
  }
  assert.equal(isWildcardAction("s3:*"), true);
  assert.equal(isWildcardAction("ssm:Get*"), true);
  assert.equal(isWildcardAction("ssm:GetParameter"), false);
});

test("managed policies: only the documented ones, and only where needed", () => {
  const attached = ofType("aws:iam/rolePolicyAttachment:RolePolicyAttachment");
  for (const a of attached) assert.ok(a.inputs.policyArn in MANAGED_POLICIES_ALLOWED, `${a.name}: ${a.inputs.policyArn}`);
  assert.deepEqual(attached.map((a) => a.inputs.policyArn.replace(/.*\//, "")), REGIONS.map(() => "AmazonECSTaskExecutionRolePolicy"),
    "the ECS task execution role per region only: the VPC functions' ENI actions are inline (AWSLambdaVPCAccessExecutionRole adds logs:* on *)");
  for (const { name, region } of COPIES) {
    const doc = identityPolicies().find((d) => d.owner === rn(`policy-${name}`, region))?.doc as PolicyDocument;
    assert.equal(grants(doc, "ec2:CreateNetworkInterface", "*"), IN_VPC.includes(name), `${name}: ENI actions only in a VPC`);
    assert.equal(grants(doc, "logs:CreateLogGroup", "*"), false, name);
  }
  for (const r of ofType("aws:iam/role:Role")) assert.equal(r.inputs.managedPolicyArns, undefined, r.name);
});

test("roles: one per function, assumed by Lambda only; the runbook's by Step Functions only", () => {
  const assumed = (roleName: string) => JSON.parse(one("aws:iam/role:Role", roleName).inputs.assumeRolePolicy).Statement[0].Principal.Service;
  for (const { name, region } of COPIES) assert.equal(assumed(rn(`role-${name}`, region)), "lambda.amazonaws.com");
  assert.equal(assumed("role-runbook-t1"), "states.amazonaws.com");
  for (const { name, region } of COPIES) {
    assert.equal(fn(name, region).inputs.role, `arn:aws:mock:${region}:${ACCOUNT}:aws:iam/role:Role/${rn(`role-${name}`, region)}`, `${name} in ${region}: a role of its own`);
  }
});

test("function policies name this stack's table, topics, keys, parameters, listeners, alarms and clusters", () => {
  const doc = (owner: string): Statement[] => identityPolicies().find((d) => d.owner === owner)?.doc.Statement as Statement[];
  const grant = (owner: string, action: string) => doc(owner).filter((st) => st.Action.includes(action));
  for (const name of FUNCTIONS) {
    const owner = `policy-${name}-t1`;
    assert.deepEqual(grant(owner, "dynamodb:GetItem")[0].Resource, [`arn:aws:mock:us-east-1:${ACCOUNT}:aws:dynamodb/table:Table/migration-state-t1`]);
    assert.deepEqual(grant(owner, "kms:GenerateDataKey")[0].Resource, [`arn:aws:mock:us-east-1:${ACCOUNT}:aws:kms/key:Key/kms-sns-t1`], "publishing to an encrypted topic");
    assert.deepEqual(grant(owner, "cloudwatch:PutMetricData")[0].Condition, { StringEquals: { "cloudwatch:namespace": "Cutover" } });
    const logs = doc(`policy-${name}-logs-t1`);
    assert.deepEqual(logs.map((st) => [st.Action, st.Resource]), [[["logs:CreateLogStream", "logs:PutLogEvents"], [`arn:aws:mock:us-east-1:${ACCOUNT}:aws:cloudwatch/logGroup:LogGroup/log-${name}-t1:*`]]]);
  }
  const publishes = (owner: string) => grant(owner, "sns:Publish").flatMap((st) => st.Resource.map((r) => String(r).replace(/.*\//, "")));
  assert.deepEqual(publishes("policy-data-validator-t1").sort(), ["sns-ops-t1", "sns-validation-t1"]);
  assert.deepEqual(publishes("policy-lag-probe-t1"), ["sns-ops-t1"]);
  const shifter = "policy-traffic-shifter-t1";
  assert.deepEqual(grant(shifter, "elasticloadbalancing:ModifyListener")[0].Resource.map((r) => String(r).replace(/.*\//, "")), REGIONS.map((r) => `listener-${r}-t1`));
  assert.deepEqual(grant(shifter, "cloudwatch:DescribeAlarms")[0].Resource, REGIONS.flatMap((r) => [
    `arn:aws:cloudwatch:${r}:${ACCOUNT}:alarm:app-5xx-rate-t1`, `arn:aws:cloudwatch:${r}:${ACCOUNT}:alarm:app-p99-latency-t1`,
    ...["blue", "green"].flatMap((c) => [`arn:aws:cloudwatch:${r}:${ACCOUNT}:alarm:app-5xx-rate-${c}-t1`, `arn:aws:cloudwatch:${r}:${ACCOUNT}:alarm:app-p99-latency-${c}-t1`]),
  ]));
  // ECS: exactly the calls functions/traffic-shifter/src/ecs.rs makes: on both colours' services of this stack, and a
  // release's revision of the idle colour's family (no resource-level permissions there; bounded by iam:PassRole below).
  const clusterOf = (r: string) => ofType("aws:ecs/cluster:Cluster", r)[0].inputs.name;
  const colours = REGIONS.flatMap((r) => ["blue", "green"].map((c) =>
    `arn:aws:ecs:${r}:${ACCOUNT}:service/${clusterOf(r)}/${ofType("aws:ecs/service:Service", r).find((x) => x.name.includes(`svc-${c}`))?.inputs.name}`));
  assert.match(colours[3], new RegExp(`^arn:aws:ecs:eu-west-1:${ACCOUNT}:service/ecs-.*/app-green-`));
  const ecsGrants = doc(shifter).filter((st) => st.Action.some((a) => a.startsWith("ecs:")));
  assert.deepEqual(ecsGrants.map((st) => [st.Action, st.Resource]), [[["ecs:DescribeServices"], colours], [["ecs:UpdateService"], colours],
    [["ecs:DescribeTaskDefinition", "ecs:RegisterTaskDefinition"], ["*"]]]);
  // The floors: read anywhere (no resource-level permissions), moved on exactly both colours' targets of this stack.
  assert.deepEqual(grant(shifter, "application-autoscaling:DescribeScalableTargets").map((st) => st.Resource), [["*"]]);
  const targetArns = REGIONS.flatMap((r) => ofType("aws:appautoscaling/target:Target", r).map((t) => t.name));
  assert.equal(targetArns.length, 6);
  assert.deepEqual(grant(shifter, "application-autoscaling:RegisterScalableTarget").map((st) => st.Resource.map((x) => String(x).replace(/.*\//, ""))),
    [targetArns]);
  const pass = grant(shifter, "iam:PassRole");
  assert.deepEqual(pass.map((st) => [st.Resource.map((r) => String(r).replace(/.*\//, "")), st.Condition]), [[
    REGIONS.flatMap((r) => [`role-task-exec-${r}-t1`, `role-task-app-${r}-t1`]),
    { StringEquals: { "iam:PassedToService": "ecs-tasks.amazonaws.com" } },
  ]], "the colours' task roles, to ECS tasks only");
  assert.ok(doc(shifter).every((st) => st.Action.every((a) => !a.includes("*"))), "no wildcard action");
  const failover = "policy-failover-t1";
  assert.deepEqual(grant(failover, "rds:FailoverGlobalCluster")[0].Resource.map((r) => String(r).replace(/.*\//, "")),
    ["aurora-global-t1", ...REGIONS.map((r) => `aurora-${r}-t1`)]);
  // The new writer's endpoint comes from its cluster (DescribeDBClusters), on the member clusters only.
  assert.deepEqual(grant(failover, "rds:DescribeDBClusters")[0].Resource.map((r) => String(r).replace(/.*\//, "")),
    REGIONS.map((r) => `aurora-${r}-t1`));
  assert.deepEqual(grant(failover, "ssm:PutParameter")[0].Resource, ENDPOINT_COPIES, "failover rewrites two parameters, in every region, and nothing else");
  assert.deepEqual(grant(failover, "events:PutEvents")[0].Resource, [`arn:aws:events:us-east-1:${ACCOUNT}:event-bus/default`]);
  for (const owner of ["policy-data-validator-t1", "policy-lag-probe-t1", shifter]) {
    assert.equal(grant(owner, "ssm:PutParameter").length, 0, `${owner} writes no parameter`);
    assert.equal(grant(owner, "rds:FailoverGlobalCluster").length, 0, `${owner} cannot move the writer`);
  }
  assert.equal(grant("policy-data-validator-t1", "elasticloadbalancing:ModifyListener").length, 0);
});

test("the cutover: the primary only, in the VPC, with the CA layer; it writes writes-to and nothing else, reads the stable gate's alarms, publishes to the ops topic", () => {
  assert.deepEqual(ofType("aws:lambda/function:Function").filter((f) => f.inputs.name.startsWith("cutover")).map((f) => [f.region, f.inputs.name]), [["us-east-1", "cutover-t1"]]);
  const f = fn("cutover");
  assert.deepEqual([f.inputs.memorySize, f.inputs.timeout], [256, 900]);
  const doc = (owner: string): Statement[] => identityPolicies().find((d) => d.owner === owner)?.doc.Statement as Statement[];
  const grant = (action: string) => doc("policy-cutover-t1").filter((st) => st.Action.includes(action));
  assert.deepEqual(grant("ssm:PutParameter").flatMap((st) => st.Resource), [`arn:aws:ssm:us-east-1:${ACCOUNT}:parameter/migration/app/t1/writes-to`],
    "the cutover moves the application's writes and rewrites nothing else (not failover's writer endpoint)");
  assert.deepEqual(grant("cloudwatch:DescribeAlarms").flatMap((st) => st.Resource),
    [`arn:aws:cloudwatch:us-east-1:${ACCOUNT}:alarm:app-5xx-rate-t1`, `arn:aws:cloudwatch:us-east-1:${ACCOUNT}:alarm:app-p99-latency-t1`]);
  assert.deepEqual(grant("sns:Publish").flatMap((st) => st.Resource.map((r) => String(r).replace(/.*\//, ""))), ["sns-ops-t1"]);
  for (const action of ["rds:FailoverGlobalCluster", "elasticloadbalancing:ModifyListener", "dynamodb:DeleteItem", "dynamodb:Scan", "events:PutEvents"]) {
    assert.equal(grant(action).length, 0, `the cutover: no ${action}`);
  }
  assert.ok(doc("policy-cutover-t1").every((st) => st.Action.every((a) => !isWildcardAction(a))));
  const doc2 = identityPolicies().find((d) => d.owner === "policy-cutover-t1")?.doc as PolicyDocument;
  assert.ok(!grants(doc2, "ssm:PutParameter", `arn:aws:ssm:us-east-1:${ACCOUNT}:parameter/migration/db/t1/writer-endpoint`));
  assert.ok(!grants(doc2, "dynamodb:PutItem", tableIn("us-east-1"), { "dynamodb:LeadingKeys": ["FAILOVER"] }), "the failover lease is read, never taken");
});

test("the application's task role (per region) reads the primary's writes-to and source-endpoint and its region's writer-endpoint, nothing else", () => {
  for (const region of REGIONS) {
    for (const color of ["blue", "green"]) {
      const task = one("aws:ecs/taskDefinition:TaskDefinition", `task-app-${color}-${region}-t1`);
      assert.equal(task.inputs.taskRoleArn, `arn:aws:mock:${region}:${ACCOUNT}:aws:iam/role:Role/${`role-task-app-${region}-t1`}`);
    }
    assert.equal(JSON.parse(one("aws:iam/role:Role", `role-task-app-${region}-t1`).inputs.assumeRolePolicy).Statement[0].Principal.Service, "ecs-tasks.amazonaws.com");
    const doc = identityPolicies().find((d) => d.owner === `policy-task-app-${region}-t1`)?.doc as PolicyDocument;
    assert.deepEqual(doc.Statement.map((st) => [st.Action, st.Resource]), [[["ssm:GetParameter"], [
      `arn:aws:ssm:us-east-1:${ACCOUNT}:parameter/migration/app/t1/writes-to`,
      `arn:aws:ssm:us-east-1:${ACCOUNT}:parameter/migration/db/t1/source-endpoint`,
      `arn:aws:ssm:${region}:${ACCOUNT}:parameter/migration/db/t1/writer-endpoint`,
    ]]], `${region}: one copy of the switch, in the primary; the writer as its own region's failover keeps it`);
  }
});

test("every region's failover and lag-probe use their own region's table replica, topic, keys, parameters and bus", () => {
  const doc = (owner: string): Statement[] => identityPolicies().find((d) => d.owner === owner)?.doc.Statement as Statement[];
  const grant = (owner: string, action: string) => doc(owner).filter((st) => st.Action.includes(action));
  for (const region of REGIONS.slice(1)) {
    for (const name of ["lag-probe", "failover"]) {
      const owner = rn(`policy-${name}`, region);
      assert.deepEqual(grant(owner, "dynamodb:GetItem").flatMap((st) => st.Resource), grant(owner, "dynamodb:GetItem").map(() => tableIn(region)), `${owner}: the replica in ${region}`);
      assert.deepEqual(grant(owner, "sns:Publish")[0].Resource, [`arn:aws:mock:${region}:${ACCOUNT}:aws:sns/topic:Topic/${rn("sns-ops", region)}`]);
      assert.deepEqual(grant(owner, "kms:GenerateDataKey")[0].Resource, [`arn:aws:mock:${region}:${ACCOUNT}:aws:kms/key:Key/${rn("kms-sns", region)}`]);
      assert.deepEqual(doc(rn(`policy-${name}-logs`, region))[0].Resource, [`arn:aws:mock:${region}:${ACCOUNT}:aws:cloudwatch/logGroup:LogGroup/${rn(`log-${name}`, region)}:*`]);
    }
    const failover = rn("policy-failover", region);
    assert.deepEqual(grant(failover, "ssm:PutParameter")[0].Resource, ENDPOINT_COPIES,
      "failover rewrites the two parameters in every region (copy_endpoints, sync-endpoints), not only its own");
    assert.deepEqual(grant(failover, "events:PutEvents")[0].Resource, [`arn:aws:events:${region}:${ACCOUNT}:event-bus/default`]);
    assert.deepEqual(grant(failover, "rds:FailoverGlobalCluster")[0].Resource.map((r) => String(r).replace(/.*\//, "")),
      ["aurora-global-t1", ...REGIONS.map((r) => `aurora-${r}-t1`)], "the engine is the arbiter: any region may ask it to move the writer");
  }
});

test("no function outside the primary depends on a primary-region resource, but for naming the primary's member cluster and reconciling its lost writes", () => {
  // The member clusters' ARNs name their regions: failover must name the cluster it moves the writer
  // away from (CUTOVER_CLUSTER_ARNS, rds:* grants), but calls RDS in its own region. No other ARN may
  // name the primary's region (a parameter may: reader-endpoint/us-east-1 is the replica's own copy).
  const primaryCluster = `arn:aws:mock:us-east-1:${ACCOUNT}:aws:rds/cluster:Cluster/aurora-us-east-1-t1`;
  // The global cluster's real ARN names no region (arn:aws:rds::<account>:global-cluster:<id>); the mock gives it its provider's.
  const globalCluster = `arn:aws:mock:us-east-1:${ACCOUNT}:aws:rds/globalCluster:GlobalCluster/aurora-global-t1`;
  // After a failover away from the primary, the reconciliation works where Aurora keeps its snapshot of the
  // old primary: in the old primary's region, on its own lost-* names and on Aurora's snapshots of that cluster,
  // restored in that cluster's subnet group with its parameter group, encrypted with its key (through RDS there).
  const reconciling = new RegExp(`^arn:aws:rds:us-east-1:${ACCOUNT}:(cluster-snapshot:rds:unplanned-global-failover-aurora-us-east-1-t1-\\*|(cluster|db|cluster-snapshot):cutover-t1-lost-\\*|subgrp:db-subnets-us-east-1-t1|cluster-pg:aurora-params-us-east-1-t1)$`);
  const primaryKey = `arn:aws:mock:us-east-1:${ACCOUNT}:aws:kms/key:Key/kms-aurora-us-east-1-t1`;
  // failover writes the new writer into every region's copy of the two endpoint parameters, the primary's among them.
  const primaryEndpoints = ENDPOINT_COPIES.filter((arn) => arn.includes(":us-east-1:"));
  const primaryArns = (v: unknown) => (String(v).match(/arn:aws:[a-z0-9-]+:us-east-1:[^,\s"]*/g) ?? [])
    .filter((arn) => arn !== primaryCluster && arn !== globalCluster && !reconciling.test(arn) && arn !== primaryKey && !primaryEndpoints.includes(arn));
  for (const { name, region } of COPIES.filter((c) => c.region !== "us-east-1")) {
    const f = fn(name, region);
    for (const [k, v] of Object.entries(f.inputs.environment.variables as Record<string, string>)) {
      assert.deepEqual(primaryArns(v), [], `${name} in ${region}: ${k}`);
    }
    assert.equal(f.inputs.environment.variables.CUTOVER_PRIMARY_REGION, region, "its clients' home region is its own");
    for (const input of [f.inputs.role, ...(f.inputs.layers ?? []), ...f.inputs.vpcConfig.subnetIds, ...f.inputs.vpcConfig.securityGroupIds]) {
      assert.ok(!String(input).includes("us-east-1"), `${name} in ${region}: ${input}`);
    }
    for (const owner of [rn(`policy-${name}`, region), rn(`policy-${name}-logs`, region)]) {
      const doc = identityPolicies().find((d) => d.owner === owner)?.doc as PolicyDocument;
      for (const st of doc.Statement) {
        for (const r of st.Resource.map(String)) assert.deepEqual(primaryArns(r), [], `${owner} (${st.Sid}): ${r}`);
        // The primary's Aurora key is used only through RDS in the primary's region, where its snapshot is.
        const own = st.Sid === "SnapshotKeyUsEast1" ? { StringEquals: { "kms:ViaService": "rds.us-east-1.amazonaws.com" } } : {};
        assert.ok(!JSON.stringify(st.Condition ?? {}).includes("us-east-1") || JSON.stringify(st.Condition) === JSON.stringify(own),
          `${owner} (${st.Sid}): its own region's services`);
      }
    }
  }
});

/**
 * What each crate does to the state table (grep shared/src/state.rs `keys` and the store calls
 * in functions/<name>/src): every [action, pk] here must be granted, every other pairing refused.
 */
const ITEMS: Record<string, [string, string][]> = {
  "data-validator": [["GetItem", "VALIDATION#r1"], ["PutItem", "VALIDATION#r1"], ["Query", "VALIDATION#r1"]],
  "lag-probe": [
    ["PutItem", "LAG#eu-west-1"], ["Query", "LAG#eu-west-1"],
    ["GetItem", "REACH#us-east-1"], ["PutItem", "REACH#us-east-1"], ["Query", "REACH#us-east-1"],
  ],
  "traffic-shifter": [["GetItem", "DEPLOYMENT#app"], ["PutItem", "DEPLOYMENT#app"], ["Query", "DEPLOYMENT#app"]],
  failover: [
    ["GetItem", "FAILOVER"], ["PutItem", "FAILOVER"], ["UpdateItem", "FAILOVER"], ["ConditionCheckItem", "FAILOVER"],
    ["Query", "LAG#eu-west-1"], ["Query", "REACH#us-east-1"],
  ],
  // The phase, evidence, audit and lease (a fenced write: ConditionCheckItem + PutItem); the failover lease and the validator's runs read only; no DeleteItem.
  cutover: [
    ["GetItem", "MIGRATION"], ["PutItem", "MIGRATION"], ["UpdateItem", "MIGRATION"], ["Query", "MIGRATION"], ["ConditionCheckItem", "MIGRATION"],
    ["GetItem", "FAILOVER"], ["GetItem", "VALIDATION#r1"], ["Query", "VALIDATION#r1"],
  ],
};
/** The parameters each crate reads (shared/src/db.rs DbAccess and the functions' own), under /migration/. */
/** Each function's access is its own role's user and password (infra/sql/roles.sql), never another's. */
const ACCESS = (fn: string) => ["database", `users/${fn}`, `passwords/${fn}`, "writer-endpoint"].map((p) => `db/t1/${p}`);
const READERS = REGIONS.map((r) => `db/t1/reader-endpoint/${r}`);
const READS: Record<string, string[]> = {
  "data-validator": [...ACCESS("data-validator"), "db/t1/source-dsn"],
  "lag-probe": [...ACCESS("lag-probe"), ...READERS, "app/t1/active-region"],
  "traffic-shifter": [],
  failover: [...ACCESS("failover"), ...READERS, "app/t1/active-region"],
  cutover: [...ACCESS("cutover"), ...["user", "source-admin-dsn", "reverse-conninfo"].map((p) => `db/t1/${p}`)],
};

/** The parameters each crate writes in its own region: failover the endpoints, the cutover where the application writes. */
const WRITES: Record<string, string[]> = { failover: ENDPOINTS, cutover: ["app/t1/writes-to"] };

/** The state table as each region's functions reach it: the table in the primary, its replica elsewhere. */
const tableIn = (region: string) => (region === "us-east-1"
  ? `arn:aws:mock:us-east-1:${ACCOUNT}:aws:dynamodb/table:Table/migration-state-t1`
  : `arn:aws:dynamodb:${region}:${ACCOUNT}:table/migration-state-t1`);

test("least privilege per function, in every region's copy: the state items it owns (dynamodb:LeadingKeys), the parameters it reads, nothing more", () => {
  const table = tableIn("us-east-1");
  const pks = ["VALIDATION#r1", "LAG#eu-west-1", "REACH#us-east-1", "DEPLOYMENT#app", "FAILOVER", "MIGRATION"];
  const actions = ["GetItem", "PutItem", "UpdateItem", "DeleteItem", "Query", "ConditionCheckItem", "Scan"];
  const parameters = [...new Set(ofType("aws:ssm/parameter:Parameter").map((p) => String(p.inputs.name).replace("/migration/", "")))];
  for (const { name, region } of COPIES) {
    const doc = identityPolicies().find((d) => d.owner === rn(`policy-${name}`, region))?.doc as PolicyDocument;
    const mine = ofType("aws:ssm/parameter:Parameter", region).map((p) => String(p.inputs.name).replace("/migration/", ""));
    const ssmKey = `arn:aws:mock:${region}:${ACCOUNT}:aws:kms/key:Key/${rn("kms-ssm", region)}`;
    for (const action of actions) {
      for (const pk of pks) {
        const expected = ITEMS[name].some(([a, p]) => a === action && p === pk);
        assert.equal(grants(doc, `dynamodb:${action}`, tableIn(region), { "dynamodb:LeadingKeys": [pk] }), expected, `${name} in ${region}: ${action} on ${pk}`);
        for (const other of REGIONS.filter((r) => r !== region)) {
          assert.equal(grants(doc, `dynamodb:${action}`, tableIn(other), { "dynamodb:LeadingKeys": [pk] }), false, `${name} in ${region}: not the ${other} copy`);
        }
      }
    }
    for (const p of parameters) {
      assert.equal(grants(doc, "ssm:GetParameter", `arn:aws:ssm:${region}:${ACCOUNT}:parameter/migration/${p}`), READS[name].includes(p), `${name} in ${region}: reads ${p}`);
      assert.equal(grants(doc, "ssm:PutParameter", `arn:aws:ssm:${region}:${ACCOUNT}:parameter/migration/${p}`), (WRITES[name] ?? []).includes(p), `${name} in ${region}: writes ${p}`);
      for (const other of REGIONS.filter((r) => r !== region)) {
        // Only failover reaches another region's SSM, and there only the two endpoint parameters it copies.
        const copies = name === "failover" && ENDPOINTS.includes(p);
        for (const action of ["ssm:GetParameter", "ssm:PutParameter"]) {
          assert.equal(grants(doc, action, `arn:aws:ssm:${other}:${ACCOUNT}:parameter/migration/${p}`), copies, `${name} in ${region}: ${action} on ${other}'s ${p}`);
        }
      }
    }
    for (const other of REGIONS.filter((r) => r !== region)) {
      const otherKey = `arn:aws:mock:${other}:${ACCOUNT}:aws:kms/key:Key/${rn("kms-ssm", other)}`;
      assert.equal(grants(doc, "kms:Decrypt", otherKey, { "kms:ViaService": `ssm.${other}.amazonaws.com` }), false, `${name} in ${region}: not ${other}'s SSM key (the copies are String parameters)`);
    }
    for (const p of READS[name]) assert.ok(mine.includes(p), `${p} exists in ${region}`);
    const secure = READS[name].some((p) => /password|source-dsn|reverse-conninfo/.test(p));
    assert.equal(grants(doc, "kms:Decrypt", ssmKey, { "kms:ViaService": `ssm.${region}.amazonaws.com` }), secure, `${name} in ${region}: decrypts SecureStrings`);
    assert.equal(grants(doc, "kms:Decrypt", ssmKey, { "kms:ViaService": `s3.${region}.amazonaws.com` }), false, `${name}: the SSM key through SSM only`);
  }
  assert.ok(!grants(identityPolicies().find((d) => d.owner === "policy-lag-probe-t1")?.doc as PolicyDocument,
    "dynamodb:PutItem", table, { "dynamodb:LeadingKeys": ["FAILOVER"] }), "lag-probe cannot write the lease");
  const runbook = identityPolicies().find((d) => d.owner === "policy-runbook-t1")?.doc as PolicyDocument;
  for (const action of actions) {
    for (const pk of pks) assert.equal(grants(runbook, `dynamodb:${action}`, table, { "dynamodb:LeadingKeys": [pk] }), false, `runbook: ${action} on ${pk} (the cutover records the phase)`);
  }
});

test("failover's reconciliation, in every region's copy: each region's Aurora key, CreateGrant and DescribeKey through RDS in that region only", () => {
  for (const { name, region } of COPIES.filter((c) => c.name === "failover")) {
    const doc = identityPolicies().find((d) => d.owner === rn(`policy-${name}`, region))?.doc as PolicyDocument;
    for (const keyRegion of REGIONS) {
      const key = `arn:aws:mock:${keyRegion}:${ACCOUNT}:aws:kms/key:Key/kms-aurora-${keyRegion}-t1`;
      for (const action of ["kms:CreateGrant", "kms:DescribeKey"]) {
        assert.ok(grants(doc, action, key, { "kms:ViaService": `rds.${keyRegion}.amazonaws.com` }), `${region}: ${action} on ${keyRegion}'s key`);
        for (const other of REGIONS.filter((r) => r !== keyRegion)) {
          assert.ok(!grants(doc, action, key, { "kms:ViaService": `rds.${other}.amazonaws.com` }), `${region}: not through RDS in ${other}`);
        }
        assert.ok(!grants(doc, action, key, { "kms:ViaService": `s3.${keyRegion}.amazonaws.com` }), `${region}: through RDS only`);
        assert.ok(!grants(doc, action, key), `${region}: not directly`);
      }
      for (const action of ["kms:Decrypt", "kms:Encrypt", "kms:GenerateDataKey", "kms:RevokeGrant"]) {
        assert.ok(!grants(doc, action, key, { "kms:ViaService": `rds.${keyRegion}.amazonaws.com` }), `${region}: no ${action} on the Aurora key`);
      }
    }
  }
  for (const { name, region } of COPIES.filter((c) => c.name !== "failover")) {
    const doc = identityPolicies().find((d) => d.owner === rn(`policy-${name}`, region))?.doc as PolicyDocument;
    assert.ok(!JSON.stringify(doc).includes("kms-aurora"), `${name} in ${region}: no Aurora key`);
  }
});

test("KMS key policies: the account root delegates to IAM; services get Decrypt and GenerateDataKey only", () => {
  const keys = ofType("aws:kms/key:Key").filter((k) => k.inputs.policy !== undefined);
  assert.deepEqual(keys.map((k) => k.region), REGIONS, "the SNS key of each region");
  for (const k of keys) {
    const statements: KeyStatement[] = JSON.parse(k.inputs.policy).Statement;
    for (const st of statements) {
      if (st.Sid === KEY_POLICY_ROOT_SID) {
        assert.deepEqual(st.Principal, { AWS: `arn:aws:iam::${ACCOUNT}:root` }, "kms:* for the account root only");
        continue;
      }
      assert.ok(Array.isArray(st.Action) && st.Action.every((a) => !isWildcardAction(a)), `${k.name}: ${st.Sid}`);
      assert.deepEqual(st.Action, ["kms:Decrypt", "kms:GenerateDataKey"]);
      assert.equal(st.Principal.AWS, undefined);
    }
  }
  for (const k of ofType("aws:kms/key:Key")) assert.equal(k.inputs.enableKeyRotation, true, k.name);
});

test("schedules: lag-probe and failover's sync-endpoints in every region, the shifter's tick every minute and its reconcile every five, validation daily; each target allowed to invoke", () => {
  const rules = ofType("aws:cloudwatch/eventRule:EventRule");
  const schedule = (name: string) => rules.find((r) => r.name === `schedule-${name}-t1`)?.inputs.scheduleExpression;
  assert.deepEqual(["lag-probe", "traffic-shifter", "traffic-shifter-reconcile", "data-validator"].map(schedule),
    ["rate(1 minute)", "rate(1 minute)", "rate(5 minutes)", "rate(1 day)"]);
  assert.equal(rules.filter((r) => r.inputs.scheduleExpression !== undefined).length, 5 + 2 * 2, "a lag-probe and a failover sync per region");
  const target = (name: string, region = "us-east-1") => one("aws:cloudwatch/eventTarget:EventTarget", rn(`schedule-${name}-target`, region));
  assert.deepEqual(JSON.parse(target("traffic-shifter").inputs.input), { command: "tick" });
  assert.deepEqual(JSON.parse(target("traffic-shifter-reconcile").inputs.input), { command: "reconcile" }, "finished deployments too: drift is re-asserted");
  assert.equal(target("traffic-shifter-reconcile").inputs.arn, target("traffic-shifter").inputs.arn);
  for (const region of REGIONS) {
    const probe = rules.find((r) => r.name === rn("schedule-lag-probe", region));
    assert.deepEqual([probe?.region, probe?.inputs.scheduleExpression], [region, "rate(1 minute)"]);
    assert.equal(target("lag-probe", region).inputs.input, undefined);
    assert.equal(target("lag-probe", region).inputs.arn, `arn:aws:mock:${region}:${ACCOUNT}:aws:lambda/function:Function/${rn("fn-lag-probe", region)}`, `${region}: its own probe`);
    const sync = rules.find((r) => r.name === rn("schedule-failover-sync-endpoints", region));
    assert.deepEqual([sync?.region, sync?.inputs.scheduleExpression], [region, "rate(5 minutes)"], `${region}: heals its own endpoint copy`);
    assert.deepEqual(JSON.parse(target("failover-sync-endpoints", region).inputs.input), { command: "sync-endpoints" });
    assert.equal(target("failover-sync-endpoints", region).inputs.arn, `arn:aws:mock:${region}:${ACCOUNT}:aws:lambda/function:Function/${rn("fn-failover", region)}`, `${region}: its own failover`);
  }
  const lambdaTargets = ofType("aws:cloudwatch/eventTarget:EventTarget").filter((t) => /lambda\/function/.test(t.inputs.arn));
  assert.equal(lambdaTargets.length, 7 + 2 * 3, "the primary's 5 schedules and 2 alarm rules; each other region's probe and sync schedules and failover rule");
  const permissions = ofType("aws:lambda/permission:Permission");
  for (const t of lambdaTargets) {
    const granted = permissions.find((p) => p.inputs.sourceArn.endsWith(`EventRule/${t.inputs.rule}`));
    assert.ok(granted, `${t.name}: a permission for its rule`);
    assert.equal(granted.region, t.region, `${t.name}: the permission in the rule's region`);
    assert.deepEqual([granted.inputs.principal, granted.inputs.action], ["events.amazonaws.com", "lambda:InvokeFunction"]);
    assert.equal(granted.inputs.function, t.inputs.arn.replace(/.*Function\/fn-/, ""), `${t.name}: the same function`);
  }
});

test("alarm state changes: the 5xx-rate and p99 alarms to the shifter; in every region, the writer alarm to that region's failover; secondaries forward the shifter's", () => {
  const pattern = (ruleName: string) => JSON.parse(one("aws:cloudwatch/eventRule:EventRule", ruleName).inputs.eventPattern);
  const shifter = pattern("alarms-to-traffic-shifter-t1");
  assert.deepEqual(shifter["detail-type"], ["CloudWatch Alarm State Change"]);
  assert.deepEqual(shifter.detail, { alarmName: ["app-5xx-rate-t1", "app-p99-latency-t1", "app-5xx-rate-blue-t1", "app-p99-latency-blue-t1", "app-5xx-rate-green-t1", "app-p99-latency-green-t1"], state: { value: ["ALARM"] } }, "the whole ALB's and each colour's own group's");
  const target = (name: string, region = "us-east-1") => one("aws:cloudwatch/eventTarget:EventTarget", rn(`alarms-to-${name}-target`, region));
  assert.match(target("traffic-shifter").inputs.arn, /fn-traffic-shifter-t1$/);
  const writerAlarms = ofType("aws:cloudwatch/metricAlarm:MetricAlarm").filter((a) => a.inputs.name === "primary-writer-unavailable-t1");
  for (const region of REGIONS) {
    const rule = one("aws:cloudwatch/eventRule:EventRule", rn("alarms-to-failover", region));
    assert.equal(rule.region, region);
    assert.deepEqual(JSON.parse(rule.inputs.eventPattern).detail, { alarmName: ["primary-writer-unavailable-t1", "writer-unreachable-t1"], state: { value: ["ALARM"] } });
    assert.deepEqual([target("failover", region).region, target("failover", region).inputs.arn],
      [region, `arn:aws:mock:${region}:${ACCOUNT}:aws:lambda/function:Function/${rn("fn-failover", region)}`], `${region}: its own failover`);
    assert.equal(target("failover", region).inputs.rule, rule.inputs.name ?? rule.name);
    assert.equal(writerAlarms.filter((a) => a.region === region).length, 1, `${region}: the alarm the rule watches changes state in ${region}`);
    // The fast trigger: this region's own probe's failed attempts on the writer, at high resolution.
    const fast = ofType("aws:cloudwatch/metricAlarm:MetricAlarm").filter((a) => a.inputs.name === "writer-unreachable-t1" && a.region === region);
    assert.equal(fast.length, 1, `${region}: its writer-unreachable alarm`);
    assert.deepEqual([fast[0].inputs.metricName, fast[0].inputs.dimensions, fast[0].inputs.period, fast[0].inputs.threshold, fast[0].inputs.comparisonOperator, fast[0].inputs.treatMissingData],
      ["WriterUnreachable", { Vantage: region }, 10, 3, "GreaterThanOrEqualToThreshold", "notBreaching"], `${region}: 3 failures in 10 s from its own vantage; no failures published is no failure`);
    assert.ok(fast[0].inputs.alarmActions.length > 0, `${region}: it notifies`);
  }
  for (const region of REGIONS.slice(1)) {
    assert.deepEqual(pattern(`alarms-forward-${region}-t1`).detail.alarmName, ["app-5xx-rate-t1", "app-p99-latency-t1", "app-5xx-rate-blue-t1", "app-p99-latency-blue-t1", "app-5xx-rate-green-t1", "app-p99-latency-green-t1"], "the shifter's alarms only: failover acts where its alarm is");
    const forward = one("aws:cloudwatch/eventTarget:EventTarget", `alarms-forward-target-${region}-t1`);
    assert.equal(forward.region, region);
    assert.equal(forward.inputs.arn, `arn:aws:events:us-east-1:${ACCOUNT}:event-bus/default`);
    assert.match(forward.inputs.roleArn, new RegExp(`role-alarms-forward-${region}-t1`));
  }
});

test("notifications: an ops topic per region and the validation topic, each encrypted with its region's key; no e-mail unless configured", () => {
  const topics = ofType("aws:sns/topic:Topic");
  assert.deepEqual(topics.map((t) => [t.region, t.inputs.name]).sort(), [
    ["ap-southeast-1", "cutover-ops-ap-southeast-1-t1"], ["eu-west-1", "cutover-ops-eu-west-1-t1"],
    ["us-east-1", "cutover-ops-t1"], ["us-east-1", "cutover-validation-t1"],
  ]);
  for (const t of topics) {
    assert.equal(t.inputs.kmsMasterKeyId, t.region === "us-east-1" ? "kms-sns-t1-id" : `kms-sns-${t.region}-t1-id`, `${t.name}: its region's key`);
  }
  assert.equal(ofType("aws:sns/topicSubscription:TopicSubscription").length, 0);
});

test("every alarm action reaches its topic: the topic policy and the topic's key admit CloudWatch, for this stack's alarms only", () => {
  assert.equal(checkAlarmDelivery(), 2 * 40, "ALARM and OK actions of all 40 alarms");
  assert.equal(checkEventDelivery(), 0, "no EventBridge rule publishes without DMS");
  for (const topic of ofType("aws:sns/topic:Topic").filter((t) => t.inputs.name.startsWith("cutover-ops"))) {
    const policy = JSON.parse(ofType("aws:sns/topicPolicy:TopicPolicy").find((p) => p.inputs.arn === arnOf(topic))?.inputs.policy);
    const context = { "aws:SourceAccount": ACCOUNT, "aws:SourceArn": `arn:aws:events:${topic.region}:${ACCOUNT}:rule/any` };
    assert.ok(!allows(policy, "events.amazonaws.com", "sns:Publish", arnOf(topic), context), `${topic.name}: EventBridge only when a rule publishes`);
    const other = { "aws:SourceAccount": ACCOUNT, "aws:SourceArn": `arn:aws:cloudwatch:${topic.region}:${ACCOUNT}:alarm:someone-elses-alarm` };
    assert.ok(!allows(policy, "cloudwatch.amazonaws.com", "sns:Publish", arnOf(topic), other), `${topic.name}: other stacks' alarms may not`);
  }
});

test("alarms: each notifies its own region's ops topic (CloudWatch cannot notify another region's)", () => {
  const alarms = ofType("aws:cloudwatch/metricAlarm:MetricAlarm");
  assert.equal(alarms.length, 3 * (4 + 4 + 2 + 3) + 1, "per region: 4 application alarms, 4 on a colour's own group, the writer's two (dark probe, failed attempts), lag to each of 3 regions; the validation mismatch");
  for (const a of alarms) {
    const topic = a.region === "us-east-1" ? "sns-ops-t1" : `sns-ops-${a.region}-t1`;
    assert.deepEqual(a.inputs.alarmActions, [`arn:aws:mock:${a.region}:${ACCOUNT}:aws:sns/topic:Topic/${topic}`], a.name);
    assert.deepEqual(a.inputs.okActions, a.inputs.alarmActions);
  }
});

test("alarms: replication lag over 1 s at high resolution, p99 over 200 ms, 5xx rate, unhealthy hosts, validation mismatch, writer unavailable", () => {
  const alarms = ofType("aws:cloudwatch/metricAlarm:MetricAlarm");
  const lag = alarms.filter((a) => a.inputs.metricName === "ReplicationLagMs");
  // Every region watches every region: whichever writes has no lag samples, so only the non-writers alarm.
  assert.deepEqual(lag.map((a) => [a.region, a.inputs.dimensions.Region, a.inputs.dimensions.Source]), REGIONS.flatMap((r) => REGIONS.map((x) => [r, x, "heartbeat"])));
  for (const a of lag) {
    assert.deepEqual([a.inputs.period, a.inputs.threshold, a.inputs.comparisonOperator, a.inputs.treatMissingData], [10, 1000, "GreaterThanThreshold", "notBreaching"], "high resolution");
    assert.equal(a.inputs.name, `replication-lag-${a.inputs.dimensions.Region}-t1`);
  }
  for (const region of REGIONS) {
    const mine = alarms.filter((a) => a.region === region);
    const p99 = mine.find((a) => a.inputs.name === "app-p99-latency-t1");
    assert.deepEqual([p99?.inputs.extendedStatistic, p99?.inputs.threshold, p99?.inputs.dimensions.LoadBalancer], ["p99", 0.2, `app/alb-${region}-t1/0123`]);
    const rate = mine.find((a) => a.inputs.name === "app-5xx-rate-t1");
    const queries: { id: string; expression?: string; returnData: boolean; metric?: { metricName: string } }[] = rate?.inputs.metricQueries;
    assert.deepEqual(queries.filter((q) => q.metric).map((q) => q.metric?.metricName), ["HTTPCode_Target_5XX_Count", "HTTPCode_ELB_5XX_Count", "RequestCount"]);
    assert.deepEqual(queries.filter((q) => q.returnData).map((q) => q.expression), ["100 * (FILL(target5xx, 0) + FILL(elb5xx, 0)) / requests"]);
    assert.equal(rate?.inputs.threshold, 5, "per cent");
    // Each colour's own group: what a canary does to its own requests, not diluted by the live colour's.
    for (const c of ["blue", "green"]) {
      const group = { LoadBalancer: `app/alb-${region}-t1/0123`, TargetGroup: `targetgroup/tg-${c}-${region}-t1/4567` };
      const own = mine.find((a) => a.inputs.name === `app-5xx-rate-${c}-t1`);
      const q: { expression?: string; returnData: boolean; metric?: { metricName: string; dimensions: Record<string, string> } }[] = own?.inputs.metricQueries;
      assert.deepEqual(q.filter((x) => x.metric).map((x) => [x.metric?.metricName, x.metric?.dimensions]),
        [["HTTPCode_Target_5XX_Count", group], ["RequestCount", group]]);
      assert.deepEqual(q.filter((x) => x.returnData).map((x) => x.expression), ["100 * FILL(target5xx, 0) / requests"]);
      assert.deepEqual([own?.inputs.threshold, own?.inputs.datapointsToAlarm], [5, 2]);
      const latency = mine.find((a) => a.inputs.name === `app-p99-latency-${c}-t1`);
      assert.deepEqual([latency?.inputs.metricName, latency?.inputs.extendedStatistic, latency?.inputs.threshold, latency?.inputs.dimensions],
        ["TargetResponseTime", "p99", 0.2, group]);
    }
    const unhealthy = mine.filter((a) => a.inputs.metricName === "UnHealthyHostCount");
    assert.deepEqual(unhealthy.map((a) => a.inputs.dimensions.TargetGroup), [`targetgroup/tg-blue-${region}-t1/4567`, `targetgroup/tg-green-${region}-t1/4567`]);
  }
  const writers = alarms.filter((a) => a.inputs.name === "primary-writer-unavailable-t1");
  assert.deepEqual(writers.map((a) => a.region), REGIONS, "a writer alarm in every region, on that region's probe");
  for (const writer of writers) {
    assert.equal(writer.inputs.treatMissingData, "breaching", "a dark probe, or a region that sees no writer, must alarm");
    assert.deepEqual([writer.inputs.comparisonOperator, writer.inputs.threshold], ["LessThanThreshold", 10]);
    const queries: { id: string; expression?: string; returnData: boolean; metric?: { metricName: string; stat: string; dimensions: Record<string, string> } }[] = writer.inputs.metricQueries;
    assert.deepEqual(queries.filter((q) => q.metric).map((q) => [q.metric?.metricName, q.metric?.stat, q.metric?.dimensions.Region, q.metric?.dimensions.Source]),
      REGIONS.map((r) => ["ReplicationLagMs", "SampleCount", r, "heartbeat"]), "heartbeats seen on any region: the writer moves");
    assert.deepEqual(queries.filter((q) => q.returnData).map((q) => q.expression), ["FILL(seen0, 0) + FILL(seen1, 0) + FILL(seen2, 0)"]);
  }
  const mismatch = alarms.find((a) => a.inputs.name === "validation-mismatch-t1");
  assert.deepEqual([mismatch?.inputs.metricName, mismatch?.inputs.threshold, mismatch?.inputs.comparisonOperator], ["MismatchedRows", 0, "GreaterThanThreshold"]);
  assert.equal(ofType("aws:cloudwatch/eventRule:EventRule").filter((r) => r.name.startsWith("dms-task-failure")).length, 0, "no DMS rule without DMS");
});

test("dashboard: lag per region (heartbeat at 1 s, engine), validation, per region ALB 5xx, p99, healthy hosts, ECS CPU and memory", () => {
  const body = JSON.parse(ofType("aws:cloudwatch/dashboard:Dashboard")[0].inputs.dashboardBody);
  type Widget = { properties: { title: string; period: number; region: string; metrics: unknown[][] } };
  const widget = (title: string): Widget => body.widgets.find((w: Widget) => w.properties.title === title);
  const heartbeat = widget("Replication lag (heartbeat, 1 s)");
  assert.equal(heartbeat.properties.period, 1);
  assert.deepEqual(heartbeat.properties.metrics.map((m) => m[3]), ["eu-west-1", "ap-southeast-1"]);
  assert.deepEqual(widget("Replication lag (engine)").properties.metrics.map((m) => m[5]), ["engine", "engine"]);
  assert.deepEqual(widget("Validation results").properties.metrics.map((m) => m[1]), ["RowsCompared", "MismatchedRows", "ValidationDuration"]);
  for (const r of REGIONS) {
    const app = widget(`Application ${r}: 5xx and p99 response time`);
    assert.equal(app.properties.region, r);
    assert.deepEqual(app.properties.metrics.map((m) => m[1]), ["HTTPCode_Target_5XX_Count", "HTTPCode_ELB_5XX_Count", "TargetResponseTime"]);
    const hosts = widget(`Application ${r}: healthy hosts`).properties.metrics;
    assert.deepEqual(hosts.map((m) => [m[1], m[2], m[3], m[4]]), ["blue", "green"].map((c) => ["HealthyHostCount", "TargetGroup", `targetgroup/tg-${c}-${r}-t1/4567`, "LoadBalancer"]),
      "HealthyHostCount exists per target group only");
    const ecs = widget(`ECS ${r}: CPU and memory`).properties.metrics;
    assert.deepEqual(ecs.map((m) => [m[1], m[5]]), [
      ["CPUUtilization", `app-blue-${r}-t1`], ["MemoryUtilization", `app-blue-${r}-t1`],
      ["CPUUtilization", `app-green-${r}-t1`], ["MemoryUtilization", `app-green-${r}-t1`],
    ]);
  }
  assert.ok(!body.widgets.some((w: Widget) => w.properties.title.startsWith("DMS")), "no DMS widget without DMS");
});

test("runbook: a state machine whose role invokes exactly the validator, the cutover and the shifter, and notifies; no state-table access", () => {
  const sm = ofType("aws:sfn/stateMachine:StateMachine").find((m) => m.inputs.name === "cutover-runbook-t1");
  assert.ok(sm !== undefined);
  const def = JSON.parse(sm.inputs.definition);
  const arn = (fn: string) => `arn:aws:mock:us-east-1:${ACCOUNT}:aws:lambda/function:Function/fn-${fn}-t1`;
  assert.equal(def.States.InSyncValidatePlan.Parameters.FunctionName, arn("data-validator"));
  assert.equal(def.States.AdvanceInSync.Parameters.FunctionName, arn("cutover"));
  assert.equal(def.States.Rollback.Parameters.FunctionName, arn("cutover"));
  assert.equal(def.States.StartShift.Parameters.FunctionName, arn("traffic-shifter"));
  assert.match(def.States.Notify.Parameters.TopicArn, /sns-ops-t1$/);
  const invoked = new Set(Object.values(def.States as Record<string, { Parameters?: { FunctionName?: string } }>)
    .map((st) => st.Parameters?.FunctionName).filter((f) => f !== undefined));
  assert.deepEqual([...invoked].sort(), ["cutover", "data-validator", "traffic-shifter"].map(arn));
  const policy = identityPolicies().find((d) => d.owner === "policy-runbook-t1")?.doc.Statement as Statement[];
  assert.deepEqual(policy.map((st) => [st.Action, st.Resource.map((r) => String(r).replace(/.*\//, ""))]), [
    [["lambda:InvokeFunction"], ["fn-data-validator-t1", "fn-cutover-t1", "fn-traffic-shifter-t1"]],
    [["sns:Publish"], ["sns-ops-t1"]],
    [["kms:GenerateDataKey", "kms:Decrypt"], ["kms-sns-t1"]],
  ]);
  assert.equal(resources.filter((r) => r.type === "aws:sfn/stateMachine:StateMachine").length, 2);
});

test("validation machine: the fan-out on the deployed validator; its role invokes the validator and nothing else", () => {
  const sm = ofType("aws:sfn/stateMachine:StateMachine").find((m) => m.inputs.name === "cutover-validation-t1");
  assert.ok(sm !== undefined);
  const def = JSON.parse(sm.inputs.definition);
  const arn = `arn:aws:mock:us-east-1:${ACCOUNT}:aws:lambda/function:Function/fn-data-validator-t1`;
  assert.equal(def.States.AllTablesPlan.Parameters.FunctionName, arn);
  assert.equal(def.States.ValidateSegments.ItemProcessor.States.ValidateSegment.Parameters.FunctionName, arn);
  const policy = identityPolicies().find((d) => d.owner === "policy-validation-t1")?.doc.Statement as Statement[];
  assert.deepEqual(policy.map((st) => [st.Action, st.Resource.map((r) => String(r).replace(/.*\//, ""))]), [[["lambda:InvokeFunction"], ["fn-data-validator-t1"]]]);
  const role = ofType("aws:iam/role:Role").find((r) => r.name === "role-validation-t1");
  assert.match(String(plain(role?.inputs.assumeRolePolicy)), /states\.amazonaws\.com/);
});
