// Least-privilege policy documents, as plain data so that tests can walk them: no wildcard
// actions anywhere; resources scoped to this stack's ARNs except where AWS offers no
// resource-level permission (listed, with the reason, in RESOURCE_WILDCARD_ALLOWED).

import * as pulumi from "@pulumi/pulumi";

export interface Statement {
  Sid: string;
  Effect: "Allow";
  Action: string[];
  Resource: pulumi.Input<string>[];
  Condition?: Record<string, Record<string, string | string[]>>;
}

export interface PolicyDocument {
  Version: "2012-10-17";
  Statement: Statement[];
}

/** The network-interface actions a function in a VPC needs (AWSLambdaVPCAccessExecutionRole without its logs:*). */
export const ENI_ACTIONS = [
  "ec2:CreateNetworkInterface",
  "ec2:DescribeNetworkInterfaces",
  "ec2:DescribeSubnets",
  "ec2:DeleteNetworkInterface",
  "ec2:AssignPrivateIpAddresses",
  "ec2:UnassignPrivateIpAddresses",
];

/** Actions that AWS only grants on "*" (no resource-level permissions), and why. */
export const RESOURCE_WILDCARD_ALLOWED: Readonly<Record<string, string>> = {
  "cloudwatch:PutMetricData": "no resource-level permissions; limited by the cloudwatch:namespace condition",
  "cloudwatch:GetMetricStatistics": "read-only; no resource-level permissions",
  "elasticloadbalancing:DescribeListeners": "ELB Describe* calls take no resource-level permissions",
  "application-autoscaling:DescribeScalableTargets": "read-only; no resource-level permissions (RegisterScalableTarget is scoped to the colours' targets)",
  "ecs:DescribeTaskDefinition": "read-only; no resource-level permissions (the shifter reads the idle colour's family to copy it for a release)",
  "ecs:RegisterTaskDefinition": "no resource-level permissions; what a registered revision may run is bounded by iam:PassRole on the colours' task roles",
  "elasticloadbalancing:DescribeTargetHealth": "ELB Describe* calls take no resource-level permissions",
  "rds:DescribeGlobalClusters": "read-only; resource scoping is not reliably honoured for DescribeGlobalClusters",
  ...Object.fromEntries(ENI_ACTIONS.map((a) => [a, "a VPC function's network interfaces, created by Lambda with the function's role; AWS's own policy grants them on \"*\""])),
};

/**
 * The AWS managed policies attached anywhere in the stack, and why each is acceptable.
 * Anything else attached is a test failure.
 */
export const MANAGED_POLICIES_ALLOWED: Readonly<Record<string, string>> = {
  "arn:aws:iam::aws:policy/service-role/AmazonDMSVPCManagementRole":
    "the account-wide dms-vpc-role DMS requires by that exact name; AWS defines its ENI actions",
  "arn:aws:iam::aws:policy/service-role/AmazonECSTaskExecutionRolePolicy":
    "the ECS agent's image pull and log writes for the application's tasks",
};

/** Whether an action is a wildcard (`*`, `service:*`, `service:Get*`). */
export function isWildcardAction(action: string): boolean {
  return action.includes("*");
}

/** The ARN of a CloudWatch alarm. */
export function alarmArn(region: string, accountId: string, alarmName: string): string {
  return `arn:aws:cloudwatch:${region}:${accountId}:alarm:${alarmName}`;
}

/**
 * The state table's item families: the partition keys of shared/src/state.rs (`keys`) and
 * of failover's own `FAILOVER`/`STATE` item. A grant names the families a function touches.
 */
export const ITEM_FAMILIES = {
  validation: "VALIDATION#*",
  /** LAG#<region> / FROM#<vantage>: each region's probe's sample of each region. */
  lag: "LAG#*",
  /** REACH#<writer> / FROM#<vantage>: what each region's probe last saw of the writer. */
  reach: "REACH#*",
  deployment: "DEPLOYMENT#*",
  /** LEASE, STATE and EVENT#<ts> items. */
  failover: "FAILOVER",
  migration: "MIGRATION",
} as const;

