import { Settings } from "../config";
import { EVERY_REGION, FUNCTIONS, MEMORY_MB } from "./functions";

// The monthly cost of the stack from its configuration: a pure function over one price table
// per region, so that a test can hold the default configuration under the budget, and a
// test over the declared resources can fail when a resource type is added without a price.

/** One region's on-demand list prices, in USD. */
export interface RegionPrices {
  natGatewayHour: number;
  natGatewayGb: number;
  /** Every public IPv4 address, in use or not (since February 2024). */
  publicIpv4Hour: number;
  auroraServerlessV2AcuHour: number;
  auroraStorageGbMonth: number;
  auroraIoPerMillion: number;
  auroraReplicatedWritePerMillion: number;
  albHour: number;
  albLcuHour: number;
  fargateVcpuHour: Record<"ARM64" | "X86_64", number>;
  fargateGbHour: Record<"ARM64" | "X86_64", number>;
  kmsKeyMonth: number;
  kmsPer10kRequests: number;
  cloudwatchMetricMonth: number;
  cloudwatchAlarmMonth: number;
  cloudwatchAlarmHighResMonth: number;
  cloudwatchDashboardMonth: number;
  cloudwatchLogsGbIngested: number;
  cloudwatchPer1000Requests: number;
  dynamodbWritePerMillion: number;
  /**
   * A global table's replicated write, per million, in the replica's region. On demand it has
   * listed at the region's write price since AWS's November 2024 cut; kept separate so a
   * different price can be entered.
   */
  dynamodbReplicatedWritePerMillion: number;
  dynamodbReadPerMillion: number;
  /** arm64 */
  lambdaGbSecond: number;
  lambdaRequestPerMillion: number;
  /** Single-AZ, as the stack creates it. */
  dmsT3MediumHour: number;
  vpnConnectionHour: number;
  /** Out of this region to another region. */
  interRegionTransferGb: number;
}

/**
 * On-demand list prices as AWS's public price pages gave them around `date`, per region.
 * **Not fetched from this machine** (it reaches no AWS price list): they are the values the
 * model was written with; check them before quoting a total. A region without an entry
 * cannot be priced and `monthlyCost` says so.
 */
export const PRICES = {
  date: "2025-06-01",
  hoursPerMonth: 730,
  regions: {
    "us-east-1": {
      natGatewayHour: 0.045, natGatewayGb: 0.045, publicIpv4Hour: 0.005,
      auroraServerlessV2AcuHour: 0.12, auroraStorageGbMonth: 0.1, auroraIoPerMillion: 0.2, auroraReplicatedWritePerMillion: 0.2,
      albHour: 0.0225, albLcuHour: 0.008,
      fargateVcpuHour: { ARM64: 0.03238, X86_64: 0.04048 }, fargateGbHour: { ARM64: 0.00356, X86_64: 0.004445 },
      kmsKeyMonth: 1.0, kmsPer10kRequests: 0.03,
      cloudwatchMetricMonth: 0.3, cloudwatchAlarmMonth: 0.1, cloudwatchAlarmHighResMonth: 0.3, cloudwatchDashboardMonth: 3.0,
      cloudwatchLogsGbIngested: 0.5, cloudwatchPer1000Requests: 0.01,
      dynamodbWritePerMillion: 0.625, dynamodbReplicatedWritePerMillion: 0.625, dynamodbReadPerMillion: 0.125,
      lambdaGbSecond: 0.0000133334, lambdaRequestPerMillion: 0.2,
      dmsT3MediumHour: 0.073, vpnConnectionHour: 0.05, interRegionTransferGb: 0.02,
    },
    "eu-west-1": {
      natGatewayHour: 0.048, natGatewayGb: 0.048, publicIpv4Hour: 0.005,
      auroraServerlessV2AcuHour: 0.13, auroraStorageGbMonth: 0.11, auroraIoPerMillion: 0.22, auroraReplicatedWritePerMillion: 0.22,
      albHour: 0.0252, albLcuHour: 0.008,
      fargateVcpuHour: { ARM64: 0.03238, X86_64: 0.04048 }, fargateGbHour: { ARM64: 0.00356, X86_64: 0.004445 },
      kmsKeyMonth: 1.0, kmsPer10kRequests: 0.03,
      cloudwatchMetricMonth: 0.3, cloudwatchAlarmMonth: 0.1, cloudwatchAlarmHighResMonth: 0.3, cloudwatchDashboardMonth: 3.0,
      cloudwatchLogsGbIngested: 0.57, cloudwatchPer1000Requests: 0.01,
      dynamodbWritePerMillion: 0.7069, dynamodbReplicatedWritePerMillion: 0.7069, dynamodbReadPerMillion: 0.1413,
      lambdaGbSecond: 0.0000133334, lambdaRequestPerMillion: 0.2,
      dmsT3MediumHour: 0.08, vpnConnectionHour: 0.05, interRegionTransferGb: 0.02,
    },
    "ap-southeast-1": {
      natGatewayHour: 0.059, natGatewayGb: 0.059, publicIpv4Hour: 0.005,
      auroraServerlessV2AcuHour: 0.16, auroraStorageGbMonth: 0.12, auroraIoPerMillion: 0.24, auroraReplicatedWritePerMillion: 0.24,
      albHour: 0.0252, albLcuHour: 0.008,
      fargateVcpuHour: { ARM64: 0.04045, X86_64: 0.05056 }, fargateGbHour: { ARM64: 0.00442, X86_64: 0.00553 },
      kmsKeyMonth: 1.0, kmsPer10kRequests: 0.03,
      cloudwatchMetricMonth: 0.3, cloudwatchAlarmMonth: 0.1, cloudwatchAlarmHighResMonth: 0.3, cloudwatchDashboardMonth: 3.0,
      cloudwatchLogsGbIngested: 0.7, cloudwatchPer1000Requests: 0.01,
      dynamodbWritePerMillion: 0.7125, dynamodbReplicatedWritePerMillion: 0.7125, dynamodbReadPerMillion: 0.1425,
      lambdaGbSecond: 0.0000133334, lambdaRequestPerMillion: 0.2,
      dmsT3MediumHour: 0.092, vpnConnectionHour: 0.05, interRegionTransferGb: 0.09,
    },
  } as Record<string, RegionPrices>,
};

