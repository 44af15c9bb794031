import * as aws from "@pulumi/aws";
import * as pulumi from "@pulumi/pulumi";

import { name } from "../config";
import { COLORS, Color, serviceName } from "./application";
import { WatchedAlarms } from "./functions";

/** The alarms' names: the same in every region, so the shifter can name them once. */
export function alarmNames(suffix: string) {
  return {
    errorRate: name("app-5xx-rate", suffix),
    latency: name("app-p99-latency", suffix),
    /** One colour's own target group: a canary's errors are not diluted by the live colour's traffic. */
    groupErrorRate: (color: Color) => name(`app-5xx-rate-${color}`, suffix),
    groupLatency: (color: Color) => name(`app-p99-latency-${color}`, suffix),
    unhealthy: (color: Color) => name(`app-unhealthy-${color}`, suffix),
    replicationLag: (region: string) => name("replication-lag", suffix, region),
    writerUnavailable: name("primary-writer-unavailable", suffix),
    /** The fast trigger: failed attempts on the writer, as this region's lag-probe makes them. */
    writerUnreachable: name("writer-unreachable", suffix),
    validationMismatch: name("validation-mismatch", suffix),
  };
}

/** Which alarms the functions act on: the shifter rolls back, failover moves the writer. */
export function watchedAlarms(suffix: string): WatchedAlarms {
  const a = alarmNames(suffix);
  // The cutover's `stable` gate watches the application's alarms in the primary, where the switch happens.
  // The shifter also watches each colour's own group: 40 % errors on a 10 % canary is 4 % of the
  // whole ALB, under its 5 % threshold, but 40 % of the new colour's group. Whichever colour is
  // new in a deployment, its group's alarms roll it back.
  const groups = COLORS.flatMap((c) => [a.groupErrorRate(c), a.groupLatency(c)]);
  return { trafficShifter: [a.errorRate, a.latency, ...groups], failover: [a.writerUnavailable, a.writerUnreachable], cutover: [a.errorRate, a.latency] };
}

/** The alarm thresholds, in one place (the README quotes them). */
export const THRESHOLDS = {
  replicationLagMs: 1000,
  p99Seconds: 0.2,
  errorRatePercent: 5,
  /** Heartbeats the readers saw in a minute, from one region's probe: ~55 per reader when the writer takes them. */
  writerHeartbeatsSeenPerMinute: 10,
  /** Failed attempts on the writer in one 10-second period, from one region's probe (one a second when it is gone). */
  writerFailuresPer10s: 3,
};

export interface RegionalMonitoringInput {
  region: string;
  provider: aws.Provider;
  opsTopicArn: pulumi.Input<string>;
  albArnSuffix: pulumi.Input<string>;
  targetGroupArnSuffixes: Record<Color, pulumi.Input<string>>;
}

export interface MonitoringArgs {
  suffix: string;
  metricsNamespace: string;
  /** The primary first. */
  regions: RegionalMonitoringInput[];
  createDms: boolean;
  dmsTaskArn?: pulumi.Input<string>;
  /** The reverse task (reverseDms): its failure after the switch loses the way back, so it alarms too. */
  reverseDmsTaskArn?: pulumi.Input<string>;
}

/** What the dashboard needs once every output is known. */
export interface DashboardInput {
  suffix: string;
  metricsNamespace: string;
  primaryRegion: string;
  regions: { region: string; alb: string; targetGroups: Record<Color, string> }[];
  /** The DMS task's resource id (the ARN's last part), when DMS exists. */
  dmsTaskId?: string;
}

type Widget = Record<string, unknown>;

function metricWidget(title: string, region: string, properties: Record<string, unknown>): Widget {
  return { type: "metric", width: 12, height: 6, properties: { title, region, view: "timeSeries", ...properties } };
}