/** Some item actions on some families of the state table, enforced by `dynamodb:LeadingKeys`. */
export interface ItemGrant {
  sid: string;
  actions: string[];
  families: string[];
}

export function itemStatement(tableArn: pulumi.Input<string>, g: ItemGrant): Statement {
  return {
    Sid: g.sid,
    Effect: "Allow",
    Action: g.actions,
    Resource: [tableArn],
    Condition: { "ForAllValues:StringLike": { "dynamodb:LeadingKeys": g.families } },
  };
}


/** What a function may touch: the items, parameters and topics its crate uses, nothing else. */
export interface FunctionAccess {
  stateTableArn: pulumi.Input<string>;
  items: ItemGrant[];
  /** The parameters it reads (exact ARNs). */
  parameterArns: pulumi.Input<string>[];
  /** Whether one of them is a SecureString (decrypted with ssmKeyArn, only through SSM). */
  readsSecureStrings: boolean;
  ssmKeyArn: pulumi.Input<string>;
  ssmRegion: string;
  /** The topics it publishes to, and their key (publishing to an encrypted topic needs GenerateDataKey). */
  topicArns: pulumi.Input<string>[];
  snsKeyArn: pulumi.Input<string>;
  metricsNamespace: string;
  /** Runs in a VPC: may manage its network interfaces. */
  inVpc: boolean;
}

/** A function's policy: its items, parameters, topics and metrics, plus `extra` (its AWS calls). */
export function functionPolicy(a: FunctionAccess, extra: Statement[] = []): PolicyDocument {
  const statements: Statement[] = a.items.map((g) => itemStatement(a.stateTableArn, g));
  if (a.parameterArns.length > 0) {
    statements.push({ Sid: "ReadParameters", Effect: "Allow", Action: ["ssm:GetParameter"], Resource: a.parameterArns });
  }
  if (a.readsSecureStrings) {
    statements.push({
      Sid: "DecryptSecureStrings",
      Effect: "Allow",
      Action: ["kms:Decrypt"],
      Resource: [a.ssmKeyArn],
      Condition: { StringEquals: { "kms:ViaService": `ssm.${a.ssmRegion}.amazonaws.com` } },
    });
  }
  statements.push(
    { Sid: "Notify", Effect: "Allow", Action: ["sns:Publish"], Resource: a.topicArns },
    { Sid: "EncryptNotifications", Effect: "Allow", Action: ["kms:GenerateDataKey", "kms:Decrypt"], Resource: [a.snsKeyArn] },
    {
      Sid: "Metrics",
      Effect: "Allow",
      Action: ["cloudwatch:PutMetricData"],
      Resource: ["*"],
      Condition: { StringEquals: { "cloudwatch:namespace": a.metricsNamespace } },
    },
  );
  if (a.inVpc) statements.push({ Sid: "VpcNetworkInterfaces", Effect: "Allow", Action: ENI_ACTIONS, Resource: ["*"] });
  return { Version: "2012-10-17", Statement: [...statements, ...extra] };
}

/** The colours the shifter scales: both services of every region, and the roles their task definitions name. */
export interface ColourServices {
  serviceArns: pulumi.Input<string>[];
  taskRoleArns: pulumi.Input<string>[];
  /** Both colours' scalable targets in every region. */
  scalingTargetArns: pulumi.Input<string>[];
}

