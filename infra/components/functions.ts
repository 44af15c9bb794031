import * as aws from "@pulumi/aws";
import * as pulumi from "@pulumi/pulumi";

import { name, ReleaseHooks } from "../config";
import { Color, serviceName } from "./application";
import {
  alarmArn, assumedBy, cutoverCalls, failoverCalls, FunctionAccess, functionPolicy, ITEM_FAMILIES, ItemGrant, logsPolicy,
  PolicyDocument, policyJson, reconcileCalls, trafficShifterCalls,
} from "./iam";

export const FUNCTIONS = ["data-validator", "lag-probe", "traffic-shifter", "failover", "cutover"] as const;
export type FunctionName = (typeof FUNCTIONS)[number];

/**
 * The control plane that runs in every region: each region probes the writer from its own
 * vantage point and can move it without any other region's APIs. The validator and the
 * shifter stay in the primary (they move no writer).
 */
export const EVERY_REGION: readonly FunctionName[] = ["lag-probe", "failover"];

/** The functions that open database connections, and so run in the function subnets. */
export const IN_VPC: ReadonlySet<FunctionName> = new Set(["data-validator", "lag-probe", "failover", "cutover"]);

export const LOG_RETENTION_DAYS = 30;

/** Each function's memory (MB): the validator hashes rows in memory; the others are small. */
export const MEMORY_MB: Record<FunctionName, number> = { "data-validator": 1024, "lag-probe": 256, "traffic-shifter": 256, failover: 256, cutover: 256 };

/**
 * The cutover's watch window after `switched` (CUTOVER_STABLE_WATCH_MS, the crate's default):
 * the runbook waits exactly this long before asking for `stable`.
 */
export const STABLE_WATCH_MS = 600_000;

/** How long failover's `reconcile` keeps its copy of Aurora's snapshot of an old primary (CUTOVER_RECONCILE_KEEP_DAYS). */
export const RECONCILE_KEEP_DAYS = 30;

/**
 * Where the CA bundle lands in the functions: a layer's files are unpacked under /opt. A file,
 * not an SSM parameter: a Standard parameter holds 4 KB and the RDS bundles are far larger.
 */
export const CA_BUNDLE_PATH = "/opt/rds-ca-bundle.pem";

export interface RegionalTargets {
  region: string;
  listenerArn: pulumi.Input<string>;
  blueTargetGroupArn: pulumi.Input<string>;
  greenTargetGroupArn: pulumi.Input<string>;
  clusterArn: pulumi.Input<string>;
  /** The KMS key of this region's cluster (failover's reconciliation copies and restores snapshots encrypted with it). */
  auroraKeyArn: pulumi.Input<string>;
  /** The application's ECS cluster in this region; its colours' services are `serviceName(colour)`. */
  ecsClusterName: pulumi.Input<string>;
  /** The roles the colours' task definitions name (the shifter passes them in UpdateService). */
  taskRoleArns: pulumi.Input<string>[];
  /** Both colours' Application Auto Scaling targets (the shifter moves their floors). */
  scalingTargetArns: pulumi.Input<string>[];
}

/**
 * How long the colour without traffic keeps its tasks after a deployment ends
 * (CUTOVER_SCALE_DOWN_BAKE): long enough to roll back onto warm tasks, short enough
 * that the idle colour costs minutes, not days.
 */
export const SCALE_DOWN_BAKE = "10m";

/** `arn:aws:ecs:<region>:<account>:service/<cluster>/<service>`: one colour's service. */
export function ecsServiceArn(region: string, accountId: pulumi.Input<string>, cluster: pulumi.Input<string>, service: string): pulumi.Output<string> {
  return pulumi.interpolate`arn:aws:ecs:${region}:${accountId}:service/${cluster}/${service}`;
}

/** The alarms whose ALARM state a function acts on (the same names in every region). */
export interface WatchedAlarms {
  trafficShifter: string[];
  failover: string[];
  /** The alarms that must not be in ALARM for the cutover's `stable` (the primary's). */
  cutover: string[];
}