/** The dashboard the operations team watches during the migration. */
export function dashboardBody(d: DashboardInput): string {
  const ns = d.metricsNamespace;
  const secondaries = d.regions.slice(1).map((r) => r.region);
  const widgets: Widget[] = [
    metricWidget("Replication lag (heartbeat, 1 s)", d.primaryRegion, {
      period: 1, stat: "Maximum",
      metrics: secondaries.map((r) => [ns, "ReplicationLagMs", "Region", r, "Source", "heartbeat"]),
      annotations: { horizontal: [{ value: THRESHOLDS.replicationLagMs, label: "1 s" }] },
    }),
    metricWidget("Replication lag (engine)", d.primaryRegion, {
      period: 60, stat: "Maximum",
      metrics: secondaries.map((r) => [ns, "ReplicationLagMs", "Region", r, "Source", "engine"]),
    }),
    metricWidget("Validation results", d.primaryRegion, {
      period: 300, stat: "Sum",
      metrics: [[ns, "RowsCompared"], [ns, "MismatchedRows"], [ns, "ValidationDuration", { stat: "Maximum", yAxis: "right" }]],
    }),
  ];
  for (const r of d.regions) {
    const elb = (metric: string, extra: Record<string, unknown>) => ["AWS/ApplicationELB", metric, "LoadBalancer", r.alb, extra];
    widgets.push(metricWidget(`Application ${r.region}: 5xx and p99 response time`, r.region, {
      period: 60,
      metrics: [
        elb("HTTPCode_Target_5XX_Count", { stat: "Sum" }),
        elb("HTTPCode_ELB_5XX_Count", { stat: "Sum" }),
        elb("TargetResponseTime", { stat: "p99", yAxis: "right" }),
      ],
    }));
    widgets.push(metricWidget(`Application ${r.region}: healthy hosts`, r.region, {
      period: 60, stat: "Minimum",
      metrics: COLORS.map((c) => ["AWS/ApplicationELB", "HealthyHostCount", "TargetGroup", r.targetGroups[c], "LoadBalancer", r.alb, { label: c }]),
    }));
    widgets.push(metricWidget(`ECS ${r.region}: CPU and memory`, r.region, {
      period: 60, stat: "Average",
      metrics: COLORS.flatMap((c) => ["CPUUtilization", "MemoryUtilization"].map((m) =>
        ["AWS/ECS", m, "ClusterName", name("ecs", d.suffix, r.region), "ServiceName", serviceName(c, d.suffix, r.region)])),
    }));
  }
  if (d.dmsTaskId !== undefined) {
    const task = ["ReplicationInstanceIdentifier", name("dms", d.suffix), "ReplicationTaskIdentifier", d.dmsTaskId];
    widgets.push(metricWidget("DMS task: CDC latency and full-load throughput", d.primaryRegion, {
      period: 60, stat: "Average",
      metrics: [
        ["AWS/DMS", "CDCLatencySource", ...task],
        ["AWS/DMS", "CDCLatencyTarget", ...task],
        ["AWS/DMS", "FullLoadThroughputRowsTarget", ...task, { yAxis: "right" }],
      ],
    }));
  }
  return JSON.stringify({ widgets });
}

/**
 * The writer-availability alarm's metric math: the heartbeats this region's lag-probe saw
 * arrive on any reader in a minute. The probe writes one a second to the writer, wherever it
 * is, so the sum falls to zero when the writer stops taking writes, when every reader is
 * unreachable from here, or when the probe itself is dark; then there is no data at all, and
 * missing data is breaching. In every case this region's failover decides by probing the
 * writer itself over its grace period, and refuses to move a writer that answers.
 */
export function heartbeatsSeen(metricsNamespace: string, regions: string[]): aws.types.input.cloudwatch.MetricAlarmMetricQuery[] {
  return [
    ...regions.map((region, i) => ({
      id: `seen${i}`, returnData: false,
      metric: { namespace: metricsNamespace, metricName: "ReplicationLagMs", dimensions: { Region: region, Source: "heartbeat" }, period: 60, stat: "SampleCount" },
    })),
    { id: "seen", expression: regions.map((_, i) => `FILL(seen${i}, 0)`).join(" + "), label: "heartbeats seen on the readers", returnData: true },
  ];
}

/**
 * Alarms (each notifying its own region's ops topic), the DMS task-failure rule and the
 * dashboard. Per region: the 5xx rate (target and ELB 5xx over requests), p99 response
 * time, unhealthy hosts per color; the writer unavailable as this region's lag-probe sees it
 * (the failover trigger; missing data breaching) and the replication lag to every region at
 * high resolution (the writer's own region has no lag samples, so only the non-writers ever
 * alarm, wherever the writer is). In the primary: validation mismatches.
 */
