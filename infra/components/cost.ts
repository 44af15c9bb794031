import { Settings } from "../config";

// The monthly cost of the stack from its configuration: a pure function over one price
// table, so that a test can hold the default configuration under the budget.

/**
 * us-east-1 on-demand list prices in USD, as AWS's public price pages gave them on `date`
 * (other regions differ by a few per cent). Not re-fetched from this machine, which has no
 * access to the AWS price list: check them before quoting the table.
 */
export const PRICES = {
  date: "2025-06-01",
  hoursPerMonth: 730,
  natGatewayHour: 0.045,
  natGatewayGb: 0.045,
  auroraServerlessV2AcuHour: 0.12,
  auroraStorageGbMonth: 0.1,
  auroraIoPerMillion: 0.2,
  auroraGlobalReplicatedWritePerMillion: 0.2,
  albHour: 0.0225,
  albLcuHour: 0.008,
  fargateVcpuHour: 0.04048,
  fargateGbHour: 0.004445,
  kmsKeyMonth: 1.0,
  cloudwatchMetricMonth: 0.3,
  cloudwatchAlarmHighResMonth: 0.3,
  cloudwatchAlarmMonth: 0.1,
  cloudwatchDashboardMonth: 3.0,
  cloudwatchLogsGbIngested: 0.5,
  // on-demand throughput, after the November 2024 price cut
  dynamodbWritePerMillion: 0.625,
  dynamodbReadPerMillion: 0.125,
  lambdaGbSecond: 0.0000133334,
  lambdaRequestPerMillion: 0.2,
  snsPerMillion: 0.5,
  eventbridgePerMillion: 1.0,
  stepFunctionsPerThousandTransitions: 0.025,
  ssmAdvancedParameterMonth: 0,
  dmsT3MediumHour: 0.146,
  vpnConnectionHour: 0.05,
  interRegionTransferGb: 0.02,
};

export interface CostInputs {
  regions: number;
  auroraAverageAcu: number;
  auroraStorageGb: number;
  auroraMillionIoPerMonth: number;
  /** Blue and green tasks together, per region. */
  tasksPerRegion: number;
  taskVcpu: number;
  taskMemoryGb: number;
  albLcuAverage: number;
  natGbPerRegion: number;
  logsGbPerMonth: number;
  createDms: boolean;
  createVpn: boolean;
  /** lag-probe runs every minute for 55 s per region, 128 MB; the others are small. */
  lambdaGbSecondsPerMonth: number;
  lambdaInvocationsPerMonth: number;
  dynamodbMillionWrites: number;
  dynamodbMillionReads: number;
  customMetrics: number;
  /** Metrics watched by standard-resolution alarms (a metric-math alarm counts each metric). */
  alarmMetrics: number;
  highResAlarms: number;
  /** lag-probe's polls of the secondaries over the peering, and the like. */
  interRegionGb: number;
}

/** The defaults' usage, stated so a reader can disagree with a number. */
export function defaultUsage(regions = 3, tasksPerRegion = 4, createDms = false, createVpn = false): CostInputs {
  const minutes = 30 * 24 * 60;
  return {
    regions,
    auroraAverageAcu: 0.5, // Serverless v2 at its floor most of the month
    auroraStorageGb: 20,
    auroraMillionIoPerMonth: 20,
    tasksPerRegion,
    taskVcpu: 0.25,
    taskMemoryGb: 0.5,
    albLcuAverage: 0.2,
    natGbPerRegion: 10,
    logsGbPerMonth: 5,
    createDms,
    createVpn,
    // lag-probe: 55 s x 0.128 GB per minute per region; the rest: a few thousand short runs
    lambdaGbSecondsPerMonth: regions * minutes * 55 * 0.128 + 20000,
    lambdaInvocationsPerMonth: regions * minutes + minutes + 5000,
    // lag-probe's latest sample (one write per region per second, flushed every 10 s) and the shifter's ticks
    dynamodbMillionWrites: (regions * minutes * 6 + minutes) / 1e6,
    dynamodbMillionReads: (minutes * 2) / 1e6,
    // ReplicationLagMs x (heartbeat, engine, replay-age) and RegionUnreachable per region; validation's by table
    customMetrics: regions * 4 + 10,
    // per region: the 5xx rate (3 metrics), p99, unhealthy blue and green; writer unavailable, validation mismatch
    alarmMetrics: regions * 6 + 2,
    highResAlarms: regions - 1,
    // one poll a second to each secondary, ~1 KB each way
    interRegionGb: (regions - 1) * minutes * 60 * 2 * 1024 / 1e9,
  };
}