export function trafficShifterCalls(listenerArns: pulumi.Input<string>[], watchedAlarmArns: pulumi.Input<string>[], ecs: ColourServices, hookArns: string[] = []): Statement[] {
  return [
    // The configured lifecycle hooks, and no other function.
    ...(hookArns.length > 0 ? [{ Sid: "InvokeReleaseHooks", Effect: "Allow" as const, Action: ["lambda:InvokeFunction"], Resource: hookArns }] : []),
    // start: read the live colour's count and the idle one's task definition; scale and move it to its family's latest revision.
    { Sid: "ReadTheColours", Effect: "Allow", Action: ["ecs:DescribeServices"], Resource: ecs.serviceArns },
    { Sid: "ScaleTheColours", Effect: "Allow", Action: ["ecs:UpdateService"], Resource: ecs.serviceArns },
    // `start` with an image: a new revision of the idle colour's family, copied from its latest.
    { Sid: "RegisterTheRelease", Effect: "Allow", Action: ["ecs:DescribeTaskDefinition", "ecs:RegisterTaskDefinition"], Resource: ["*"] },
    // UpdateService with a new task definition revision passes the roles it names, to ECS tasks only.
    {
      Sid: "PassTheTaskRoles",
      Effect: "Allow",
      Action: ["iam:PassRole"],
      Resource: ecs.taskRoleArns,
      Condition: { StringEquals: { "iam:PassedToService": "ecs-tasks.amazonaws.com" } },
    },
    // The autoscaling floor moves with a colour's count (up for a release, to 0 when it retires).
    { Sid: "ReadTheFloors", Effect: "Allow", Action: ["application-autoscaling:DescribeScalableTargets"], Resource: ["*"] },
    { Sid: "MoveTheFloors", Effect: "Allow", Action: ["application-autoscaling:RegisterScalableTarget"], Resource: ecs.scalingTargetArns },
    { Sid: "ShiftWeights", Effect: "Allow", Action: ["elasticloadbalancing:ModifyListener"], Resource: listenerArns },
    {
      Sid: "ReadListenersAndHealth",
      Effect: "Allow",
      Action: ["elasticloadbalancing:DescribeListeners", "elasticloadbalancing:DescribeTargetHealth"],
      Resource: ["*"],
    },
    { Sid: "AlarmGates", Effect: "Allow", Action: ["cloudwatch:DescribeAlarms"], Resource: watchedAlarmArns },
    { Sid: "LatencyGate", Effect: "Allow", Action: ["cloudwatch:GetMetricStatistics"], Resource: ["*"] },
  ];
}

export function failoverCalls(move: {
  globalClusterArn: pulumi.Input<string>;
  clusterArns: pulumi.Input<string>[];
  /**
   * The only parameters failover writes: the writer endpoint and the active region, in every
   * region of the stack (its own, then each other region's copy: `copy_endpoints` and
   * `sync-endpoints` read each copy and write it where it differs). String parameters: no key.
   */
  rewrittenParameterArns: pulumi.Input<string>[];
  eventBusArn: pulumi.Input<string>;
}): Statement[] {
  return [
    { Sid: "MoveTheWriter", Effect: "Allow", Action: ["rds:SwitchoverGlobalCluster", "rds:FailoverGlobalCluster"], Resource: [move.globalClusterArn, ...move.clusterArns] },
    { Sid: "WatchTheMove", Effect: "Allow", Action: ["rds:DescribeGlobalClusters"], Resource: ["*"] },
    // The new writer's endpoint is its cluster's writer endpoint (DescribeDBClusters).
    { Sid: "FindTheWriterEndpoint", Effect: "Allow", Action: ["rds:DescribeDBClusters"], Resource: move.clusterArns },
    { Sid: "RewriteEndpoints", Effect: "Allow", Action: ["ssm:GetParameter", "ssm:PutParameter"], Resource: move.rewrittenParameterArns },
    { Sid: "Announce", Effect: "Allow", Action: ["events:PutEvents"], Resource: [move.eventBusArn] },
  ];
}

/**
 * The lost-write reconciliation's names: what it creates is `cutover-<suffix>-lost-<fork xid>`
 * (the kept snapshot copy and the temporary cluster; its instance adds `-1`), as the failover
 * crate's `ReconcileSettings::prefix` builds them.
 */
export function lostWritesName(suffix: string): string {
  return `cutover-${suffix}-lost-`;
}

/** Aurora's name for its snapshot of an old primary after an unplanned failover (a system DB cluster snapshot). */
export const UNPLANNED_FAILOVER_SNAPSHOT = "rds:unplanned-global-failover-";

