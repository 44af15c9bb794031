import assert from "node:assert/strict";
import { test } from "node:test";

import { ConfigSource, name, readSettings, subnetCidrs } from "../config";
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
  assert.equal(s.createDms, false);
  assert.equal(s.createVpn, false);
  assert.equal(s.oracleEndpoint, "onprem-oracle.example.com");
  assert.equal(s.customerGatewayIp, "203.0.113.1");
  assert.equal(s.auroraMinAcu, 0.5);
  assert.equal(s.auroraMaxAcu, 4);
  assert.equal(s.desiredCount, 2);
  assert.equal(s.vpcCidrs["eu-west-1"], "10.20.0.0/16");
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
    [{ environmentSuffix: "dev", desiredCount: 4, maxCount: 2 }, /desiredCount <= maxCount/],
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
  });
  assert.throws(() => subnetCidrs("10.20.0.0/24"), /x.y.0.0\/16/);
  assert.equal(parameterFamily("15.4"), "aurora-postgresql15");
});