/**
 * Every AWS resource type the stack declares, and the cost line that prices it. A type the
 * stack declares that is in neither this table nor FREE_TYPES fails a test: a new resource
 * gets a price, or a reason why it has none.
 */
export const PRICED_TYPES: Readonly<Record<string, string>> = {
  "aws:ec2/natGateway:NatGateway": "NAT gateways",
  "aws:ec2/eip:Eip": "Public IPv4",
  "aws:lb/loadBalancer:LoadBalancer": "ALBs",
  "aws:rds/cluster:Cluster": "Aurora storage",
  "aws:rds/clusterInstance:ClusterInstance": "Aurora Serverless v2",
  "aws:rds/globalCluster:GlobalCluster": "Aurora storage",
  "aws:ecs/service:Service": "Fargate",
  "aws:ecs/cluster:Cluster": "Container Insights",
  "aws:kms/key:Key": "KMS",
  "aws:cloudwatch/metricAlarm:MetricAlarm": "CloudWatch",
  "aws:cloudwatch/dashboard:Dashboard": "CloudWatch",
  "aws:cloudwatch/logGroup:LogGroup": "CloudWatch",
  "aws:dynamodb/table:Table": "DynamoDB",
  "aws:lambda/function:Function": "Lambda",
  "aws:ec2/vpcPeeringConnection:VpcPeeringConnection": "Inter-region data transfer",
  "aws:dms/replicationInstance:ReplicationInstance": "DMS",
  "aws:ec2/vpnConnection:VpnConnection": "Site-to-site VPN",
};