export interface FunctionsArgs {
  suffix: string;
  primaryRegion: string;
  /**
   * Where these copies run, and the crates' home region (`CUTOVER_PRIMARY_REGION`, which the
   * crates load their SDK clients with): the state table's replica, the SSM hierarchy, the
   * ops topic, the metrics and the event bus of this region.
   */
  region: string;
  /** Which functions run here: all five in the primary, EVERY_REGION elsewhere. */
  functions: readonly FunctionName[];
  provider: aws.Provider;
  /** The primary first. */
  regions: RegionalTargets[];
  subnetIds: pulumi.Input<string>[];
  securityGroupId: pulumi.Input<string>;
  /** The table's ARN in this region (the replica's, outside the primary). */
  stateTableArn: pulumi.Input<string>;
  stateTableName: pulumi.Input<string>;
  /** This region's ops topic, and below its key; this region's SSM key. */
  opsTopicArn: pulumi.Input<string>;
  validationTopicArn: pulumi.Input<string>;
  snsKeyArn: pulumi.Input<string>;
  ssmKeyArn: pulumi.Input<string>;
  globalClusterId: pulumi.Input<string>;
  globalClusterArn: pulumi.Input<string>;
  accountId: pulumi.Input<string>;
  zipDir: string;
  /** The CA bundle (PEM) on this machine; shipped to the database functions in a layer. */
  caBundleFile: string;
  validationTables: string;
  validationSchemas: string;
  oracleLayerArn?: string;
  /** failover's reserved concurrency, when configured. */
  failoverReservedConcurrency?: number;
  alarms: WatchedAlarms;
  metricsNamespace: string;
  /** traffic-shifter's lifecycle hooks (function ARNs per phase); the only functions it may invoke. */
  releaseHooks?: ReleaseHooks;
  /** `hookDetails` for every hook (CUTOVER_HOOK_DETAILS). */
  releaseHookDetails?: Record<string, unknown>;
}

/** The shifter's settings for the configured hooks: one variable per phase, and the details. */
export function hookEnvironment(hooks: ReleaseHooks = {}, details?: Record<string, unknown>): Record<string, string> {
  const vars: Record<string, string> = {};
  if (hooks.preTraffic !== undefined) vars.CUTOVER_PRE_TRAFFIC_HOOK = hooks.preTraffic;
  if (hooks.postTraffic !== undefined) vars.CUTOVER_POST_TRAFFIC_HOOK = hooks.postTraffic;
  if (hooks.prePromote !== undefined) vars.CUTOVER_PRE_PROMOTE_HOOK = hooks.prePromote;
  if (details !== undefined) vars.CUTOVER_HOOK_DETAILS = JSON.stringify(details);
  return vars;
}

/** The hooks' function ARNs, each once. */
export function hookArns(hooks: ReleaseHooks = {}): string[] {
  return [...new Set([hooks.preTraffic, hooks.postTraffic, hooks.prePromote].filter((a): a is string => a !== undefined))];
}

/** `region=value,region=value`, in the regions' order: how the crates read per-region ARNs. */
export function byRegion<T>(regions: T[], region: (r: T) => string, value: (r: T) => pulumi.Input<string>): pulumi.Output<string> {
  return pulumi.all(regions.map((r) => pulumi.output(value(r)).apply((v) => `${region(r)}=${v}`)))
    .apply((items) => items.join(","));
}

