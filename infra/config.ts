// The stack's settings: read from Pulumi config, validated, with defaults.
// `environmentSuffix` is the only required key; every name is `<resource-type>-<suffix>`.

export interface Settings {
  suffix: string;
  primaryRegion: string;
  secondaryRegions: string[];
  /**
   * Where this stack may put anything (data residency): every region of the stack must be
   * one of them. The global database copies all data to every stack region.
   */
  allowedRegions: string[];
  vpcCidrs: Record<string, string>;
  auroraEngineVersion: string;
  auroraMinAcu: number;
  auroraMaxAcu: number;
  databaseName: string;
  masterUsername: string;
  containerImage: string;
  containerPort: number;
  desiredCount: number;
  greenDesiredCount: number;
  maxCount: number;
  /** The tasks' CPU architecture (Fargate ARM64 costs about 20 % less; the image must have an arm64 variant). */
  taskArchitecture: "ARM64" | "X86_64";
  /** ECS Container Insights on the clusters (priced as custom metrics and logs); off by default. */
  containerInsights: boolean;
  createDms: boolean;
  createVpn: boolean;
  /** Create the account-wide `dms-vpc-role` DMS needs (default: with createDms). */
  createDmsVpcRole: boolean;
  /** With createDms: a second, CDC-only task from Aurora back to Oracle (the fallback after the switch), created stopped. */
  reverseDms: boolean;
  /** failover's reserved concurrency; unset by default (an account's quota may be 10). */
  failoverReservedConcurrency?: number;
  oracleEndpoint: string;
  oraclePort: number;
  oracleServiceName: string;
  customerGatewayIp: string;
  /** An ACM certificate per region for the ALBs' HTTPS listeners; none = HTTP only. */
  certificateArns: Record<string, string>;
  /** DMS to Oracle: `verify-ca` (TCPS, the listener's CA from oracleCaWalletFile) or `none`. */
  oracleSslMode: "verify-ca" | "none";
  /**
   * An auto-login Oracle wallet (`cwallet.sso`) holding the CA that signed the Oracle listener's
   * TCPS certificate: DMS takes an Oracle endpoint's certificate as a wallet, not a PEM.
   */
  oracleCaWalletFile?: string;
  onPremCidr: string;
  /** The PEM bundle the functions verify Aurora with, shipped to them in a layer. */
  caBundleFile: string;
  alertEmail?: string;
  validationSchedule: string;
  validationTables: string;
  validationSchemas: string;
  oracleInstantClientLayerArn?: string;
  lambdaZipDir: string;
  /**
   * traffic-shifter's lifecycle hooks (the ECS hook contract): a Lambda function ARN per
   * phase; none by default. The shifter may invoke exactly these.
   */
  releaseHooks: ReleaseHooks;
  /** Passed to every hook as `hookDetails` (e.g. release-hook's `{"url": …}`); none by default. */
  releaseHookDetails?: Record<string, unknown>;
}

/** A release's approval points: before the first traffic step, after 100 %, before an operator's promote. */
export interface ReleaseHooks {
  preTraffic?: string;
  postTraffic?: string;
  prePromote?: string;
}

export const RELEASE_HOOK_PHASES = ["preTraffic", "postTraffic", "prePromote"] as const;

/** What index.ts hands in: pulumi.Config's getters, so this file stays pure and testable. */
export interface ConfigSource {
  require(key: string): string;
  get(key: string): string | undefined;
  getNumber(key: string): number | undefined;
  getBoolean(key: string): boolean | undefined;
  getObject<T>(key: string): T | undefined;
}

/** The data-residency boundary unless configured: the three regions of the platform. */
export const DEFAULT_ALLOWED_REGIONS = ["us-east-1", "eu-west-1", "ap-southeast-1"];

export const DEFAULT_CIDRS: Record<string, string> = {
  "us-east-1": "10.10.0.0/16",
  "eu-west-1": "10.20.0.0/16",
  "ap-southeast-1": "10.30.0.0/16",
};

const REGION = /^[a-z]{2}(-gov)?-[a-z]+-\d$/;
const CIDR16 = /^(\d{1,3})\.(\d{1,3})\.0\.0\/16$/;

function fail(key: string, value: unknown, expected: string): never {
  throw new Error(`config ${key} = ${JSON.stringify(value)}: expected ${expected}`);
}

