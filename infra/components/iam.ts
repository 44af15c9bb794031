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

/** Actions that AWS only grants on "*" (no resource-level permissions), and why. */
export const RESOURCE_WILDCARD_ALLOWED: Readonly<Record<string, string>> = {
  "cloudwatch:PutMetricData": "no resource-level permissions; limited by the cloudwatch:namespace condition",
  "cloudwatch:GetMetricStatistics": "read-only; no resource-level permissions",
  "elasticloadbalancing:DescribeListeners": "ELB Describe* calls take no resource-level permissions",
  "elasticloadbalancing:DescribeTargetHealth": "ELB Describe* calls take no resource-level permissions",
  "rds:DescribeGlobalClusters": "read-only; resource scoping is not reliably honoured for DescribeGlobalClusters",
};

/**
 * The AWS managed policies attached anywhere in the stack, and why each is acceptable.
 * Anything else attached is a test failure.
 */
export const MANAGED_POLICIES_ALLOWED: Readonly<Record<string, string>> = {
  "arn:aws:iam::aws:policy/service-role/AWSLambdaVPCAccessExecutionRole":
    "the ec2 network-interface actions a VPC Lambda needs; AWS grants them on \"*\" only",
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

/** What every function may touch: this stack's table, parameters, keys and ops topic. */
export interface FunctionScope {
  stateTableArn: pulumi.Input<string>;
  opsTopicArn: pulumi.Input<string>;
  /** `arn:aws:ssm:<region>:<account>:parameter/migration/db/<suffix>/*`, and the app path. */
  ssmDbPathArn: pulumi.Input<string>;
  ssmAppPathArn: pulumi.Input<string>;
  /** The key of the SecureString parameters; decrypted only through SSM in this region. */
  ssmKeyArn: pulumi.Input<string>;
  ssmRegion: string;
  /** The key of the SNS topics: publishing to an encrypted topic needs GenerateDataKey. */
  snsKeyArn: pulumi.Input<string>;
  metricsNamespace: string;
}

function common(s: FunctionScope, extra: Statement[]): PolicyDocument {
  return {
    Version: "2012-10-17",
    Statement: [
      {
        Sid: "State",
        Effect: "Allow",
        Action: ["dynamodb:GetItem", "dynamodb:PutItem", "dynamodb:UpdateItem", "dynamodb:DeleteItem", "dynamodb:Query", "dynamodb:ConditionCheckItem"],
        Resource: [s.stateTableArn],
      },
      { Sid: "ReadParameters", Effect: "Allow", Action: ["ssm:GetParameter"], Resource: [s.ssmDbPathArn, s.ssmAppPathArn] },
      {
        Sid: "DecryptSecureStrings",
        Effect: "Allow",
        Action: ["kms:Decrypt"],
        Resource: [s.ssmKeyArn],
        Condition: { StringEquals: { "kms:ViaService": `ssm.${s.ssmRegion}.amazonaws.com` } },
      },
      { Sid: "Notify", Effect: "Allow", Action: ["sns:Publish"], Resource: [s.opsTopicArn] },
      { Sid: "EncryptNotifications", Effect: "Allow", Action: ["kms:GenerateDataKey", "kms:Decrypt"], Resource: [s.snsKeyArn] },
      {
        Sid: "Metrics",
        Effect: "Allow",
        Action: ["cloudwatch:PutMetricData"],
        Resource: ["*"],
        Condition: { StringEquals: { "cloudwatch:namespace": s.metricsNamespace } },
      },
      ...extra,
    ],
  };
}

export function dataValidatorPolicy(s: FunctionScope, validationTopicArn: pulumi.Input<string>): PolicyDocument {
  return common(s, [{ Sid: "PublishResults", Effect: "Allow", Action: ["sns:Publish"], Resource: [validationTopicArn] }]);
}

export function lagProbePolicy(s: FunctionScope): PolicyDocument {
  return common(s, []);
}

export function trafficShifterPolicy(
  s: FunctionScope,
  listenerArns: pulumi.Input<string>[],
  watchedAlarmArns: pulumi.Input<string>[],
): PolicyDocument {
  return common(s, [
    { Sid: "ShiftWeights", Effect: "Allow", Action: ["elasticloadbalancing:ModifyListener"], Resource: listenerArns },
    {
      Sid: "ReadListenersAndHealth",
      Effect: "Allow",
      Action: ["elasticloadbalancing:DescribeListeners", "elasticloadbalancing:DescribeTargetHealth"],
      Resource: ["*"],
    },
    { Sid: "AlarmGates", Effect: "Allow", Action: ["cloudwatch:DescribeAlarms"], Resource: watchedAlarmArns },
    { Sid: "LatencyGate", Effect: "Allow", Action: ["cloudwatch:GetMetricStatistics"], Resource: ["*"] },
  ]);
}

export function failoverPolicy(
  s: FunctionScope,
  move: {
    globalClusterArn: pulumi.Input<string>;
    clusterArns: pulumi.Input<string>[];
    /** The only parameters failover writes: the writer endpoint and the active region. */
    rewrittenParameterArns: pulumi.Input<string>[];
    eventBusArn: pulumi.Input<string>;
  },
): PolicyDocument {
  return common(s, [
    { Sid: "MoveTheWriter", Effect: "Allow", Action: ["rds:SwitchoverGlobalCluster", "rds:FailoverGlobalCluster"], Resource: [move.globalClusterArn, ...move.clusterArns] },
    { Sid: "WatchTheMove", Effect: "Allow", Action: ["rds:DescribeGlobalClusters"], Resource: ["*"] },
    { Sid: "RewriteEndpoints", Effect: "Allow", Action: ["ssm:PutParameter"], Resource: move.rewrittenParameterArns },
    { Sid: "Announce", Effect: "Allow", Action: ["events:PutEvents"], Resource: [move.eventBusArn] },
  ]);
}

/** The runbook state machine: invoke two functions, move the migration phase, notify. */
export function runbookPolicy(r: {
  functionArns: pulumi.Input<string>[];
  stateTableArn: pulumi.Input<string>;
  opsTopicArn: pulumi.Input<string>;
  snsKeyArn: pulumi.Input<string>;
}): PolicyDocument {
  return {
    Version: "2012-10-17",
    Statement: [
      { Sid: "Invoke", Effect: "Allow", Action: ["lambda:InvokeFunction"], Resource: r.functionArns },
      { Sid: "RecordPhase", Effect: "Allow", Action: ["dynamodb:UpdateItem"], Resource: [r.stateTableArn] },
      { Sid: "Notify", Effect: "Allow", Action: ["sns:Publish"], Resource: [r.opsTopicArn] },
      { Sid: "EncryptNotifications", Effect: "Allow", Action: ["kms:GenerateDataKey", "kms:Decrypt"], Resource: [r.snsKeyArn] },
    ],
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