/** What each function reads from its environment (the crates' config modules). */
export function environment(fn: FunctionName, a: FunctionsArgs): Record<string, pulumi.Input<string>> {
  const common: Record<string, pulumi.Input<string>> = {
    CUTOVER_SUFFIX: a.suffix,
    // The crates' home region: every client of theirs but the cross-region probes is built for it.
    CUTOVER_PRIMARY_REGION: a.region,
    CUTOVER_REGIONS: a.regions.map((r) => r.region).join(","),
    CUTOVER_STATE_TABLE: a.stateTableName,
    CUTOVER_OPS_TOPIC_ARN: a.opsTopicArn,
    CUTOVER_METRICS_NAMESPACE: a.metricsNamespace,
    CUTOVER_DB_SSM_PREFIX: `/migration/db/${a.suffix}`,
    CUTOVER_APP_SSM_PREFIX: `/migration/app/${a.suffix}`,
    CUTOVER_DB_SSLMODE: "verify-full",
  };
  const region = (r: RegionalTargets) => r.region;
  switch (fn) {
    case "data-validator":
      return {
        ...common,
        CUTOVER_DB_CA_FILE: CA_BUNDLE_PATH,
        CUTOVER_VALIDATION_TOPIC_ARN: a.validationTopicArn,
        // Blank = every table of the schemas (the crate treats a blank variable as unset).
        CUTOVER_VALIDATION_TABLES: a.validationTables,
        CUTOVER_VALIDATION_SCHEMAS: a.validationSchemas,
      };
    case "lag-probe":
      return {
        ...common, CUTOVER_DB_CA_FILE: CA_BUNDLE_PATH, CUTOVER_LAG_WINDOW_MS: "55000", CUTOVER_LAG_CADENCE_MS: "1000",
        // One heartbeat row per region's probe: three probes bumping one row would see each other's sequence numbers.
        CUTOVER_LAG_PROBE_ID: `lag-probe-${a.region}`,
      };
    case "traffic-shifter":
      return {
        ...common,
        CUTOVER_SERVICE: "app",
        CUTOVER_LISTENER_ARNS: byRegion(a.regions, region, (r) => r.listenerArn),
        CUTOVER_BLUE_TG_ARNS: byRegion(a.regions, region, (r) => r.blueTargetGroupArn),
        CUTOVER_GREEN_TG_ARNS: byRegion(a.regions, region, (r) => r.greenTargetGroupArn),
        CUTOVER_WATCHED_ALARMS: a.alarms.trafficShifter.join(","),
        CUTOVER_LATENCY_GATE_MS: "200",
        // The shifter scales the colours: the idle one up for a release, the old one to 0 after the bake.
        CUTOVER_ECS_CLUSTERS: byRegion(a.regions, region, (r) => r.ecsClusterName),
        CUTOVER_BLUE_SERVICES: byRegion(a.regions, region, (r) => serviceName("blue", a.suffix, r.region)),
        CUTOVER_GREEN_SERVICES: byRegion(a.regions, region, (r) => serviceName("green", a.suffix, r.region)),
        CUTOVER_SCALE_DOWN_BAKE: SCALE_DOWN_BAKE,
        ...hookEnvironment(a.releaseHooks, a.releaseHookDetails),
      };
    case "failover":
      return {
        ...common,
        CUTOVER_DB_CA_FILE: CA_BUNDLE_PATH,
        CUTOVER_FAILOVER_DRIVER: "aurora-global",
        CUTOVER_GLOBAL_CLUSTER_ID: a.globalClusterId,
        CUTOVER_CLUSTER_ARNS: byRegion(a.regions, region, (r) => r.clusterArn),
        CUTOVER_RPO_BUDGET_MS: "1000",
        // The failover crate reads its watched alarms from CUTOVER_FAILOVER_ALARMS.
        CUTOVER_FAILOVER_ALARMS: a.alarms.failover.join(","),
        CUTOVER_EVENT_BUS: "default",
        // How long the copy of Aurora's snapshot of an old primary is kept (`reconcile`).
        CUTOVER_RECONCILE_KEEP_DAYS: String(RECONCILE_KEEP_DAYS),
      };
    case "cutover":
      // The crate's other settings (subscription and reverse names, lag, validation age, drain
      // timeout, sequence margin, lease) keep their defaults; these two the infra must agree on.
      return {
        ...common,
        CUTOVER_DB_CA_FILE: CA_BUNDLE_PATH,
        CUTOVER_STABLE_WATCH_MS: String(STABLE_WATCH_MS),
        CUTOVER_STABLE_ALARMS: a.alarms.cutover.join(","),
      };
  }
}

