import * as aws from "@pulumi/aws";
import * as pulumi from "@pulumi/pulumi";

import { name } from "../config";
import {
  dataValidatorPolicy, failoverPolicy, FunctionScope, lagProbePolicy, PolicyDocument, trafficShifterPolicy,
} from "./iam";

export const FUNCTIONS = ["data-validator", "lag-probe", "traffic-shifter", "failover"] as const;
export type FunctionName = (typeof FUNCTIONS)[number];

export interface RegionalApp {
  region: string;
  provider: aws.Provider;
  listenerArn: pulumi.Input<string>;
  blueTargetGroupArn: pulumi.Input<string>;
  greenTargetGroupArn: pulumi.Input<string>;
  albArnSuffix: pulumi.Input<string>;
  clusterArn: pulumi.Input<string>;
}

export interface OperationsArgs {
  suffix: string;
  primaryRegion: string;
  regions: RegionalApp[];
  privateSubnetIds: pulumi.Input<string>[];
  functionSecurityGroupId: pulumi.Input<string>;
  stateTableArn: pulumi.Input<string>;
  stateTableName: pulumi.Input<string>;
  globalClusterId: pulumi.Input<string>;
  globalClusterArn: pulumi.Input<string>;
  accountId: pulumi.Input<string>;
  zipDir: string;
  validationSchedule: string;
  validationSchemas: string;
  oracleLayerArn?: string;
  alertEmail?: string;
  createDms: boolean;
  dmsTaskArn?: pulumi.Input<string>;
  metricsNamespace: string;
}

/** What each function reads from its environment (the crates' config modules). */
export function environment(
  fn: FunctionName,
  a: OperationsArgs,
  topics: { ops: pulumi.Input<string>; validation: pulumi.Input<string> },
): Record<string, pulumi.Input<string>> {
  const regions = a.regions.map((r) => r.region);
  const byRegion = (pick: (r: RegionalApp) => pulumi.Input<string>) =>
    pulumi.all(a.regions.map((r) => pulumi.all([r.region, pick(r)]).apply(([region, v]) => `${region}=${v}`)))
      .apply((items) => items.join(","));
  const common: Record<string, pulumi.Input<string>> = {
    CUTOVER_SUFFIX: a.suffix,
    CUTOVER_PRIMARY_REGION: a.primaryRegion,
    CUTOVER_REGIONS: regions.join(","),
    CUTOVER_STATE_TABLE: a.stateTableName,
    CUTOVER_OPS_TOPIC_ARN: topics.ops,
    CUTOVER_METRICS_NAMESPACE: a.metricsNamespace,
    CUTOVER_DB_SSM_PREFIX: `/migration/db/${a.suffix}`,
    CUTOVER_APP_SSM_PREFIX: `/migration/app/${a.suffix}`,
    CUTOVER_DB_SSLMODE: "verify-full",
  };
  switch (fn) {
    case "data-validator":
      return { ...common, CUTOVER_VALIDATION_TOPIC_ARN: topics.validation, CUTOVER_VALIDATION_SCHEMAS: a.validationSchemas };
    case "lag-probe":
      return { ...common, CUTOVER_LAG_WINDOW_MS: "55000", CUTOVER_LAG_CADENCE_MS: "1000" };
    case "traffic-shifter":
      return {
        ...common,
        CUTOVER_SERVICE: "app",
        CUTOVER_LISTENER_ARNS: byRegion((r) => r.listenerArn),
        CUTOVER_BLUE_TG_ARNS: byRegion((r) => r.blueTargetGroupArn),
        CUTOVER_GREEN_TG_ARNS: byRegion((r) => r.greenTargetGroupArn),
        CUTOVER_WATCHED_ALARMS: [name("app-5xx", a.suffix), name("app-p99-latency", a.suffix)].join(","),
        CUTOVER_LATENCY_GATE_MS: "200",
      };
    case "failover":
      return {
        ...common,
        CUTOVER_FAILOVER_DRIVER: "aurora-global",
        CUTOVER_GLOBAL_CLUSTER_ID: a.globalClusterId,
        CUTOVER_CLUSTER_ARNS: byRegion((r) => r.clusterArn),
        CUTOVER_RPO_BUDGET_MS: "1000",
        CUTOVER_FAILOVER_ALARMS: name("primary-writer-unavailable", a.suffix),
        CUTOVER_EVENT_BUS: "default",
      };
  }
}