/** The usage of a configured stack: its regions, tasks, Aurora floor, DMS and VPN. */
export function usageFor(s: Settings): CostInputs {
  return {
    ...defaultUsage(1 + s.secondaryRegions.length, s.desiredCount + s.greenDesiredCount, s.createDms, s.createVpn),
    auroraAverageAcu: s.auroraMinAcu,
  };
}

export interface CostLine {
  item: string;
  monthlyUsd: number;
}

const round = (v: number) => Math.round(v * 100) / 100;

export function monthlyCost(u: CostInputs): CostLine[] {
  const p = PRICES;
  const h = p.hoursPerMonth;
  const lines: CostLine[] = [
    { item: `NAT gateways (${u.regions}, one per region)`, monthlyUsd: u.regions * (h * p.natGatewayHour + u.natGbPerRegion * p.natGatewayGb) },
    { item: `Aurora Serverless v2 (${u.regions} clusters x ${u.auroraAverageAcu} ACU average)`, monthlyUsd: u.regions * u.auroraAverageAcu * h * p.auroraServerlessV2AcuHour },
    {
      item: "Aurora storage, I/O and global replicated writes",
      monthlyUsd: u.regions * u.auroraStorageGb * p.auroraStorageGbMonth + u.auroraMillionIoPerMonth * (p.auroraIoPerMillion + (u.regions - 1) * p.auroraGlobalReplicatedWritePerMillion),
    },
    { item: `ALBs (${u.regions})`, monthlyUsd: u.regions * h * (p.albHour + u.albLcuAverage * p.albLcuHour) },
    {
      item: `Fargate (${u.regions * u.tasksPerRegion} tasks, blue and green, ${u.taskVcpu} vCPU / ${u.taskMemoryGb} GB)`,
      monthlyUsd: u.regions * u.tasksPerRegion * h * (u.taskVcpu * p.fargateVcpuHour + u.taskMemoryGb * p.fargateGbHour),
    },
    // per region: Aurora's key and the SNS key; one for the SSM SecureStrings
    { item: `KMS keys (${2 * u.regions + 1})`, monthlyUsd: (2 * u.regions + 1) * p.kmsKeyMonth },
    {
      item: "CloudWatch (metrics, alarms, dashboard, logs)",
      monthlyUsd: u.customMetrics * p.cloudwatchMetricMonth + u.alarmMetrics * p.cloudwatchAlarmMonth
        + u.highResAlarms * p.cloudwatchAlarmHighResMonth + p.cloudwatchDashboardMonth + u.logsGbPerMonth * p.cloudwatchLogsGbIngested,
    },
    { item: "DynamoDB on demand", monthlyUsd: u.dynamodbMillionWrites * p.dynamodbWritePerMillion + u.dynamodbMillionReads * p.dynamodbReadPerMillion },
    {
      item: "Lambda (4 functions)",
      monthlyUsd: u.lambdaGbSecondsPerMonth * p.lambdaGbSecond + (u.lambdaInvocationsPerMonth / 1e6) * p.lambdaRequestPerMillion,
    },
  ];
  lines.push({ item: "Inter-region data transfer (peering)", monthlyUsd: u.interRegionGb * p.interRegionTransferGb });
  if (u.createDms) lines.push({ item: "DMS replication instance (dms.t3.medium)", monthlyUsd: h * p.dmsT3MediumHour });
  if (u.createVpn) lines.push({ item: "Site-to-site VPN connection", monthlyUsd: h * p.vpnConnectionHour });
  return lines.map((l) => ({ ...l, monthlyUsd: round(l.monthlyUsd) }));
}

export function total(lines: CostLine[]): number {
  return round(lines.reduce((sum, l) => sum + l.monthlyUsd, 0));
}

/** The table for the README. */
export function costTable(lines: CostLine[]): string {
  const rows = lines.map((l) => `| ${l.item} | ${l.monthlyUsd.toFixed(2)} |`);
  return ["| item | USD / month |", "|---|---:|", ...rows, `| **total** | **${total(lines).toFixed(2)}** |`].join("\n");
}