export function readSettings(c: ConfigSource): Settings {
  const suffix = c.require("environmentSuffix");
  if (!/^[a-z0-9][a-z0-9-]{0,15}$/.test(suffix)) {
    fail("environmentSuffix", suffix, "1-16 lower-case letters, digits or '-'");
  }
  const primaryRegion = c.get("primaryRegion") ?? "us-east-1";
  const secondaryRegions = c.getObject<string[]>("secondaryRegions") ?? ["eu-west-1", "ap-southeast-1"];
  const regions = [primaryRegion, ...secondaryRegions];
  for (const r of regions) {
    if (!REGION.test(r)) fail("primaryRegion/secondaryRegions", r, "AWS region names such as eu-west-1");
  }
  if (new Set(regions).size !== regions.length) fail("secondaryRegions", secondaryRegions, "regions other than the primary, each once");
  const allowedRegions = c.getObject<string[]>("allowedRegions") ?? DEFAULT_ALLOWED_REGIONS;
  for (const r of regions) {
    if (!allowedRegions.includes(r)) fail("primaryRegion/secondaryRegions", r, `regions of allowedRegions (${allowedRegions.join(", ")}): data may not leave them`);
  }
  const vpcCidrs = { ...DEFAULT_CIDRS, ...(c.getObject<Record<string, string>>("vpcCidrs") ?? {}) };
  for (const r of regions) {
    const cidr = vpcCidrs[r];
    if (cidr === undefined || !CIDR16.test(cidr)) fail("vpcCidrs", vpcCidrs, `a /16 (x.y.0.0/16) for ${r}`);
  }
  // The VPCs are peered (lag-probe reaches every region's database): their ranges must not overlap.
  const used = regions.map((r) => vpcCidrs[r]);
  if (new Set(used).size !== used.length) fail("vpcCidrs", vpcCidrs, "a different /16 for every region (the VPCs are peered)");
  const auroraMinAcu = c.getNumber("auroraMinAcu") ?? 0.5;
  const auroraMaxAcu = c.getNumber("auroraMaxAcu") ?? 4;
  if (auroraMinAcu < 0.5 || auroraMaxAcu > 128 || auroraMinAcu > auroraMaxAcu) {
    fail("auroraMinAcu/auroraMaxAcu", [auroraMinAcu, auroraMaxAcu], "0.5 <= min <= max <= 128");
  }
  const taskArchitecture = c.get("taskArchitecture") ?? "ARM64";
  if (taskArchitecture !== "ARM64" && taskArchitecture !== "X86_64") fail("taskArchitecture", taskArchitecture, "ARM64 or X86_64");
  const certificateArns = c.getObject<Record<string, string>>("certificateArns") ?? {};
  if (Object.keys(certificateArns).length > 0) {
    for (const r of regions) {
      if (!new RegExp(`^arn:aws[a-z-]*:acm:${r}:\\d{12}:certificate/\\S+$`).test(certificateArns[r] ?? "")) {
        fail("certificateArns", certificateArns, `an ACM certificate ARN of ${r} for every region (certificates are regional), or none`);
      }
    }
  }
  const oracleSslMode = c.get("oracleSslMode") ?? "verify-ca";
  if (oracleSslMode !== "verify-ca" && oracleSslMode !== "none") fail("oracleSslMode", oracleSslMode, "verify-ca or none");
  const oracleCaWalletFile = c.get("oracleCaWalletFile");
  const failoverReservedConcurrency = c.getNumber("failoverReservedConcurrency");
  if (failoverReservedConcurrency !== undefined && (!Number.isInteger(failoverReservedConcurrency) || failoverReservedConcurrency < 1)) {
    fail("failoverReservedConcurrency", failoverReservedConcurrency, "a whole number >= 1, or unset");
  }
  const createDms = c.getBoolean("createDms") ?? false;
  if (createDms && oracleSslMode === "verify-ca" && oracleCaWalletFile === undefined) {
    fail("oracleCaWalletFile", oracleCaWalletFile, "an Oracle wallet (cwallet.sso) with the CA that signed the Oracle listener's TCPS certificate (or oracleSslMode=none)");
  }
  if (oracleCaWalletFile !== undefined && !oracleCaWalletFile.endsWith(".sso")) {
    fail("oracleCaWalletFile", oracleCaWalletFile, "an auto-login Oracle wallet, a .sso file (orapki wallet create -auto_login; DMS takes no PEM for Oracle)");
  }
  const reverseDms = c.getBoolean("reverseDms") ?? false;
  if (reverseDms && !createDms) fail("reverseDms", reverseDms, "false unless createDms (the reverse task runs on the DMS replication instance)");
  const desiredCount = c.getNumber("desiredCount") ?? 2;
  const greenDesiredCount = c.getNumber("greenDesiredCount") ?? desiredCount;
  const maxCount = c.getNumber("maxCount") ?? 6;
  for (const count of [desiredCount, greenDesiredCount]) {
    if (!Number.isInteger(count) || count < 1 || maxCount < count) {
      fail("desiredCount/greenDesiredCount/maxCount", [desiredCount, greenDesiredCount, maxCount], "1 <= desiredCount, greenDesiredCount <= maxCount, whole numbers");
    }
  }
  const releaseHooks = c.getObject<Record<string, string>>("releaseHooks") ?? {};
  for (const [phase, arn] of Object.entries(releaseHooks)) {
    if (!(RELEASE_HOOK_PHASES as readonly string[]).includes(phase)) fail("releaseHooks", releaseHooks, `phases among ${RELEASE_HOOK_PHASES.join(", ")}`);
    const m = /^arn:aws[a-z-]*:lambda:([a-z0-9-]+):\d{12}:function:[A-Za-z0-9_-]{1,64}(:[A-Za-z0-9$_-]{1,128})?$/.exec(String(arn));
    if (m === null || !allowedRegions.includes(m[1])) {
      fail("releaseHooks", releaseHooks, `a Lambda function ARN per phase, in a region of allowedRegions (${allowedRegions.join(", ")})`);
    }
  }
  const releaseHookDetails = c.getObject<Record<string, unknown>>("releaseHookDetails");
  if (releaseHookDetails !== undefined && (typeof releaseHookDetails !== "object" || releaseHookDetails === null || Array.isArray(releaseHookDetails))) {
    fail("releaseHookDetails", releaseHookDetails, "a JSON object, passed to every hook as hookDetails");
  }
  return {
    releaseHooks: releaseHooks as ReleaseHooks,
    releaseHookDetails,
    suffix,
    primaryRegion,
    secondaryRegions,
    allowedRegions,
    vpcCidrs,
    auroraEngineVersion: c.get("auroraEngineVersion") ?? "15.10",
    auroraMinAcu,
    auroraMaxAcu,
    databaseName: c.get("databaseName") ?? "app",
    masterUsername: c.get("masterUsername") ?? "cutover_admin",
    containerImage: c.get("containerImage") ?? "public.ecr.aws/nginx/nginx:stable",
    containerPort: c.getNumber("containerPort") ?? 80,
    desiredCount,
    greenDesiredCount,
    maxCount,
    taskArchitecture,
    containerInsights: c.getBoolean("containerInsights") ?? false,
    createDms,
    createVpn: c.getBoolean("createVpn") ?? false,
    createDmsVpcRole: c.getBoolean("createDmsVpcRole") ?? createDms,
    reverseDms,
    failoverReservedConcurrency,
    oracleEndpoint: c.get("oracleEndpoint") ?? "onprem-oracle.example.com",
    // TCPS listeners usually serve 2484, plain TCP 1521; the functions always speak TCPS (shared/src/db.rs).
    oraclePort: c.getNumber("oraclePort") ?? (oracleSslMode === "none" ? 1521 : 2484),
    oracleServiceName: c.get("oracleServiceName") ?? "ORCL",
    customerGatewayIp: c.get("customerGatewayIp") ?? "203.0.113.1",
    certificateArns,
    oracleSslMode,
    oracleCaWalletFile,
    onPremCidr: c.get("onPremCidr") ?? "192.168.0.0/16",
    caBundleFile: c.get("caBundleFile") ?? "rds-global-bundle.pem",
    alertEmail: c.get("alertEmail"),
    validationSchedule: c.get("validationSchedule") ?? "rate(1 day)",
    validationTables: c.get("validationTables") ?? "",
    validationSchemas: c.get("validationSchemas") ?? "public",
    oracleInstantClientLayerArn: c.get("oracleInstantClientLayerArn"),
    lambdaZipDir: c.get("lambdaZipDir") ?? "../target/lambda",
  };
}

