import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { test } from "node:test";

import { ConfigSource, name, readSettings, shortRegion, subnetCidrs } from "../config";
import { parameterFamily } from "../components/database";

function source(values: Record<string, unknown>): ConfigSource {
  return {
    require(key: string): string {
      const v = values[key];
      if (v === undefined) throw new Error(`Missing required configuration variable '${key}'`);
      return String(v);
    },
    get: (key: string) => values[key] as string | undefined,
    getNumber: (key: string) => values[key] as number | undefined,
    getBoolean: (key: string) => values[key] as boolean | undefined,
    getObject: <T>(key: string) => values[key] as T | undefined,
  };
}

test("environmentSuffix is the only required key; everything else has a default", () => {
  assert.throws(() => readSettings(source({})), /environmentSuffix/);
  const s = readSettings(source({ environmentSuffix: "dev" }));
  assert.equal(s.primaryRegion, "us-east-1");
  assert.deepEqual(s.secondaryRegions, ["eu-west-1", "ap-southeast-1"]);
  assert.deepEqual(s.allowedRegions, ["us-east-1", "eu-west-1", "ap-southeast-1"], "data residency: the three regions");
  const eu = readSettings(source({ environmentSuffix: "dev", primaryRegion: "eu-west-1", secondaryRegions: ["eu-central-1"], allowedRegions: ["eu-west-1", "eu-central-1"],
    vpcCidrs: { "eu-central-1": "10.40.0.0/16" } }));
  assert.deepEqual([eu.primaryRegion, ...eu.secondaryRegions], ["eu-west-1", "eu-central-1"], "an EU-only stack");
  assert.equal(s.createDms, false);
  assert.equal(s.createVpn, false);
  assert.equal(s.oracleEndpoint, "onprem-oracle.example.com");
  assert.equal(s.oraclePort, 2484, "the TCPS listener's usual port: DMS verify-ca and the functions (shared/src/db.rs) speak TCPS");
  assert.equal(readSettings(source({ environmentSuffix: "dev", oracleSslMode: "none" })).oraclePort, 1521, "plain TCP: the usual listener");
  assert.equal(s.customerGatewayIp, "203.0.113.1");
  assert.equal(s.auroraMinAcu, 0.5);
  assert.equal(s.auroraMaxAcu, 4);
  assert.equal(s.desiredCount, 2);
  assert.equal(s.greenDesiredCount, 2, "green as large as blue unless told");
  assert.deepEqual([s.releaseHooks, s.releaseHookDetails], [{}, undefined], "no lifecycle hooks unless configured");
  assert.equal(s.maxCount, 6);
  assert.equal(s.vpcCidrs["eu-west-1"], "10.20.0.0/16");
  assert.equal(s.validationTables, "", "blank: every table of the schemas");
  assert.equal(s.validationSchemas, "public");
  assert.equal(s.validationSchedule, "rate(1 day)");
  assert.equal(s.lambdaZipDir, "../target/lambda");
  assert.equal(s.alertEmail, undefined);
  assert.equal(s.oracleInstantClientLayerArn, undefined);
  assert.equal(s.failoverReservedConcurrency, undefined, "no reserved concurrency: a new account's quota is 10");
  assert.equal(s.createDmsVpcRole, false, "follows createDms");
  const dms = { environmentSuffix: "dev", createDms: true, oracleCaWalletFile: "cwallet.sso" };
  assert.equal(readSettings(source(dms)).createDmsVpcRole, true);
  assert.equal(readSettings(source({ ...dms, createDmsVpcRole: false })).createDmsVpcRole, false);
  assert.deepEqual([s.oracleSslMode, s.certificateArns], ["verify-ca", {}], "TCPS to Oracle; HTTP until certificates are configured");
});

test("configured values override the defaults", () => {
  const s = readSettings(source({
    environmentSuffix: "prod",
    createDms: true,
    createVpn: true,
    auroraMinAcu: 1,
    auroraMaxAcu: 16,
    desiredCount: 3,
    maxCount: 9,
    vpcCidrs: { "eu-west-1": "10.99.0.0/16" },
    oracleEndpoint: "oracle.corp.example",
    oracleCaWalletFile: "oracle-ca.sso",
  }));
  assert.equal(s.createDms, true);
  assert.equal(s.createVpn, true);
  assert.equal(s.auroraMaxAcu, 16);
  assert.equal(s.vpcCidrs["eu-west-1"], "10.99.0.0/16");
  assert.equal(s.vpcCidrs["us-east-1"], "10.10.0.0/16");
  assert.equal(s.oracleEndpoint, "oracle.corp.example");
});