/**
 * The SSM parameters each crate reads (shared/src/db.rs `DbAccess`, data-validator's
 * source DSN, lag-probe's and failover's endpoints and active region), relative to
 * `/migration/`. traffic-shifter reads none. The CA bundle is a file (CUTOVER_DB_CA_FILE).
 */
export function parametersRead(fn: FunctionName, suffix: string, regions: string[]): string[] {
  const db = (p: string) => `db/${suffix}/${p}`;
  // Its own role's user and password (DbAccess::load), never another function's.
  const access = ["database", `users/${fn}`, `passwords/${fn}`, "writer-endpoint"].map(db);
  const readers = regions.map((r) => db(`reader-endpoint/${r}`));
  switch (fn) {
    case "data-validator": return [...access, db("source-dsn")];
    // lag-probe follows the writer: it reads the active region at every window.
    case "lag-probe": return [...access, ...readers, `app/${suffix}/active-region`];
    case "traffic-shifter": return [];
    case "failover": return [...access, ...readers, `app/${suffix}/active-region`];
    // The application's role to freeze (`user`: the name, not its password), the source's
    // DSN and the reverse conninfo (functions/cutover/src/handler.rs).
    case "cutover": return [...access, ...["user", "source-admin-dsn", "reverse-conninfo"].map(db)];
  }
}

/** The SecureStrings among the parameters. */
export const SECURE = /\/(password|passwords\/[a-z-]+|source-dsn|source-admin-dsn|reverse-conninfo)$/;

/**
 * The state items each crate touches, by family (the keys of shared/src/state.rs): the
 * validator its runs, lag-probe its samples and its reachability record of the writer, the
 * shifter its deployments, failover its lease, state and events, reading every vantage's
 * lag samples to choose a target and every vantage's reachability record to agree on a loss.
 */
export function itemGrants(fn: FunctionName): ItemGrant[] {
  switch (fn) {
    case "data-validator":
      return [{ sid: "ValidationRuns", actions: ["dynamodb:GetItem", "dynamodb:PutItem", "dynamodb:Query"], families: [ITEM_FAMILIES.validation] }];
    case "lag-probe":
      return [
        // Its samples (PutItem), every vantage's samples for `status` (Query).
        { sid: "LagSamples", actions: ["dynamodb:PutItem", "dynamodb:Query"], families: [ITEM_FAMILIES.lag] },
        // Its reachability record of the writer (GetItem to continue a streak), every vantage's for `status`.
        { sid: "Reachability", actions: ["dynamodb:GetItem", "dynamodb:PutItem", "dynamodb:Query"], families: [ITEM_FAMILIES.reach] },
      ];
    case "traffic-shifter":
      return [{ sid: "Deployments", actions: ["dynamodb:GetItem", "dynamodb:PutItem", "dynamodb:Query"], families: [ITEM_FAMILIES.deployment] }];
    case "failover":
      return [
        {
          sid: "LeaseAndState",
          actions: ["dynamodb:GetItem", "dynamodb:PutItem", "dynamodb:UpdateItem", "dynamodb:ConditionCheckItem"],
          families: [ITEM_FAMILIES.failover],
        },
        // Every vantage's lag samples of a candidate, every vantage's record of the writer.
        { sid: "ReadLagAndReachability", actions: ["dynamodb:Query"], families: [ITEM_FAMILIES.lag, ITEM_FAMILIES.reach] },
      ];
    case "cutover":
      return [
        // The phase, its evidence, audit and the MIGRATION lease (a fenced write is ConditionCheckItem + PutItem in a transaction).
        {
          sid: "PhaseAndLease",
          actions: ["dynamodb:GetItem", "dynamodb:PutItem", "dynamodb:UpdateItem", "dynamodb:Query", "dynamodb:ConditionCheckItem"],
          families: [ITEM_FAMILIES.migration],
        },
        // No switch while a failover holds its lease.
        { sid: "ReadFailoverLease", actions: ["dynamodb:GetItem"], families: [ITEM_FAMILIES.failover] },
        // The validator's runs: the gates' evidence.
        { sid: "ReadValidationRuns", actions: ["dynamodb:GetItem", "dynamodb:Query"], families: [ITEM_FAMILIES.validation] },
      ];
  }
}

