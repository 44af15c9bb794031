// The stack's settings: read from Pulumi config, validated, with defaults.
// `environmentSuffix` is the only required key; every name is `<resource-type>-<suffix>`.

export interface Settings {
  suffix: string;
  primaryRegion: string;
  secondaryRegions: string[];
  vpcCidrs: Record<string, string>;
  auroraEngineVersion: string;
  auroraMinAcu: number;
  auroraMaxAcu: number;
  databaseName: string;
  masterUsername: string;
  containerImage: string;
  containerPort: number;
  desiredCount: number;
  maxCount: number;
  createDms: boolean;
  createVpn: boolean;
  oracleEndpoint: string;
  oraclePort: number;
  oracleServiceName: string;
  customerGatewayIp: string;
  onPremCidr: string;
  caBundlePem: string;
  alertEmail?: string;
  validationSchedule: string;
  validationSchemas: string;
  oracleInstantClientLayerArn?: string;
  lambdaZipDir: string;
}

/** What index.ts hands in: pulumi.Config's getters, so this file stays pure and testable. */
export interface ConfigSource {
  require(key: string): string;
  get(key: string): string | undefined;
  getNumber(key: string): number | undefined;
  getBoolean(key: string): boolean | undefined;
  getObject<T>(key: string): T | undefined;
}

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
  const vpcCidrs = { ...DEFAULT_CIDRS, ...(c.getObject<Record<string, string>>("vpcCidrs") ?? {}) };
  for (const r of regions) {
    const cidr = vpcCidrs[r];
    if (cidr === undefined || !CIDR16.test(cidr)) fail("vpcCidrs", vpcCidrs, `a /16 (x.y.0.0/16) for ${r}`);
  }
  const auroraMinAcu = c.getNumber("auroraMinAcu") ?? 0.5;
  const auroraMaxAcu = c.getNumber("auroraMaxAcu") ?? 4;
  if (auroraMinAcu < 0.5 || auroraMaxAcu > 128 || auroraMinAcu > auroraMaxAcu) {
    fail("auroraMinAcu/auroraMaxAcu", [auroraMinAcu, auroraMaxAcu], "0.5 <= min <= max <= 128");
  }
  const desiredCount = c.getNumber("desiredCount") ?? 2;
  const maxCount = c.getNumber("maxCount") ?? 6;
  if (!Number.isInteger(desiredCount) || desiredCount < 1 || maxCount < desiredCount) {
    fail("desiredCount/maxCount", [desiredCount, maxCount], "1 <= desiredCount <= maxCount, whole numbers");
  }
  return {
    suffix,
    primaryRegion,
    secondaryRegions,
    vpcCidrs,
    auroraEngineVersion: c.get("auroraEngineVersion") ?? "15.4",
    auroraMinAcu,
    auroraMaxAcu,
    databaseName: c.get("databaseName") ?? "app",
    masterUsername: c.get("masterUsername") ?? "cutover_admin",
    containerImage: c.get("containerImage") ?? "public.ecr.aws/nginx/nginx:stable",
    containerPort: c.getNumber("containerPort") ?? 80,
    desiredCount,
    maxCount,
    createDms: c.getBoolean("createDms") ?? false,
    createVpn: c.getBoolean("createVpn") ?? false,
    oracleEndpoint: c.get("oracleEndpoint") ?? "onprem-oracle.example.com",
    oraclePort: c.getNumber("oraclePort") ?? 1521,
    oracleServiceName: c.get("oracleServiceName") ?? "ORCL",
    customerGatewayIp: c.get("customerGatewayIp") ?? "203.0.113.1",
    onPremCidr: c.get("onPremCidr") ?? "192.168.0.0/16",
    caBundlePem: c.get("caBundlePem") ?? "REPLACE-WITH-THE-RDS-GLOBAL-CA-BUNDLE",
    alertEmail: c.get("alertEmail"),
    validationSchedule: c.get("validationSchedule") ?? "rate(1 day)",
    validationSchemas: c.get("validationSchemas") ?? "public",
    oracleInstantClientLayerArn: c.get("oracleInstantClientLayerArn"),
    lambdaZipDir: c.get("lambdaZipDir") ?? "../target/lambda",
  };
}

/** `<resource-type>-<suffix>`, with the region where one exists per region. */
export function name(type: string, suffix: string, region?: string): string {
  return region === undefined ? `${type}-${suffix}` : `${type}-${region}-${suffix}`;
}

/** The /24 subnets of a region's /16: public 0 and 1, private 10 and 11. */
export function subnetCidrs(vpcCidr: string): { public: string[]; private: string[] } {
  const m = CIDR16.exec(vpcCidr);
  if (m === null) fail("vpcCidr", vpcCidr, "x.y.0.0/16");
  const base = `${m[1]}.${m[2]}`;
  return {
    public: [`${base}.0.0/24`, `${base}.1.0/24`],
    private: [`${base}.10.0/24`, `${base}.11.0/24`],
  };
}
