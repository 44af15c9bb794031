// Least-privilege policy documents for the functions, as plain data so that tests can walk
// them: no wildcard actions anywhere; resources scoped to this stack's ARNs except where AWS
// offers no resource-level permission (listed, with the reason, in RESOURCE_WILDCARD_ALLOWED).

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
export const RESOURCE_WILDCARD_ALLOWED: Record<string, string> = {
  "cloudwatch:PutMetricData": "no resource-level permissions; limited by the cloudwatch:namespace condition",
  "cloudwatch:DescribeAlarms": "read-only; alarm ARNs cannot scope DescribeAlarms with AlarmNames",
  "cloudwatch:GetMetricStatistics": "read-only; no resource-level permissions",
  "elasticloadbalancing:DescribeListeners": "Describe* calls take no resource-level permissions",
  "elasticloadbalancing:DescribeTargetHealth": "Describe* calls take no resource-level permissions",
  "rds:DescribeGlobalClusters": "read-only; resource scoping of DescribeGlobalClusters is not honoured for filters",
};

/** Whether an action is a wildcard (`*`, `service:*`, `service:Get*`). */
export function isWildcardAction(action: string): boolean {
  return action.includes("*");
}

export interface FunctionScope {
  stateTableArn: pulumi.Input<string>;
  opsTopicArn: pulumi.Input<string>;
  ssmDbArn: pulumi.Input<string>;
  ssmAppArn: pulumi.Input<string>;
  kmsKeyArns: pulumi.Input<string>[];
  metricsNamespace: string;
}

function base(s: FunctionScope, extra: Statement[]): PolicyDocument {
  return {
    Version: "2012-10-17",
    Statement: [
      {
        Sid: "State",
        Effect: "Allow",
        Action: ["dynamodb:GetItem", "dynamodb:PutItem", "dynamodb:UpdateItem", "dynamodb:DeleteItem", "dynamodb:Query", "dynamodb:ConditionCheckItem"],
        Resource: [s.stateTableArn],
      },
      { Sid: "ReadParameters", Effect: "Allow", Action: ["ssm:GetParameter"], Resource: [s.ssmDbArn, s.ssmAppArn] },
      { Sid: "DecryptSecureStrings", Effect: "Allow", Action: ["kms:Decrypt"], Resource: s.kmsKeyArns },
      { Sid: "Notify", Effect: "Allow", Action: ["sns:Publish"], Resource: [s.opsTopicArn] },
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
  return base(s, [{ Sid: "PublishResults", Effect: "Allow", Action: ["sns:Publish"], Resource: [validationTopicArn] }]);
}

export function lagProbePolicy(s: FunctionScope): PolicyDocument {
  return base(s, []);
}

export function trafficShifterPolicy(s: FunctionScope, listenerArns: pulumi.Input<string>[]): PolicyDocument {
  return base(s, [
    { Sid: "ShiftWeights", Effect: "Allow", Action: ["elasticloadbalancing:ModifyListener"], Resource: listenerArns },
    {
      Sid: "ReadListenersAndHealth",
      Effect: "Allow",
      Action: ["elasticloadbalancing:DescribeListeners", "elasticloadbalancing:DescribeTargetHealth"],
      Resource: ["*"],
    },
    { Sid: "Gates", Effect: "Allow", Action: ["cloudwatch:DescribeAlarms", "cloudwatch:GetMetricStatistics"], Resource: ["*"] },
  ]);
}

export function failoverPolicy(
  s: FunctionScope,
  globalClusterArn: pulumi.Input<string>,
  clusterArns: pulumi.Input<string>[],
  eventBusArn: pulumi.Input<string>,
): PolicyDocument {
  return base(s, [
    { Sid: "MoveTheWriter", Effect: "Allow", Action: ["rds:SwitchoverGlobalCluster", "rds:FailoverGlobalCluster"], Resource: [globalClusterArn, ...clusterArns] },
    { Sid: "WatchTheMove", Effect: "Allow", Action: ["rds:DescribeGlobalClusters"], Resource: ["*"] },
    { Sid: "RewriteEndpoints", Effect: "Allow", Action: ["ssm:PutParameter"], Resource: [s.ssmDbArn, s.ssmAppArn] },
    { Sid: "Announce", Effect: "Allow", Action: ["events:PutEvents"], Resource: [eventBusArn] },
  ]);
}