/** Each function's inline policy: only what its crate calls, on this stack's resources. */
export function functionPolicies(a: FunctionsArgs): Record<FunctionName, PolicyDocument> {
  const arn = (service: string, resource: string) =>
    pulumi.interpolate`arn:aws:${service}:${a.region}:${a.accountId}:${resource}`;
  const regions = a.regions.map((r) => r.region);
  const access = (fn: FunctionName, topicArns: pulumi.Input<string>[]): FunctionAccess => {
    const read = parametersRead(fn, a.suffix, regions);
    return {
      stateTableArn: a.stateTableArn,
      items: itemGrants(fn),
      parameterArns: read.map((p) => arn("ssm", `parameter/migration/${p}`)),
      readsSecureStrings: read.some((p) => SECURE.test(p)),
      ssmKeyArn: a.ssmKeyArn,
      ssmRegion: a.region,
      topicArns,
      snsKeyArn: a.snsKeyArn,
      metricsNamespace: a.metricsNamespace,
      inVpc: IN_VPC.has(fn),
    };
  };
  const watched = a.regions.flatMap((r) => a.alarms.trafficShifter.map((alarm) =>
    pulumi.output(a.accountId).apply((account) => alarmArn(r.region, account, alarm))));
  return {
    "data-validator": functionPolicy(access("data-validator", [a.opsTopicArn, a.validationTopicArn])),
    "lag-probe": functionPolicy(access("lag-probe", [a.opsTopicArn])),
    "traffic-shifter": functionPolicy(access("traffic-shifter", [a.opsTopicArn]),
      trafficShifterCalls(a.regions.map((r) => r.listenerArn), watched, {
        serviceArns: a.regions.flatMap((r) => (["blue", "green"] as Color[]).map((c) =>
          ecsServiceArn(r.region, a.accountId, r.ecsClusterName, serviceName(c, a.suffix, r.region)))),
        taskRoleArns: a.regions.flatMap((r) => r.taskRoleArns),
        scalingTargetArns: a.regions.flatMap((r) => r.scalingTargetArns),
      }, hookArns(a.releaseHooks))),
    failover: functionPolicy(access("failover", [a.opsTopicArn]), [...failoverCalls({
      globalClusterArn: a.globalClusterArn,
      clusterArns: a.regions.map((r) => r.clusterArn),
      // Every region's copy: a move writes the new writer into each region's SSM, not only its own.
      rewrittenParameterArns: regions.flatMap((region) => [`db/${a.suffix}/writer-endpoint`, `app/${a.suffix}/active-region`]
        .map((p) => pulumi.interpolate`arn:aws:ssm:${region}:${a.accountId}:parameter/migration/${p}`)),
      eventBusArn: arn("events", "event-bus/default"),
    }), ...reconcileCalls({
      suffix: a.suffix,
      regions,
      rdsArn: (region, resource) => pulumi.interpolate`arn:aws:rds:${region}:${a.accountId}:${resource}`,
      clusterArns: a.regions.map((r) => r.clusterArn),
      // The database component's names (components/database.ts).
      clusterIds: regions.map((r) => name("aurora", a.suffix, r)),
      subnetGroups: regions.map((r) => name("db-subnets", a.suffix, r)),
      parameterGroups: regions.map((r) => name("aurora-params", a.suffix, r)),
      keyArns: a.regions.map((r) => r.auroraKeyArn),
    })]),
    cutover: functionPolicy(access("cutover", [a.opsTopicArn]), cutoverCalls({
      writesToParameterArn: arn("ssm", `parameter/migration/app/${a.suffix}/writes-to`),
      stableAlarmArns: a.alarms.cutover.map((alarm) => pulumi.output(a.accountId).apply((account) => alarmArn(a.region, account, alarm))),
    })),
  };
}