/** Declared types that cost nothing (or pennies, said why). */
export const FREE_TYPES: Readonly<Record<string, string>> = {
  "pulumi:providers:aws": "not an AWS resource",
  "aws:ec2/vpc:Vpc": "free", "aws:ec2/subnet:Subnet": "free", "aws:ec2/internetGateway:InternetGateway": "free",
  "aws:ec2/routeTable:RouteTable": "free", "aws:ec2/route:Route": "free", "aws:ec2/routeTableAssociation:RouteTableAssociation": "free",
  "aws:ec2/vpcEndpoint:VpcEndpoint": "gateway endpoints (S3, DynamoDB) are free",
  "aws:ec2/securityGroup:SecurityGroup": "free", "aws:ec2/securityGroupRule:SecurityGroupRule": "free",
  "aws:ec2/vpcPeeringConnectionAccepter:VpcPeeringConnectionAccepter": "the peering's transfer is priced on the connection",
  "aws:ec2/customerGateway:CustomerGateway": "free", "aws:ec2/vpnGateway:VpnGateway": "free (the connection is priced)",
  "aws:ec2/vpnConnectionRoute:VpnConnectionRoute": "free", "aws:ec2/vpnGatewayRoutePropagation:VpnGatewayRoutePropagation": "free",
  "aws:rds/subnetGroup:SubnetGroup": "free", "aws:rds/clusterParameterGroup:ClusterParameterGroup": "free",
  "aws:ecs/taskDefinition:TaskDefinition": "priced through the services' tasks",
  "aws:lb/targetGroup:TargetGroup": "free", "aws:lb/listener:Listener": "priced with the ALB (LCUs)",
  "aws:appautoscaling/target:Target": "free", "aws:appautoscaling/policy:Policy": "free (its alarms are AWS-managed and free)",
  "aws:iam/role:Role": "free", "aws:iam/rolePolicy:RolePolicy": "free", "aws:iam/rolePolicyAttachment:RolePolicyAttachment": "free",
  "aws:lambda/permission:Permission": "free", "aws:lambda/layerVersion:LayerVersion": "free (layer storage counts against a free 75 GB quota)",
  "aws:cloudwatch/eventRule:EventRule": "schedules and AWS service events are free; forwarded alarm events are pennies",
  "aws:cloudwatch/eventTarget:EventTarget": "free",
  "aws:sns/topic:Topic": "a few hundred notifications a month: pennies",
  "aws:sns/topicPolicy:TopicPolicy": "free", "aws:sns/topicSubscription:TopicSubscription": "the first 1,000 e-mails a month are free",
  "aws:ssm/parameter:Parameter": "Standard tier, standard throughput: free",
  "aws:sfn/stateMachine:StateMachine": "a run per cutover: pennies",
  "aws:dms/replicationSubnetGroup:ReplicationSubnetGroup": "free", "aws:dms/endpoint:Endpoint": "free",
  "aws:dms/replicationTask:ReplicationTask": "priced on the instance", "aws:dms/certificate:Certificate": "free",
  "random:index/randomPassword:RandomPassword": "not an AWS resource",
};

export interface CostInputs {
  /** The primary first: the validator, the shifter, the runbook and the dashboard live there; every region runs a control plane. */
  regions: string[];
  auroraAverageAcu: number;
  auroraStorageGb: number;
  /** The writer's I/O; each secondary pays as many replicated writes. */
  auroraMillionIoPerMonth: number;
  /** Blue and green tasks together, per region. */
  tasksPerRegion: number;
  taskVcpu: number;
  taskMemoryGb: number;
  taskArchitecture: "ARM64" | "X86_64";
  containerInsights: boolean;
  /** Container Insights' metrics per cluster (cluster, and per service) and its performance logs. */
  containerInsightsMetricsPerRegion: number;
  containerInsightsLogsGbPerRegion: number;
  /** The NAT's EIP and the ALB's address in each of its two AZs. */
  publicIpv4PerRegion: number;
  albLcuAverage: number;
  natGbPerRegion: number;
  /** The control plane's logs (lag-probe, failover) in every region; the validator's and shifter's in the primary; the tasks' in every region. */
  controlPlaneLogsGbPerRegion: number;
  primaryFunctionLogsGb: number;
  taskLogsGbPerRegion: number;
  createDms: boolean;
  createVpn: boolean;
  /** lag-probe and failover, in every region. */
  controlPlaneLambda: { gbSeconds: number; invocations: number };
  /** The validator and the shifter, in the primary. */
  primaryLambda: { gbSeconds: number; invocations: number };
  /** Writes made in each region (its probe's samples; the shifter's in the primary), before replication. */
  dynamodbMillionWritesPerRegion: number;
  primaryDynamodbMillionWrites: number;
  dynamodbMillionReads: number;
  /** Each region's probe's metrics; the validator's in the primary. */
  customMetricsPerRegion: number;
  primaryCustomMetrics: number;
  /** Metrics watched by standard-resolution alarms, per region (a metric-math alarm counts each metric). */
  alarmMetricsPerRegion: number;
  /** In the primary: validation mismatch. */
  primaryAlarmMetrics: number;
  /** The replication-lag alarms and the writer-unreachable alarm, per region. */
  highResAlarmsPerRegion: number;
  /** Each region's probe's PutMetricData calls; the shifter's GetMetricStatistics in the primary. */
  cloudwatchRequestsPerRegion: number;
  primaryCloudwatchRequests: number;
  /** SecureString decrypts, topic data keys, and the like, per month: the primary's, and each other region's control plane's. */
  kmsRequestsPerMonth: number;
  kmsRequestsPerSecondary: number;
  /** One region's probe polling one other region over the peering, both directions. */
  interRegionGbPerProbedRegion: number;
}