/** The phased cutover runbook: validate → shift region by region → validate → record the phase. */
export function runbookDefinition(validator: string, shifter: string, table: string): string {
  const invoke = (fn: string, payload: Record<string, unknown>, next: string) => ({
    Type: "Task",
    Resource: "arn:aws:states:::lambda:invoke",
    Parameters: { FunctionName: fn, Payload: payload },
    OutputPath: "$.Payload",
    Retry: [{ ErrorEquals: ["Retryable", "Lambda.TooManyRequestsException"], IntervalSeconds: 5, MaxAttempts: 3, BackoffRate: 2 }],
    Catch: [{ ErrorEquals: ["States.ALL"], ResultPath: "$.error", Next: "AbortShift" }],
    Next: next,
  });
  const validation = (prefix: string, next: string) => ({
    [`${prefix}Plan`]: invoke(validator, { command: "plan" }, `${prefix}Segments`),
    [`${prefix}Segments`]: {
      Type: "Map",
      ItemsPath: "$.segments",
      MaxConcurrency: 8,
      ItemProcessor: {
        ProcessorConfig: { Mode: "INLINE" },
        StartAt: "ValidateSegment",
        States: {
          ValidateSegment: {
            Type: "Task",
            Resource: "arn:aws:states:::lambda:invoke",
            Parameters: { FunctionName: validator, Payload: { "command": "validate-segment", "run_id.$": "$.run_id", "table.$": "$.table", "segment.$": "$.segment" } },
            Retry: [{ ErrorEquals: ["Retryable"], IntervalSeconds: 5, MaxAttempts: 3, BackoffRate: 2 }],
            End: true,
          },
        },
      },
      ResultPath: null,
      Catch: [{ ErrorEquals: ["States.ALL"], ResultPath: "$.error", Next: "AbortShift" }],
      Next: `${prefix}Merge`,
    },
    [`${prefix}Merge`]: invoke(validator, { "command": "merge", "run_id.$": "$.run_id" }, `${prefix}Verdict`),
    [`${prefix}Verdict`]: {
      Type: "Choice",
      Choices: [{ Variable: "$.status", StringEquals: "MATCH", Next: next }],
      Default: "AbortShift",
    },
  });
  return JSON.stringify({
    Comment: "cutover: validate, shift traffic region by region with a bake, validate, record the phase; any failure aborts the shift",
    StartAt: "PreValidatePlan",
    States: {
      ...validation("PreValidate", "StartShift"),
      StartShift: invoke(shifter, { command: "start", plan: "canary-10-5m", scope: "region-by-region", region_bake: "15m", on_gate_failure: "rollback" }, "Bake"),
      Bake: { Type: "Wait", Seconds: 60, Next: "Tick" },
      Tick: invoke(shifter, { command: "tick" }, "ShiftDone"),
      ShiftDone: {
        Type: "Choice",
        Choices: [
          { Variable: "$.deployment.status", StringEquals: "succeeded", Next: "PostValidatePlan" },
          { Variable: "$.deployment.status", StringEquals: "running", Next: "Bake" },
        ],
        Default: "Notify",
      },
      ...validation("PostValidate", "RecordPhase"),
      RecordPhase: {
        Type: "Task",
        Resource: "arn:aws:states:::dynamodb:putItem",
        Parameters: {
          TableName: table,
          Item: { pk: { S: "MIGRATION" }, sk: { S: "PHASE" }, phase: { S: "cutover" }, "changed_at.$": "$$.State.EnteredTime" },
        },
        End: true,
      },
      AbortShift: invoke(shifter, { command: "abort", reason: "runbook step failed" }, "Notify"),
      Notify: { Type: "Fail", Error: "CutoverAborted", Cause: "a validation or shift step failed; the shift was aborted (100 % blue)" },
    },
  });
}

/**
 * The four functions (arm64, provided.al2023, JSON logs, least-privilege roles), their
 * triggers, the notifications, the alarms and dashboard, and the runbook — all in the
 * primary region, with the other regions' alarm events forwarded to its event bus.
 */
