// The monthly cost of the stack from its configuration: a pure function over one price
// table, so that a test can hold the default configuration under the budget.

/** us-east-1 on-demand list prices in USD, as published on 2026-11-01 (other regions differ by a few %). */
export const PRICES = {
  date: "2026-11-01",
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
  dynamodbWritePerMillion: 1.25,
  dynamodbReadPerMillion: 0.25,
  lambdaGbSecond: 0.0000133334,
  lambdaRequestPerMillion: 0.2,
  snsPerMillion: 0.5,
  eventbridgePerMillion: 1.0,
  stepFunctionsPerThousandTransitions: 0.025,
  ssmAdvancedParameterMonth: 0,
  dmsT3MediumHour: 0.146,
  vpnConnectionHour: 0.05,
};

export interface CostInputs {
  regions: number;
  auroraAverageAcu: number;
  auroraStorageGb: number;
  auroraMillionIoPerMonth: number;
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
  alarms: number;
  highResAlarms: number;
}

/** The defaults' usage, stated so a reader can disagree with a number. */
export function defaultUsage(regions = 3, tasksPerRegion = 2, createDms = false, createVpn = false): CostInputs {
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
    customMetrics: regions * 4 + 6,
    alarms: regions * 4 + 3,
    highResAlarms: regions,
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
      item: `Fargate (${u.regions * u.tasksPerRegion} tasks, ${u.taskVcpu} vCPU / ${u.taskMemoryGb} GB)`,
      monthlyUsd: u.regions * u.tasksPerRegion * h * (u.taskVcpu * p.fargateVcpuHour + u.taskMemoryGb * p.fargateGbHour),
    },
    { item: `KMS keys (${u.regions + 1})`, monthlyUsd: (u.regions + 1) * p.kmsKeyMonth },
    {
      item: "CloudWatch (metrics, alarms, dashboard, logs)",
      monthlyUsd: u.customMetrics * p.cloudwatchMetricMonth + (u.alarms - u.highResAlarms) * p.cloudwatchAlarmMonth
        + u.highResAlarms * p.cloudwatchAlarmHighResMonth + p.cloudwatchDashboardMonth + u.logsGbPerMonth * p.cloudwatchLogsGbIngested,
    },
    { item: "DynamoDB on demand", monthlyUsd: u.dynamodbMillionWrites * p.dynamodbWritePerMillion + u.dynamodbMillionReads * p.dynamodbReadPerMillion },
    {
      item: "Lambda (4 functions)",
      monthlyUsd: u.lambdaGbSecondsPerMonth * p.lambdaGbSecond + (u.lambdaInvocationsPerMonth / 1e6) * p.lambdaRequestPerMillion,
    },
  ];
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