/**
 * One region's Rust Lambdas (all five in the primary, EVERY_REGION in the others): `provided.al2023` on arm64 from
 * `<zipDir>/<name>/bootstrap.zip` (`make build`), JSON logs into their own log group,
 * one role each with an inline least-privilege policy; the four that reach a database
 * run in the function subnets. failover's reserved concurrency is configurable and unset by
 * default (a new account's quota of 10 cannot spare any): exactly-once comes from the
 * lease's fencing epoch in DynamoDB, not from the concurrency.
 */
export class Functions extends pulumi.ComponentResource {
  readonly region: string;
  readonly arns: Partial<Record<FunctionName, pulumi.Output<string>>> = {};
  readonly names: Partial<Record<FunctionName, pulumi.Output<string>>> = {};
  readonly policies: Record<FunctionName, PolicyDocument>;

  constructor(id: string, args: FunctionsArgs, opts?: pulumi.ComponentResourceOptions) {
    super("cutover:functions:Functions", id, {}, opts);
    const o = { parent: this, provider: args.provider };
    // The primary's resources keep their names; the other regions' carry the region.
    const n = (type: string) => (args.region === args.primaryRegion ? name(type, args.suffix) : name(type, args.suffix, args.region));
    this.region = args.region;
    this.policies = functionPolicies(args);
    const caLayer = new aws.lambda.LayerVersion(n("layer-db-ca"), {
      layerName: n("db-ca-bundle"),
      description: "the CA bundle the functions verify Aurora with (verify-full)",
      code: new pulumi.asset.AssetArchive({ [CA_BUNDLE_PATH.replace("/opt/", "")]: new pulumi.asset.FileAsset(args.caBundleFile) }),
      compatibleArchitectures: ["arm64"],
      compatibleRuntimes: ["provided.al2023"],
    }, o);

    for (const fn of args.functions) {
      const fname = n(fn);
      const logs = new aws.cloudwatch.LogGroup(n(`log-${fn}`), { name: `/aws/lambda/${fname}`, retentionInDays: LOG_RETENTION_DAYS }, o);
      const role = new aws.iam.Role(n(`role-${fn}`), { assumeRolePolicy: assumedBy("lambda.amazonaws.com") }, o);
      // The function waits for its policy: a VPC function's network interfaces are created
      // with it (the ENI actions are in it, instead of AWSLambdaVPCAccessExecutionRole's logs:*).
      const policy = new aws.iam.RolePolicy(n(`policy-${fn}`), { role: role.id, policy: policyJson(this.policies[fn]) }, o);
      new aws.iam.RolePolicy(n(`policy-${fn}-logs`), { role: role.id, policy: policyJson(logsPolicy(logs.arn)) }, o);
      const inVpc = IN_VPC.has(fn);
      const lambda = new aws.lambda.Function(n(`fn-${fn}`), {
        name: fname,
        runtime: "provided.al2023",
        architectures: ["arm64"],
        handler: "bootstrap",
        code: new pulumi.asset.FileArchive(`${args.zipDir}/${fn}/bootstrap.zip`),
        role: role.arn,
        memorySize: MEMORY_MB[fn],
        // lag-probe samples for 55 s of every minute; the others may run long commands.
        timeout: fn === "lag-probe" ? 75 : 900,
        loggingConfig: { logFormat: "JSON", logGroup: logs.name },
        environment: { variables: environment(fn, args) },
        vpcConfig: inVpc ? { subnetIds: args.subnetIds, securityGroupIds: [args.securityGroupId] } : undefined,
        layers: inVpc ? [caLayer.arn, ...(fn === "data-validator" && args.oracleLayerArn !== undefined ? [args.oracleLayerArn] : [])] : undefined,
        reservedConcurrentExecutions: fn === "failover" ? args.failoverReservedConcurrency : undefined,
      }, { ...o, dependsOn: [logs, policy] });
      this.arns[fn] = lambda.arn;
      this.names[fn] = lambda.name;
    }
    this.registerOutputs({ arns: this.arns });
  }
}