test("bad values name the key and the expected form", () => {
  const cases: [Record<string, unknown>, RegExp][] = [
    [{ environmentSuffix: "Has Spaces" }, /environmentSuffix.*lower-case/],
    [{ environmentSuffix: "dev", primaryRegion: "mars" }, /region names/],
    [{ environmentSuffix: "dev", secondaryRegions: ["us-east-1"] }, /each once/],
    [{ environmentSuffix: "dev", vpcCidrs: { "us-east-1": "10.0.0.0/8" } }, /vpcCidrs.*us-east-1/],
    [{ environmentSuffix: "dev", auroraMinAcu: 8, auroraMaxAcu: 4 }, /0.5 <= min <= max/],
    [{ environmentSuffix: "dev", auroraMinAcu: 0.1 }, /0.5 <= min/],
    [{ environmentSuffix: "dev", auroraMaxAcu: 256 }, /<= 128/],
    [{ environmentSuffix: "dev", desiredCount: 0 }, /desiredCount/],
    [{ environmentSuffix: "dev", desiredCount: 1.5 }, /whole numbers/],
    [{ environmentSuffix: "dev", desiredCount: 4, maxCount: 2 }, /greenDesiredCount <= maxCount/],
    [{ environmentSuffix: "dev", greenDesiredCount: 0 }, /1 <= desiredCount, greenDesiredCount/],
    [{ environmentSuffix: "dev", vpcCidrs: { "eu-west-1": "10.10.0.0/16" } }, /different \/16 for every region/],
    [{ environmentSuffix: "dev", vpcCidrs: { "us-east-1": undefined } }, /vpcCidrs.*us-east-1/],
    [{ environmentSuffix: "dev", certificateArns: { "us-east-1": "arn:aws:acm:us-east-1:123456789012:certificate/x" } }, /certificateArns.*eu-west-1/],
    [{ environmentSuffix: "dev", certificateArns: { "us-east-1": "arn:aws:acm:eu-west-1:123456789012:certificate/x" } }, /certificateArns.*us-east-1/],
    [{ environmentSuffix: "dev", oracleSslMode: "require" }, /oracleSslMode.*verify-ca or none/],
    [{ environmentSuffix: "dev", createDms: true }, /oracleCaWalletFile.*Oracle wallet/],
    [{ environmentSuffix: "dev", createDms: true, oracleCaWalletFile: "oracle-ca.pem" }, /oracleCaWalletFile.*\.sso/],
    [{ environmentSuffix: "dev", reverseDms: true }, /reverseDms.*unless createDms/],
    [{ environmentSuffix: "dev", secondaryRegions: ["eu-west-1", "us-west-2"] }, /us-west-2.*allowedRegions.*data may not leave/],
    [{ environmentSuffix: "dev", allowedRegions: ["eu-west-1", "eu-central-1"] }, /us-east-1.*allowedRegions/],
    [{ environmentSuffix: "dev", taskArchitecture: "arm" }, /taskArchitecture.*ARM64 or X86_64/],
    [{ environmentSuffix: "dev", failoverReservedConcurrency: 0 }, /failoverReservedConcurrency.*whole number/],
    [{ environmentSuffix: "dev", failoverReservedConcurrency: 1.5 }, /failoverReservedConcurrency/],
    [{ environmentSuffix: "dev", releaseHooks: { beforeTraffic: "arn:aws:lambda:us-east-1:123456789012:function:h" } }, /releaseHooks.*preTraffic, postTraffic, prePromote/],
    [{ environmentSuffix: "dev", releaseHooks: { preTraffic: "release-hook" } }, /releaseHooks.*Lambda function ARN/],
    [{ environmentSuffix: "dev", releaseHooks: { preTraffic: "arn:aws:lambda:us-west-2:123456789012:function:h" } }, /releaseHooks.*allowedRegions/],
    [{ environmentSuffix: "dev", releaseHookDetails: ["url"] }, /releaseHookDetails.*JSON object/],
  ];
  for (const [values, expected] of cases) {
    assert.throws(() => readSettings(source(values)), expected, JSON.stringify(values));
  }
});

test("names, subnets and the parameter family", () => {
  assert.equal(name("vpc", "dev", "eu-west-1"), "vpc-eu-west-1-dev");
  assert.equal(name("migration-state", "dev"), "migration-state-dev");
  assert.deepEqual(subnetCidrs("10.20.0.0/16"), {
    public: ["10.20.0.0/24", "10.20.1.0/24"],
    private: ["10.20.10.0/24", "10.20.11.0/24"],
    functions: ["10.20.20.0/24", "10.20.21.0/24"],
  });
  assert.deepEqual(["us-east-1", "eu-west-1", "ap-southeast-1", "eu-central-1", "ap-northeast-2", "us-gov-west-1"].map(shortRegion),
    ["use1", "euw1", "apse1", "euc1", "apne2", "usgovw1"]);
  assert.throws(() => subnetCidrs("10.20.0.0/24"), /x.y.0.0\/16/);
  assert.equal(parameterFamily("15.4"), "aurora-postgresql15");
});

test("Pulumi.dev.yaml shows every key readSettings reads, and the README documents each", () => {
  const read = new Set<string>();
  const recording: ConfigSource = {
    require: (k) => { read.add(k); return "dev"; },
    get: (k) => { read.add(k); return undefined; },
    getNumber: (k) => { read.add(k); return undefined; },
    getBoolean: (k) => { read.add(k); return undefined; },
    getObject: (k) => { read.add(k); return undefined; },
  };
  readSettings(recording);
  const root = join(__dirname, "..", "..");
  const example = [...readFileSync(join(root, "Pulumi.dev.yaml"), "utf8").matchAll(/^\s*(?:# )?cutover:(\w+):/gm)].map((m) => m[1]);
  assert.deepEqual([...example].sort(), [...read].sort());
  const readme = readFileSync(join(root, "README.md"), "utf8");
  for (const key of read) assert.ok(readme.includes(`\`${key}\``), `README documents ${key}`);
  const s = readSettings(source({ environmentSuffix: "dev" }));
  assert.equal(s.caBundleFile, "rds-global-bundle.pem");
});