export class Operations extends pulumi.ComponentResource {
  readonly functionArns: Record<string, pulumi.Output<string>> = {};
  readonly policies: Record<string, PolicyDocument> = {};
  readonly opsTopicArn: pulumi.Output<string>;
  readonly validationTopicArn: pulumi.Output<string>;
  readonly stateMachineArn: pulumi.Output<string>;

  constructor(id: string, args: OperationsArgs, opts?: pulumi.ComponentResourceOptions) {
    super("cutover:operations:Operations", id, {}, opts);
    const primary = args.regions[0];
    const o = { parent: this, provider: primary.provider };
    const n = (type: string) => name(type, args.suffix);
    const arn = (service: string, resource: string) => pulumi.interpolate`arn:aws:${service}:${args.primaryRegion}:${args.accountId}:${resource}`;

    // Notifications, encrypted with their own key.
    const snsKey = new aws.kms.Key(n("kms-sns"), {
      description: "cutover SNS topics",
      enableKeyRotation: true,
      deletionWindowInDays: 7,
      policy: pulumi.interpolate`{"Version":"2012-10-17","Statement":[{"Sid":"Account","Effect":"Allow","Principal":{"AWS":"arn:aws:iam::${args.accountId}:root"},"Action":"kms:*","Resource":"*"},{"Sid":"CloudWatchAndEvents","Effect":"Allow","Principal":{"Service":["cloudwatch.amazonaws.com","events.amazonaws.com"]},"Action":["kms:Decrypt","kms:GenerateDataKey"],"Resource":"*"}]}`,
    }, o);
    const topic = (kind: string) => new aws.sns.Topic(n(`sns-${kind}`), { name: n(`cutover-${kind}`), kmsMasterKeyId: snsKey.id }, o);
    const ops = topic("ops");
    const validation = topic("validation");
    if (args.alertEmail !== undefined) {
      new aws.sns.TopicSubscription(n("sns-ops-email"), { topic: ops.arn, protocol: "email", endpoint: args.alertEmail }, o);
    }
    this.opsTopicArn = ops.arn;
    this.validationTopicArn = validation.arn;

    const scope: FunctionScope = {
      stateTableArn: args.stateTableArn,
      opsTopicArn: ops.arn,
      ssmDbArn: arn("ssm", `parameter/migration/db/${args.suffix}/*`),
      ssmAppArn: arn("ssm", `parameter/migration/app/${args.suffix}/*`),
      kmsKeyArns: [arn("kms", "alias/aws/ssm"), snsKey.arn],
      metricsNamespace: args.metricsNamespace,
    };
    this.policies["data-validator"] = dataValidatorPolicy(scope, validation.arn);
    this.policies["lag-probe"] = lagProbePolicy(scope);
    this.policies["traffic-shifter"] = trafficShifterPolicy(scope, args.regions.map((r) => r.listenerArn));
    this.policies.failover = failoverPolicy(scope, args.globalClusterArn, args.regions.map((r) => r.clusterArn), arn("events", "event-bus/default"));

    const fns: Record<string, aws.lambda.Function> = {};
    for (const fn of FUNCTIONS) {
      const fname = n(fn);
      const logs = new aws.cloudwatch.LogGroup(n(`log-${fn}`), { name: `/aws/lambda/${fname}`, retentionInDays: 30 }, o);
      const role = new aws.iam.Role(n(`role-${fn}`), {
        assumeRolePolicy: JSON.stringify({
          Version: "2012-10-17",
          Statement: [{ Effect: "Allow", Principal: { Service: "lambda.amazonaws.com" }, Action: "sts:AssumeRole" }],
        }),
      }, o);
      new aws.iam.RolePolicy(n(`policy-${fn}`), {
        role: role.id,
        policy: pulumi.output(this.policies[fn]).apply((doc) => JSON.stringify(doc)),
      }, o);
      new aws.iam.RolePolicy(n(`policy-${fn}-logs`), {
        role: role.id,
        policy: pulumi.output({
          Version: "2012-10-17",
          Statement: [{ Sid: "Logs", Effect: "Allow", Action: ["logs:CreateLogStream", "logs:PutLogEvents"], Resource: [pulumi.interpolate`${logs.arn}:*`] }],
        }).apply((doc) => JSON.stringify(doc)),
      }, o);
      const inVpc = fn !== "traffic-shifter";
      if (inVpc) {
        new aws.iam.RolePolicyAttachment(n(`role-${fn}-vpc`), {
          role: role.name,
          policyArn: "arn:aws:iam::aws:policy/service-role/AWSLambdaVPCAccessExecutionRole",
        }, o);
      }
      fns[fn] = new aws.lambda.Function(n(`fn-${fn}`), {
        name: fname,
        runtime: "provided.al2023",
        architectures: ["arm64"],
        handler: "bootstrap",
        code: new pulumi.asset.FileArchive(`${args.zipDir}/${fn}/bootstrap.zip`),
        role: role.arn,
        memorySize: fn === "data-validator" ? 1024 : 256,
        timeout: fn === "lag-probe" ? 75 : 900,
        loggingConfig: { logFormat: "JSON", logGroup: logs.name },
        environment: { variables: environment(fn, args, { ops: ops.arn, validation: validation.arn }) },
        vpcConfig: inVpc ? { subnetIds: args.privateSubnetIds, securityGroupIds: [args.functionSecurityGroupId] } : undefined,
        layers: fn === "data-validator" && args.oracleLayerArn !== undefined ? [args.oracleLayerArn] : undefined,
        reservedConcurrentExecutions: fn === "failover" ? 1 : undefined,
      }, { ...o, dependsOn: [logs] });
      this.functionArns[fn] = fns[fn].arn;
    }

    // Schedules.
    const schedules: [FunctionName, string, string | undefined][] = [
      ["lag-probe", "rate(1 minute)", undefined],
      ["data-validator", args.validationSchedule, undefined],
      ["traffic-shifter", "rate(1 minute)", JSON.stringify({ command: "tick" })],
    ];
    for (const [fn, expression, input] of schedules) {
      const rule = new aws.cloudwatch.EventRule(n(`schedule-${fn}`), { scheduleExpression: expression }, o);
      new aws.cloudwatch.EventTarget(n(`schedule-${fn}-target`), { rule: rule.name, arn: fns[fn].arn, input }, o);
      new aws.lambda.Permission(n(`schedule-${fn}-invoke`), {
        action: "lambda:InvokeFunction", function: fns[fn].name, principal: "events.amazonaws.com", sourceArn: rule.arn,
      }, o);
    }

    // Alarms, and their state changes routed to the functions.
    const alarmsBy: Record<string, string[]> = {
      "traffic-shifter": [n("app-5xx"), n("app-p99-latency")],
      failover: [n("primary-writer-unavailable")],
    };
    for (const [fn, alarmNames] of Object.entries(alarmsBy)) {
      const rule = new aws.cloudwatch.EventRule(n(`alarms-to-${fn}`), {
        eventPattern: JSON.stringify({
          source: ["aws.cloudwatch"],
          "detail-type": ["CloudWatch Alarm State Change"],
          detail: { alarmName: alarmNames, state: { value: ["ALARM"] } },
        }),
      }, o);
      new aws.cloudwatch.EventTarget(n(`alarms-to-${fn}-target`), { rule: rule.name, arn: fns[fn].arn }, o);
      new aws.lambda.Permission(n(`alarms-to-${fn}-invoke`), {
        action: "lambda:InvokeFunction", function: fns[fn].name, principal: "events.amazonaws.com", sourceArn: rule.arn,
      }, o);
    }
    // The secondaries' alarm events travel to the primary region's default bus.
    const primaryBus = arn("events", "event-bus/default");
    for (const r of args.regions.slice(1)) {
      const ro = { parent: this, provider: r.provider };
      const forwarder = new aws.iam.Role(name("role-events-forward", args.suffix, r.region), {
        assumeRolePolicy: JSON.stringify({
          Version: "2012-10-17",
          Statement: [{ Effect: "Allow", Principal: { Service: "events.amazonaws.com" }, Action: "sts:AssumeRole" }],
        }),
        inlinePolicies: [{
          name: "put-to-primary-bus",
          policy: primaryBus.apply((bus) => JSON.stringify({
            Version: "2012-10-17",
            Statement: [{ Effect: "Allow", Action: ["events:PutEvents"], Resource: [bus] }],
          })),
        }],
      }, ro);
      const rule = new aws.cloudwatch.EventRule(name("alarms-forward", args.suffix, r.region), {
        eventPattern: JSON.stringify({ source: ["aws.cloudwatch"], "detail-type": ["CloudWatch Alarm State Change"] }),
      }, ro);
      new aws.cloudwatch.EventTarget(name("alarms-forward-target", args.suffix, r.region), {
        rule: rule.name, arn: primaryBus, roleArn: forwarder.arn,
      }, ro);
    }

    const alarm = (id: string, region: RegionalApp, spec: Partial<aws.cloudwatch.MetricAlarmArgs>) =>
      new aws.cloudwatch.MetricAlarm(id, {
        alarmActions: [ops.arn],
        okActions: [ops.arn],
        evaluationPeriods: 1,
        treatMissingData: "notBreaching",
        ...spec,
      } as aws.cloudwatch.MetricAlarmArgs, { parent: this, provider: region.provider });
    for (const r of args.regions) {
      const lb = { LoadBalancer: r.albArnSuffix };
      alarm(name("app-5xx", args.suffix, r.region), r, {
        name: n("app-5xx"), namespace: "AWS/ApplicationELB", metricName: "HTTPCode_Target_5XX_Count", dimensions: lb,
        statistic: "Sum", period: 60, threshold: 10, comparisonOperator: "GreaterThanThreshold",
      });
      alarm(name("app-p99-latency", args.suffix, r.region), r, {
        name: n("app-p99-latency"), namespace: "AWS/ApplicationELB", metricName: "TargetResponseTime", dimensions: lb,
        extendedStatistic: "p99", period: 60, threshold: 0.2, comparisonOperator: "GreaterThanThreshold",
      });
      alarm(name("app-unhealthy-hosts", args.suffix, r.region), r, {
        name: n("app-unhealthy-hosts"), namespace: "AWS/ApplicationELB", metricName: "UnHealthyHostCount",
        dimensions: { LoadBalancer: r.albArnSuffix, TargetGroup: pulumi.output(r.blueTargetGroupArn).apply((a) => a.slice(a.lastIndexOf(":") + 1)) },
        statistic: "Maximum", period: 60, threshold: 0, comparisonOperator: "GreaterThanThreshold",
      });
      if (r.region !== args.primaryRegion) {
        alarm(name("replication-lag", args.suffix, r.region), primary, {
          name: name("replication-lag", args.suffix, r.region), namespace: args.metricsNamespace, metricName: "ReplicationLagMs",
          dimensions: { Region: r.region, Source: "heartbeat" }, statistic: "Maximum", period: 10, threshold: 1000,
          evaluationPeriods: 3, datapointsToAlarm: 2, comparisonOperator: "GreaterThanThreshold",
        });
      }
    }
    alarm(n("primary-writer-unavailable"), primary, {
      name: n("primary-writer-unavailable"), namespace: args.metricsNamespace, metricName: "RegionUnreachable",
      dimensions: { Region: args.primaryRegion }, statistic: "Sum", period: 60, threshold: 5,
      comparisonOperator: "GreaterThanOrEqualToThreshold", alarmActions: [ops.arn],
    });
    alarm(n("validation-mismatch"), primary, {
      name: n("validation-mismatch"), namespace: args.metricsNamespace, metricName: "MismatchedRows",
      statistic: "Sum", period: 300, threshold: 0, comparisonOperator: "GreaterThanThreshold",
    });
    if (args.createDms) {
      const dmsRule = new aws.cloudwatch.EventRule(n("dms-task-failure"), {
        eventPattern: JSON.stringify({
          source: ["aws.dms"], "detail-type": ["DMS Replication Task State Change"],
          detail: { eventType: ["REPLICATION_TASK_FAILED"] },
        }),
      }, o);
      new aws.cloudwatch.EventTarget(n("dms-task-failure-target"), { rule: dmsRule.name, arn: ops.arn }, o);
    }

    new aws.cloudwatch.Dashboard(n("dashboard"), {
      dashboardName: n("cutover"),
      dashboardBody: pulumi.all(args.regions.map((r) => r.albArnSuffix)).apply((lbs) => dashboardBody(args, lbs)),
    }, o);

    const sfnRole = new aws.iam.Role(n("role-runbook"), {
      assumeRolePolicy: JSON.stringify({
        Version: "2012-10-17",
        Statement: [{ Effect: "Allow", Principal: { Service: "states.amazonaws.com" }, Action: "sts:AssumeRole" }],
      }),
    }, o);
    new aws.iam.RolePolicy(n("policy-runbook"), {
      role: sfnRole.id,
      policy: pulumi.all([fns["data-validator"].arn, fns["traffic-shifter"].arn, args.stateTableArn]).apply(([v, t, table]) => JSON.stringify({
        Version: "2012-10-17",
        Statement: [
          { Sid: "Invoke", Effect: "Allow", Action: ["lambda:InvokeFunction"], Resource: [v, t] },
          { Sid: "RecordPhase", Effect: "Allow", Action: ["dynamodb:PutItem"], Resource: [table] },
        ],
      })),
    }, o);
    const machine = new aws.sfn.StateMachine(n("runbook"), {
      name: n("cutover-runbook"),
      roleArn: sfnRole.arn,
      definition: pulumi.all([fns["data-validator"].arn, fns["traffic-shifter"].arn, args.stateTableName])
        .apply(([v, t, table]) => runbookDefinition(v, t, table)),
    }, o);
    this.stateMachineArn = machine.arn;
    this.registerOutputs({ opsTopicArn: this.opsTopicArn, stateMachineArn: this.stateMachineArn });
  }
}