const MINUTES = 30 * 24 * 60;

/**
 * The cutover function, in the primary: invoked by hand and by the runbook while a migration
 * runs (status, dry-runs, six advances a runbook execution, a rollback), each up to its drain
 * timeout; 100 invocations of 30 s a month is generous, and still about a cent.
 */
export const CUTOVER_USAGE = { invocations: 100, seconds: 30 };

/**
 * Lambda per region: the control plane (lag-probe 55 s of every minute, failover about ten
 * minutes a month plus its sync-endpoints every five minutes, a second each) runs in every region; the shifter's tick every minute and its reconcile
 * every five (a second each), the daily validation and the cutover in the primary.
 */
export function lambdaUsage(memoryMb: Record<string, number> = MEMORY_MB): {
  controlPlane: { gbSeconds: number; invocations: number }; primary: { gbSeconds: number; invocations: number };
} {
  const gb = (fn: string) => memoryMb[fn] / 1024;
  return {
    controlPlane: {
      gbSeconds: MINUTES * 55 * gb("lag-probe") + 10 * 60 * gb("failover") + (MINUTES / 5) * 1 * gb("failover"),
      invocations: MINUTES + 10 + MINUTES / 5,
    },
    primary: {
      gbSeconds: (MINUTES + MINUTES / 5) * 1 * gb("traffic-shifter") + 30 * 300 * gb("data-validator") + CUTOVER_USAGE.invocations * CUTOVER_USAGE.seconds * gb("cutover"),
      invocations: MINUTES + MINUTES / 5 + 30 * 50 + CUTOVER_USAGE.invocations,
    },
  };
}

/**
 * Hours a month the idle colour runs tasks: only during a release (the traffic-shifter scales
 * it up at `start` and to zero after the scale-down bake). Four releases a month of about two
 * hours each (scale-up, canary bake, rollout, the 10-minute bake) is the stated assumption.
 */
export const RELEASE_HOURS_PER_MONTH = 8;

/** Average tasks per region: the live colour's all month, the idle colour's during releases. */
export function tasksPerRegion(liveTasks: number): number {
  return liveTasks * (1 + RELEASE_HOURS_PER_MONTH / PRICES.hoursPerMonth);
}

/** The defaults' usage, stated so a reader can disagree with a number. */
export function defaultUsage(regions = ["us-east-1", "eu-west-1", "ap-southeast-1"], tasks = tasksPerRegion(2)): CostInputs {
  const others = regions.length - 1;
  const lambda = lambdaUsage();
  return {
    regions,
    auroraAverageAcu: 0.5, // Serverless v2 at its floor most of the month
    auroraStorageGb: 20,
    auroraMillionIoPerMonth: 20,
    tasksPerRegion: tasks,
    taskVcpu: 0.25,
    taskMemoryGb: 0.5,
    taskArchitecture: "ARM64",
    containerInsights: false,
    // per cluster ~9 metrics, per service ~11 (two services)
    containerInsightsMetricsPerRegion: 9 + 2 * 11,
    containerInsightsLogsGbPerRegion: 1,
    publicIpv4PerRegion: 3,
    albLcuAverage: 0.2,
    natGbPerRegion: 10,
    controlPlaneLogsGbPerRegion: 2,
    primaryFunctionLogsGb: 1,
    taskLogsGbPerRegion: 1,
    createDms: false,
    createVpn: false,
    controlPlaneLambda: lambda.controlPlane,
    primaryLambda: lambda.primary,
    // each region's probe writes each region's latest sample and its reachability record of the
    // writer every 10 s flush; the shifter's ticks in the primary
    dynamodbMillionWritesPerRegion: ((regions.length + 1) * MINUTES * 6) / 1e6,
    primaryDynamodbMillionWrites: MINUTES / 1e6,
    dynamodbMillionReads: (MINUTES * 2) / 1e6,
    // ReplicationLagMs x (heartbeat, engine, replay-age) per non-writer region and RegionUnreachable per region; validation's ~10
    customMetricsPerRegion: others * 3 + regions.length,
    primaryCustomMetrics: 10,
    // the 5xx rate (3 metrics), p99, unhealthy blue and green; each colour's own 5xx rate (2 metrics) and p99;
    // the writer alarm's heartbeats seen on each region
    alarmMetricsPerRegion: 6 + 2 * 3 + regions.length,
    primaryAlarmMetrics: 1,
    highResAlarmsPerRegion: regions.length + 1,
    // each probe flushes every 10 s (~7 PutMetricData a minute); the shifter's latency gate reads a metric per region a minute
    cloudwatchRequestsPerRegion: MINUTES * 7,
    primaryCloudwatchRequests: MINUTES * regions.length,
    kmsRequestsPerMonth: 50_000,
    // the other regions' lag-probe and failover cold starts (SecureStrings) and notifications
    kmsRequestsPerSecondary: 20_000,
    // one poll a second, ~1 KB each way
    interRegionGbPerProbedRegion: (MINUTES * 60 * 2 * 1024) / 1e9,
  };
}

