import { Settings } from "../config";
import { FUNCTIONS, MEMORY_MB } from "./functions";

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
      dynamodbWritePerMillion: 0.625, dynamodbReadPerMillion: 0.125,
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
      dynamodbWritePerMillion: 0.7069, dynamodbReadPerMillion: 0.1413,
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
      dynamodbWritePerMillion: 0.7125, dynamodbReadPerMillion: 0.1425,
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
  "aws:ec2/securityGroup:SecurityGroup": "free",
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
  /** The primary first: the functions, table, parameters and metrics live there. */
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
  /** Functions' logs in the primary; the tasks' in every region. */
  functionLogsGbPerMonth: number;
  taskLogsGbPerRegion: number;
  createDms: boolean;
  createVpn: boolean;
  lambdaGbSecondsPerMonth: number;
  lambdaInvocationsPerMonth: number;
  dynamodbMillionWrites: number;
  dynamodbMillionReads: number;
  customMetrics: number;
  /** Metrics watched by standard-resolution alarms, per region (a metric-math alarm counts each metric). */
  alarmMetricsPerRegion: number;
  /** In the primary: validation mismatch, writer unavailable. */
  primaryAlarmMetrics: number;
  highResAlarms: number;
  /** PutMetricData and GetMetricStatistics calls, in the primary. */
  cloudwatchRequestsPerMonth: number;
  /** SecureString decrypts, topic data keys, and the like, per month. */
  kmsRequestsPerMonth: number;
  /** lag-probe's polls of each secondary over the peering, both directions, per secondary. */
  interRegionGbPerSecondary: number;
}

const MINUTES = 30 * 24 * 60;

/** The lag-probe runs every minute for 55 s; the shifter ticks every minute for about a second; the validator runs daily. */
export function lambdaUsage(memoryMb: Record<string, number> = MEMORY_MB): { gbSeconds: number; invocations: number } {
  const gb = (fn: string) => memoryMb[fn] / 1024;
  const gbSeconds = MINUTES * 55 * gb("lag-probe") + MINUTES * 1 * gb("traffic-shifter") + 30 * 300 * gb("data-validator") + 10 * 60 * gb("failover");
  return { gbSeconds, invocations: MINUTES * 2 + 30 * 50 + 10 };
}

/** The defaults' usage, stated so a reader can disagree with a number. */
export function defaultUsage(regions = ["us-east-1", "eu-west-1", "ap-southeast-1"], tasksPerRegion = 4): CostInputs {
  const secondaries = regions.length - 1;
  const lambda = lambdaUsage();
  return {
    regions,
    auroraAverageAcu: 0.5, // Serverless v2 at its floor most of the month
    auroraStorageGb: 20,
    auroraMillionIoPerMonth: 20,
    tasksPerRegion,
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
    functionLogsGbPerMonth: 3,
    taskLogsGbPerRegion: 1,
    createDms: false,
    createVpn: false,
    lambdaGbSecondsPerMonth: lambda.gbSeconds,
    lambdaInvocationsPerMonth: lambda.invocations,
    // lag-probe: each region's latest sample every 10 s flush; the shifter's ticks read and write
    dynamodbMillionWrites: (regions.length * MINUTES * 6 + MINUTES) / 1e6,
    dynamodbMillionReads: (MINUTES * 2) / 1e6,
    // ReplicationLagMs x (heartbeat, engine, replay-age) per secondary and RegionUnreachable per region; validation's ~10
    customMetrics: secondaries * 3 + regions.length + 10,
    // the 5xx rate (3 metrics), p99, unhealthy blue and green
    alarmMetricsPerRegion: 6,
    primaryAlarmMetrics: 2,
    highResAlarms: secondaries,
    // lag-probe flushes every 10 s (~7 PutMetricData a minute); the shifter's latency gate reads a metric per region a minute
    cloudwatchRequestsPerMonth: MINUTES * 7 + MINUTES * regions.length,
    kmsRequestsPerMonth: 50_000,
    // one poll a second to each secondary, ~1 KB each way
    interRegionGbPerSecondary: (MINUTES * 60 * 2 * 1024) / 1e9,
  };
}

/** The usage of a configured stack: its regions, tasks, architecture, Aurora floor, DMS and VPN. */
export function usageFor(s: Settings): CostInputs {
  return {
    ...defaultUsage([s.primaryRegion, ...s.secondaryRegions], s.desiredCount + s.greenDesiredCount),
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
    line(`Fargate (${u.tasksPerRegion} tasks per region, blue and green, ${u.taskVcpu} vCPU / ${u.taskMemoryGb} GB, ${u.taskArchitecture})`,
      (p) => u.tasksPerRegion * h * (u.taskVcpu * p.fargateVcpuHour[u.taskArchitecture] + u.taskMemoryGb * p.fargateGbHour[u.taskArchitecture])),
    // per region: Aurora's key and the SNS key; in the primary also the SSM SecureStrings' key and the requests
    line("KMS (keys and requests)", (p, _r, isPrimary) => (isPrimary ? 3 : 2) * p.kmsKeyMonth + (isPrimary ? (u.kmsRequestsPerMonth / 1e4) * p.kmsPer10kRequests : 0)),
    line("CloudWatch (custom metrics, alarms, dashboard, logs, API requests)", (p, _r, isPrimary) =>
      u.alarmMetricsPerRegion * p.cloudwatchAlarmMonth + u.taskLogsGbPerRegion * p.cloudwatchLogsGbIngested
      + (isPrimary
        ? u.customMetrics * p.cloudwatchMetricMonth + u.primaryAlarmMetrics * p.cloudwatchAlarmMonth + u.highResAlarms * p.cloudwatchAlarmHighResMonth
          + p.cloudwatchDashboardMonth + u.functionLogsGbPerMonth * p.cloudwatchLogsGbIngested + (u.cloudwatchRequestsPerMonth / 1000) * p.cloudwatchPer1000Requests
        : 0)),
    line("Container Insights (metrics and performance logs)", (p) => (u.containerInsights
      ? u.containerInsightsMetricsPerRegion * p.cloudwatchMetricMonth + u.containerInsightsLogsGbPerRegion * p.cloudwatchLogsGbIngested
      : 0)),
    line("DynamoDB on demand", onlyPrimary((p) => u.dynamodbMillionWrites * p.dynamodbWritePerMillion + u.dynamodbMillionReads * p.dynamodbReadPerMillion)),
    line(`Lambda (${FUNCTIONS.length} functions at their configured memory, arm64)`, onlyPrimary((p) =>
      u.lambdaGbSecondsPerMonth * p.lambdaGbSecond + (u.lambdaInvocationsPerMonth / 1e6) * p.lambdaRequestPerMillion)),
    // lag-probe's requests leave the primary, the answers leave each secondary
    line("Inter-region data transfer (peering)", (p, _r, isPrimary) =>
      (isPrimary ? u.regions.length - 1 : 1) * (u.interRegionGbPerSecondary / 2) * p.interRegionTransferGb),
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