export class Monitoring extends pulumi.ComponentResource {
  readonly alarmCount: number;

  constructor(id: string, args: MonitoringArgs, opts?: pulumi.ComponentResourceOptions) {
    super("cutover:monitoring:Monitoring", id, {}, opts);
    const names = alarmNames(args.suffix);
    const primary = args.regions[0];
    let count = 0;
    // The same alarm name exists in every region, so the resource name carries the region.
    const regional = (alarmName: string, region: string) => alarmName.replace(new RegExp(`-${args.suffix}$`), `-${region}-${args.suffix}`);
    const alarm = (r: RegionalMonitoringInput, alarmName: string, id: string, spec: Partial<aws.cloudwatch.MetricAlarmArgs>) => {
      count++;
      return new aws.cloudwatch.MetricAlarm(id, {
        name: alarmName,
        alarmActions: [r.opsTopicArn],
        okActions: [r.opsTopicArn],
        comparisonOperator: "GreaterThanThreshold",
        evaluationPeriods: 1,
        treatMissingData: "notBreaching",
        ...spec,
      }, { parent: this, provider: r.provider });
    };

    for (const r of args.regions) {
      const lb = { LoadBalancer: r.albArnSuffix };
      const elb = (id: string, metricName: string) => ({
        id, returnData: false,
        metric: { namespace: "AWS/ApplicationELB", metricName, dimensions: lb, period: 60, stat: "Sum" },
      });
      alarm(r, names.errorRate, regional(names.errorRate, r.region), {
        alarmDescription: "5xx responses (target and load balancer) as a percentage of requests; the traffic-shifter rolls back on it",
        metricQueries: [
          elb("target5xx", "HTTPCode_Target_5XX_Count"),
          elb("elb5xx", "HTTPCode_ELB_5XX_Count"),
          elb("requests", "RequestCount"),
          { id: "rate", expression: "100 * (FILL(target5xx, 0) + FILL(elb5xx, 0)) / requests", label: "5xx %", returnData: true },
        ],
        threshold: THRESHOLDS.errorRatePercent,
        evaluationPeriods: 2,
        datapointsToAlarm: 2,
      });
      alarm(r, names.latency, regional(names.latency, r.region), {
        alarmDescription: "p99 TargetResponseTime over 200 ms; the traffic-shifter rolls back on it",
        namespace: "AWS/ApplicationELB", metricName: "TargetResponseTime", dimensions: lb,
        extendedStatistic: "p99", period: 60, threshold: THRESHOLDS.p99Seconds,
      });
      for (const color of COLORS) {
        const group = { LoadBalancer: r.albArnSuffix, TargetGroup: r.targetGroupArnSuffixes[color] };
        const inGroup = (id: string, metricName: string) => ({
          id, returnData: false,
          metric: { namespace: "AWS/ApplicationELB", metricName, dimensions: group, period: 60, stat: "Sum" },
        });
        alarm(r, names.groupErrorRate(color), regional(names.groupErrorRate(color), r.region), {
          alarmDescription: `${color}'s own 5xx responses as a percentage of its own requests (its target group); the traffic-shifter rolls back on it`,
          metricQueries: [
            inGroup("target5xx", "HTTPCode_Target_5XX_Count"),
            inGroup("requests", "RequestCount"),
            { id: "rate", expression: "100 * FILL(target5xx, 0) / requests", label: `${color} 5xx %`, returnData: true },
          ],
          threshold: THRESHOLDS.errorRatePercent,
          evaluationPeriods: 2,
          datapointsToAlarm: 2,
        });
        alarm(r, names.groupLatency(color), regional(names.groupLatency(color), r.region), {
          alarmDescription: `${color}'s own p99 TargetResponseTime (its target group) over 200 ms; the traffic-shifter rolls back on it`,
          namespace: "AWS/ApplicationELB", metricName: "TargetResponseTime", dimensions: group,
          extendedStatistic: "p99", period: 60, threshold: THRESHOLDS.p99Seconds,
        });
        alarm(r, names.unhealthy(color), regional(names.unhealthy(color), r.region), {
          alarmDescription: `unhealthy ${color} targets`,
          namespace: "AWS/ApplicationELB", metricName: "UnHealthyHostCount",
          dimensions: { LoadBalancer: r.albArnSuffix, TargetGroup: r.targetGroupArnSuffixes[color] },
          statistic: "Maximum", period: 60, threshold: 0, evaluationPeriods: 2,
        });
      }
      alarm(r, names.writerUnavailable, regional(names.writerUnavailable, r.region), {
        alarmDescription: `no heartbeat reached a reader in a minute, as ${r.region}'s lag-probe sees it (or the probe is dark); ${r.region}'s failover acts on it`,
        metricQueries: heartbeatsSeen(args.metricsNamespace, args.regions.map((x) => x.region)),
        threshold: THRESHOLDS.writerHeartbeatsSeenPerMinute,
        comparisonOperator: "LessThanThreshold",
        treatMissingData: "breaching",
      });
      // The fast trigger: the failed attempts are published as they happen (high resolution),
      // so this alarm fires within 10-20 s of an outage; the dark-probe alarm above is the
      // backstop. Either only starts the failover: it decides on the grace period, counted from
      // the first failure this region's probe saw, and on a second region's agreement.
      alarm(r, names.writerUnreachable, regional(names.writerUnreachable, r.region), {
        alarmDescription: `${r.region}'s lag-probe failed to write to the writer (whichever region writes) at least ${THRESHOLDS.writerFailuresPer10s} times in 10 s; ${r.region}'s failover acts on it`,
        namespace: args.metricsNamespace, metricName: "WriterUnreachable",
        dimensions: { Vantage: r.region }, statistic: "Sum",
        period: 10, threshold: THRESHOLDS.writerFailuresPer10s, comparisonOperator: "GreaterThanOrEqualToThreshold",
      });
      for (const x of args.regions) {
        alarm(r, names.replicationLag(x.region), name(`replication-lag-${x.region}-from`, args.suffix, r.region), {
          alarmDescription: `heartbeat replication lag to ${x.region} over 1 s as ${r.region}'s lag-probe measures it (10-second, high-resolution periods); no data while ${x.region} writes`,
          namespace: args.metricsNamespace, metricName: "ReplicationLagMs",
          dimensions: { Region: x.region, Source: "heartbeat" }, statistic: "Maximum",
          period: 10, threshold: THRESHOLDS.replicationLagMs, evaluationPeriods: 3, datapointsToAlarm: 2,
        });
      }
    }
    alarm(primary, names.validationMismatch, names.validationMismatch, {
      alarmDescription: "data-validator found rows that differ between source and target",
      namespace: args.metricsNamespace, metricName: "MismatchedRows",
      statistic: "Sum", period: 300, threshold: 0,
    });
    this.alarmCount = count;

    const o = { parent: this, provider: primary.provider };
    if (args.createDms) {
      const rule = new aws.cloudwatch.EventRule(name("dms-task-failure", args.suffix), {
        description: "the DMS replication task failed",
        eventPattern: pulumi.all([args.dmsTaskArn, args.reverseDmsTaskArn]).apply(([task, reverse]) => JSON.stringify({
          source: ["aws.dms"],
          "detail-type": ["DMS Replication Task State Change"],
          resources: reverse === undefined ? [task] : [task, reverse],
          detail: { eventType: ["REPLICATION_TASK_FAILED"] },
        })),
      }, o);
      new aws.cloudwatch.EventTarget(name("dms-task-failure-target", args.suffix), { rule: rule.name, arn: primary.opsTopicArn }, o);
    }

    new aws.cloudwatch.Dashboard(name("dashboard", args.suffix), {
      dashboardName: name("cutover", args.suffix),
      dashboardBody: pulumi.all([
        pulumi.all(args.regions.map((r) => pulumi.all([r.albArnSuffix, r.targetGroupArnSuffixes.blue, r.targetGroupArnSuffixes.green]))),
        pulumi.output(args.dmsTaskArn),
      ]).apply(([regions, dmsTask]) => dashboardBody({
        suffix: args.suffix,
        metricsNamespace: args.metricsNamespace,
        primaryRegion: primary.region,
        regions: regions.map(([alb, blue, green], i) => ({ region: args.regions[i].region, alb, targetGroups: { blue, green } })),
        dmsTaskId: dmsTask?.slice(dmsTask.lastIndexOf(":") + 1),
      })),
    }, o);
    this.registerOutputs({ alarmCount: this.alarmCount });
  }
}