/** The usage of a configured stack: its regions, tasks, architecture, Aurora floor, DMS and VPN. */
export function usageFor(s: Settings): CostInputs {
  return {
    ...defaultUsage([s.primaryRegion, ...s.secondaryRegions], tasksPerRegion(s.desiredCount)),
    auroraAverageAcu: s.auroraMinAcu,
    taskArchitecture: s.taskArchitecture,
    containerInsights: s.containerInsights,
    createDms: s.createDms,
    createVpn: s.createVpn,
  };
}

export interface CostLine {
  item: string;
  /** USD per month in each region of the stack (0 where the item has nothing). */
  byRegion: Record<string, number>;
  monthlyUsd: number;
}

const round = (v: number) => Math.round(v * 100) / 100;

/** The monthly cost, line by line and region by region. */
export function monthlyCost(u: CostInputs): CostLine[] {
  const h = PRICES.hoursPerMonth;
  const price = (region: string): RegionPrices => {
    const p = PRICES.regions[region];
    if (p === undefined) throw new Error(`no prices for ${region}: add them to PRICES.regions`);
    return p;
  };
  const primary = u.regions[0];
  const line = (item: string, cost: (p: RegionPrices, region: string, isPrimary: boolean) => number): CostLine => {
    const byRegion: Record<string, number> = {};
    for (const r of u.regions) byRegion[r] = round(cost(price(r), r, r === primary));
    return { item, byRegion, monthlyUsd: round(Object.values(byRegion).reduce((a, b) => a + b, 0)) };
  };
  const onlyPrimary = (cost: (p: RegionPrices) => number) => (p: RegionPrices, _r: string, isPrimary: boolean) => (isPrimary ? cost(p) : 0);
  const lines: CostLine[] = [
    line("NAT gateways (one per region, hours and GB)", (p) => h * p.natGatewayHour + u.natGbPerRegion * p.natGatewayGb),
    line(`Public IPv4 addresses (${u.publicIpv4PerRegion} per region: the NAT's, the ALB's two)`, (p) => u.publicIpv4PerRegion * h * p.publicIpv4Hour),
    line(`Aurora Serverless v2 (one cluster per region x ${u.auroraAverageAcu} ACU average)`, (p) => u.auroraAverageAcu * h * p.auroraServerlessV2AcuHour),
    line("Aurora storage, I/O and global replicated writes", (p, _r, isPrimary) => u.auroraStorageGb * p.auroraStorageGbMonth
      + u.auroraMillionIoPerMonth * (isPrimary ? p.auroraIoPerMillion : p.auroraReplicatedWritePerMillion)),
    line("ALBs (hours and LCUs)", (p) => h * (p.albHour + u.albLcuAverage * p.albLcuHour)),
    line(`Fargate (${round(u.tasksPerRegion)} tasks per region on average: the live colour, the idle one during releases, ${u.taskVcpu} vCPU / ${u.taskMemoryGb} GB, ${u.taskArchitecture})`,
      (p) => u.tasksPerRegion * h * (u.taskVcpu * p.fargateVcpuHour[u.taskArchitecture] + u.taskMemoryGb * p.fargateGbHour[u.taskArchitecture])),
    // per region: Aurora's key, the SNS key and the SSM SecureStrings' key, and the requests
    line("KMS (keys and requests)", (p, _r, isPrimary) => 3 * p.kmsKeyMonth
      + ((isPrimary ? u.kmsRequestsPerMonth : u.kmsRequestsPerSecondary) / 1e4) * p.kmsPer10kRequests),
    line("CloudWatch (custom metrics, alarms, dashboard, logs, API requests)", (p, _r, isPrimary) =>
      u.customMetricsPerRegion * p.cloudwatchMetricMonth + u.alarmMetricsPerRegion * p.cloudwatchAlarmMonth
      + u.highResAlarmsPerRegion * p.cloudwatchAlarmHighResMonth
      + (u.taskLogsGbPerRegion + u.controlPlaneLogsGbPerRegion) * p.cloudwatchLogsGbIngested + (u.cloudwatchRequestsPerRegion / 1000) * p.cloudwatchPer1000Requests
      + (isPrimary
        ? u.primaryCustomMetrics * p.cloudwatchMetricMonth + u.primaryAlarmMetrics * p.cloudwatchAlarmMonth + p.cloudwatchDashboardMonth
          + u.primaryFunctionLogsGb * p.cloudwatchLogsGbIngested + (u.primaryCloudwatchRequests / 1000) * p.cloudwatchPer1000Requests
        : 0)),
    line("Container Insights (metrics and performance logs)", (p) => (u.containerInsights
      ? u.containerInsightsMetricsPerRegion * p.cloudwatchMetricMonth + u.containerInsightsLogsGbPerRegion * p.cloudwatchLogsGbIngested
      : 0)),
    // A global table: a region pays for the writes made in it and, as replicated writes, for every other region's.
    line("DynamoDB on demand (global table: local and replicated writes)", (p, _r, isPrimary) => {
      const all = u.regions.length * u.dynamodbMillionWritesPerRegion + u.primaryDynamodbMillionWrites;
      const local = u.dynamodbMillionWritesPerRegion + (isPrimary ? u.primaryDynamodbMillionWrites : 0);
      return local * p.dynamodbWritePerMillion + (all - local) * p.dynamodbReplicatedWritePerMillion
        + (isPrimary ? u.dynamodbMillionReads * p.dynamodbReadPerMillion : 0);
    }),
    line(`Lambda (${EVERY_REGION.join(" and ")} in every region, all ${FUNCTIONS.length} in the primary, at their configured memory, arm64)`, (p, _r, isPrimary) => {
      const gbSeconds = u.controlPlaneLambda.gbSeconds + (isPrimary ? u.primaryLambda.gbSeconds : 0);
      const invocations = u.controlPlaneLambda.invocations + (isPrimary ? u.primaryLambda.invocations : 0);
      return gbSeconds * p.lambdaGbSecond + (invocations / 1e6) * p.lambdaRequestPerMillion;
    }),
    // every region's probe polls every other region: out of each region go its own requests and its answers to the others' polls
    line("Inter-region data transfer (peering)", (p) => (u.regions.length - 1) * u.interRegionGbPerProbedRegion * p.interRegionTransferGb),
  ];
  if (u.createDms) lines.push(line("DMS replication instance (dms.t3.medium, single-AZ)", onlyPrimary((p) => h * p.dmsT3MediumHour)));
  if (u.createVpn) lines.push(line("Site-to-site VPN connection", onlyPrimary((p) => h * p.vpnConnectionHour)));
  return lines;
}

export function total(lines: CostLine[]): number {
  return round(lines.reduce((sum, l) => sum + l.monthlyUsd, 0));
}

/** The table for the README: a column per region, then the month. */
export function costTable(lines: CostLine[]): string {
  const regions = Object.keys(lines[0].byRegion);
  const sum = (r: string) => round(lines.reduce((s, l) => s + l.byRegion[r], 0));
  const rows = lines.map((l) => `| ${l.item} | ${regions.map((r) => l.byRegion[r].toFixed(2)).join(" | ")} | ${l.monthlyUsd.toFixed(2)} |`);
  return [
    `| item | ${regions.join(" | ")} | USD / month |`,
    `|---|${regions.map(() => "---:").join("|")}|---:|`,
    ...rows,
    `| **total** | ${regions.map((r) => `**${sum(r).toFixed(2)}**`).join(" | ")} | **${total(lines).toFixed(2)}** |`,
  ].join("\n");
}