/** `us-east-1` → `UsEast1`: a region in a statement id. */
function sidOf(region: string): string {
  return region.split("-").map((part) => part.charAt(0).toUpperCase() + part.slice(1)).join("");
}

/**
 * The reconciliation's RDS calls, in every region (the old primary may be any): find Aurora's
 * snapshot of the old primary, read where the old primary cluster was (its subnet group,
 * security groups, parameter group, key), keep a tagged copy encrypted with that key, restore
 * it to a temporary cluster there with one instance, delete both, delete expired copies. Only
 * this stack's clusters, subnet and parameter groups, its copies and temporaries by their name
 * pattern, and Aurora's snapshots of this stack's clusters; and each region's Aurora key only
 * through RDS in that region (RDS creates a grant on it, with the caller's permissions, to copy
 * and restore an encrypted snapshot).
 */
export function reconcileCalls(r: {
  suffix: string;
  regions: string[];
  /** The ARN of `resource` (`cluster:…`) in `region`, this account. */
  rdsArn: (region: string, resource: string) => pulumi.Input<string>;
  clusterArns: pulumi.Input<string>[];
  /** The old primary's cluster identifier in each region (Aurora's snapshot is named after it). */
  clusterIds: string[];
  /** The old primary's DB subnet group, in each region: the temporary cluster goes in it. */
  subnetGroups: string[];
  /** The old primary's DB cluster parameter group, in each region: the temporary cluster takes it. */
  parameterGroups: string[];
  /** The KMS key of each region's cluster (and so of Aurora's snapshot of it). */
  keyArns: pulumi.Input<string>[];
}): Statement[] {
  const lost = lostWritesName(r.suffix);
  const every = (resource: (i: number) => string) => r.regions.map((region, i) => r.rdsArn(region, resource(i)));
  const kept = every(() => `cluster-snapshot:${lost}*`);
  const system = every((i) => `cluster-snapshot:${UNPLANNED_FAILOVER_SNAPSHOT}${r.clusterIds[i]}-*`);
  const temporary = every(() => `cluster:${lost}*`);
  const instances = every(() => `db:${lost}*`);
  return [
    { Sid: "FindTheOldPrimarySnapshot", Effect: "Allow", Action: ["rds:DescribeDBClusterSnapshots"], Resource: [...r.clusterArns, ...system, ...kept] },
    // Its subnet group, security groups, parameter group and key: the copy is restored where it was.
    { Sid: "ReadTheOldPrimary", Effect: "Allow", Action: ["rds:DescribeDBClusters"], Resource: r.clusterArns },
    { Sid: "KeepACopy", Effect: "Allow", Action: ["rds:CopyDBClusterSnapshot"], Resource: [...system, ...kept] },
    // The copy's keep-until tag and the temporary cluster's purpose tag, given at creation.
    { Sid: "TagWhatItCreates", Effect: "Allow", Action: ["rds:AddTagsToResource"], Resource: [...kept, ...temporary] },
    {
      Sid: "RestoreTemporaryCluster", Effect: "Allow", Action: ["rds:RestoreDBClusterFromSnapshot"],
      Resource: [
        ...temporary, ...kept, ...every((i) => `subgrp:${r.subnetGroups[i]}`), ...every((i) => `cluster-pg:${r.parameterGroups[i]}`),
      ],
    },
    { Sid: "AddItsInstance", Effect: "Allow", Action: ["rds:CreateDBInstance"], Resource: [...instances, ...temporary] },
    { Sid: "WatchTheTemporary", Effect: "Allow", Action: ["rds:DescribeDBClusters", "rds:DescribeDBInstances"], Resource: [...temporary, ...instances] },
    { Sid: "DeleteTheTemporary", Effect: "Allow", Action: ["rds:DeleteDBInstance", "rds:DeleteDBCluster"], Resource: [...instances, ...temporary] },
    { Sid: "DeleteExpiredCopies", Effect: "Allow", Action: ["rds:DeleteDBClusterSnapshot"], Resource: kept },
    ...r.regions.map((region, i): Statement => ({
      Sid: `SnapshotKey${sidOf(region)}`,
      Effect: "Allow",
      Action: ["kms:CreateGrant", "kms:DescribeKey"],
      Resource: [r.keyArns[i]],
      Condition: { StringEquals: { "kms:ViaService": `rds.${region}.amazonaws.com` } },
    })),
  ];
}