/** The dashboard the operations team watches during the migration. */
export function dashboardBody(a: OperationsArgs, albSuffixes: string[]): string {
  const ns = a.metricsNamespace;
  const secondaries = a.regions.slice(1).map((r) => r.region);
  const widgets: Record<string, unknown>[] = [
    {
      type: "metric", width: 12, height: 6,
      properties: {
        title: "Replication lag (heartbeat, 1 s)", region: a.primaryRegion, period: 1, stat: "Maximum",
        metrics: secondaries.map((r) => [ns, "ReplicationLagMs", "Region", r, "Source", "heartbeat"]),
        annotations: { horizontal: [{ value: 1000, label: "1 s target" }] },
      },
    },
    {
      type: "metric", width: 12, height: 6,
      properties: {
        title: "Replication lag (engine)", region: a.primaryRegion, period: 60, stat: "Average",
        metrics: secondaries.map((r) => [ns, "ReplicationLagMs", "Region", r, "Source", "engine"]),
      },
    },
    {
      type: "metric", width: 12, height: 6,
      properties: {
        title: "Validation", region: a.primaryRegion, period: 300, stat: "Sum",
        metrics: [[ns, "RowsCompared"], [ns, "MismatchedRows"]],
      },
    },
  ];
  a.regions.forEach((r, i) => {
    const lb = albSuffixes[i];
    widgets.push({
      type: "metric", width: 12, height: 6,
      properties: {
        title: `Application ${r.region}: 5xx, p99, healthy hosts`, region: r.region, period: 60,
        metrics: [
          ["AWS/ApplicationELB", "HTTPCode_Target_5XX_Count", "LoadBalancer", lb, { stat: "Sum" }],
          ["AWS/ApplicationELB", "TargetResponseTime", "LoadBalancer", lb, { stat: "p99", yAxis: "right" }],
          ["AWS/ApplicationELB", "HealthyHostCount", "LoadBalancer", lb, { stat: "Minimum" }],
        ],
      },
    });
    widgets.push({
      type: "metric", width: 12, height: 6,
      properties: {
        title: `ECS ${r.region}: CPU and memory`, region: r.region, period: 60, stat: "Average",
        metrics: [
          ["AWS/ECS", "CPUUtilization", "ClusterName", name("ecs", a.suffix, r.region), "ServiceName", name("app", a.suffix, r.region)],
          ["AWS/ECS", "MemoryUtilization", "ClusterName", name("ecs", a.suffix, r.region), "ServiceName", name("app", a.suffix, r.region)],
        ],
      },
    });
  });
  if (a.createDms) {
    widgets.push({
      type: "metric", width: 12, height: 6,
      properties: {
        title: "DMS task: CDC latency", region: a.primaryRegion, period: 60, stat: "Average",
        metrics: [["AWS/DMS", "CDCLatencySource", "ReplicationTaskIdentifier", name("dms-task", a.suffix)],
          ["AWS/DMS", "CDCLatencyTarget", "ReplicationTaskIdentifier", name("dms-task", a.suffix)]],
      },
    });
  }
  return JSON.stringify({ widgets });
}