/** `<resource-type>-<suffix>`, with the region where one exists per region. */
export function name(type: string, suffix: string, region?: string): string {
  return region === undefined ? `${type}-${suffix}` : `${type}-${region}-${suffix}`;
}

export interface SubnetCidrs {
  /** The ALB and the NAT gateway. */
  public: string[];
  /** ECS tasks, Aurora, DMS. */
  private: string[];
  /** The Lambdas only: the one range other regions' databases admit over the peering. */
  functions: string[];
}

/**
 * A region's short code (us-east-1 -> use1, ap-southeast-1 -> apse1) for the names AWS caps
 * at 32 characters (load balancers, target groups).
 */
export function shortRegion(region: string): string {
  const [area, ...rest] = region.split("-");
  const words = rest.map((w) => w.replace(/north/g, "n").replace(/south/g, "s").replace(/east/g, "e").replace(/west/g, "w").replace(/central/g, "c"));
  return [area, ...words].join("");
}

/** The /24 subnets of a region's /16: public .0 and .1, private .10 and .11, functions .20 and .21. */
export function subnetCidrs(vpcCidr: string): SubnetCidrs {
  const m = CIDR16.exec(vpcCidr);
  if (m === null) fail("vpcCidr", vpcCidr, "x.y.0.0/16");
  const base = `${m[1]}.${m[2]}`;
  return {
    public: [`${base}.0.0/24`, `${base}.1.0/24`],
    private: [`${base}.10.0/24`, `${base}.11.0/24`],
    functions: [`${base}.20.0/24`, `${base}.21.0/24`],
  };
}