/** The cutover's own calls: flip where the application writes, and read the `stable` gate's alarms. */
export function cutoverCalls(c: {
  /** The only parameter the cutover writes: `/migration/app/<suffix>/writes-to`. */
  writesToParameterArn: pulumi.Input<string>;
  stableAlarmArns: pulumi.Input<string>[];
}): Statement[] {
  return [
    { Sid: "MoveTheWrites", Effect: "Allow", Action: ["ssm:PutParameter"], Resource: [c.writesToParameterArn] },
    { Sid: "StableGate", Effect: "Allow", Action: ["cloudwatch:DescribeAlarms"], Resource: c.stableAlarmArns },
  ];
}

/**
 * The runbook state machine: invoke its three functions (validator, cutover, shifter) and
 * notify. No state-table access: the cutover records the phase itself, under its lease.
 */
export function runbookPolicy(r: {
  functionArns: pulumi.Input<string>[];
  opsTopicArn: pulumi.Input<string>;
  snsKeyArn: pulumi.Input<string>;
}): PolicyDocument {
  return {
    Version: "2012-10-17",
    Statement: [
      { Sid: "Invoke", Effect: "Allow", Action: ["lambda:InvokeFunction"], Resource: r.functionArns },
      { Sid: "Notify", Effect: "Allow", Action: ["sns:Publish"], Resource: [r.opsTopicArn] },
      { Sid: "EncryptNotifications", Effect: "Allow", Action: ["kms:GenerateDataKey", "kms:Decrypt"], Resource: [r.snsKeyArn] },
    ],
  };
}

/** The validation fan-out state machine: invoke the validator, nothing else. */
export function validationMachinePolicy(validatorArn: pulumi.Input<string>): PolicyDocument {
  return {
    Version: "2012-10-17",
    Statement: [{ Sid: "Invoke", Effect: "Allow", Action: ["lambda:InvokeFunction"], Resource: [validatorArn] }],
  };
}

/**
 * The application's task role: it reads where to write (`writes-to`, which the cutover
 * function flips at the switch) and the two addresses it may name, nothing else.
 */
export function applicationTaskPolicy(parameterArns: pulumi.Input<string>[]): PolicyDocument {
  return {
    Version: "2012-10-17",
    Statement: [{ Sid: "WhereToWrite", Effect: "Allow", Action: ["ssm:GetParameter"], Resource: parameterArns }],
  };
}

/** A Lambda's own log group, and nothing else of CloudWatch Logs. */
export function logsPolicy(logGroupArn: pulumi.Input<string>): PolicyDocument {
  return {
    Version: "2012-10-17",
    Statement: [{
      Sid: "Logs",
      Effect: "Allow",
      Action: ["logs:CreateLogStream", "logs:PutLogEvents"],
      Resource: [pulumi.interpolate`${logGroupArn}:*`],
    }],
  };
}

/** EventBridge in a secondary region putting this stack's alarm events on the primary bus. */
export function forwardPolicy(primaryBusArn: pulumi.Input<string>): PolicyDocument {
  return {
    Version: "2012-10-17",
    Statement: [{ Sid: "ForwardAlarms", Effect: "Allow", Action: ["events:PutEvents"], Resource: [primaryBusArn] }],
  };
}

/** A role that only `service` (e.g. lambda.amazonaws.com) may assume. */
export function assumedBy(service: string): string {
  return JSON.stringify({
    Version: "2012-10-17",
    Statement: [{ Effect: "Allow", Principal: { Service: service }, Action: "sts:AssumeRole" }],
  });
}

/** Serialises a document whose resources are still outputs. */
export function policyJson(doc: PolicyDocument): pulumi.Output<string> {
  return pulumi.output(doc).apply((d) => JSON.stringify(d));
}
