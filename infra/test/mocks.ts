// Pulumi mocks that record every resource and fail on any call the code is not meant to make.
import * as pulumi from "@pulumi/pulumi";

import { ConfigSource, name, readSettings } from "../config";
import type { Platform } from "../components/platform";

export interface Recorded {
  type: string;
  name: string;
  // eslint-disable-next-line @typescript-eslint/no-explicit-any
  inputs: any;
  region: string;
}

export const resources: Recorded[] = [];
export const calls: string[] = [];
/** Every resource's options as its component passed them, by resource name. */
export const options = new Map<string, pulumi.CustomResourceOptions>();

/** A transformation that only records the options; handed to the root component in tests. */
export const recordOptions: pulumi.ResourceTransformation = (args) => {
  options.set(args.name, args.opts);
  return undefined;
};

const ALLOWED_CALLS = new Set([
  "aws:index/getAvailabilityZones:getAvailabilityZones",
  "aws:ssm/getParameter:getParameter",
  "aws:index/getCallerIdentity:getCallerIdentity",
]);

function regionOf(provider: string | undefined): string {
  const m = /aws-([a-z]{2}-[a-z]+-\d)-/.exec(provider ?? "");
  return m === null ? "none" : m[1];
}

export function install(stack: string): void {
  pulumi.runtime.setMocks({
    newResource(args: pulumi.runtime.MockResourceArgs): { id: string; state: Record<string, unknown> } {
      const region = args.type === "pulumi:providers:aws" ? String(args.inputs.region) : regionOf(args.provider);
      resources.push({ type: args.type, name: args.name, inputs: args.inputs, region });
      const arn = `arn:aws:mock:${region}:123456789012:${args.type}/${args.name}`;
      const state: Record<string, unknown> = { ...args.inputs, arn, name: args.inputs.name ?? args.name };
      if (args.type === "aws:rds/cluster:Cluster") {
        state.endpoint = `${args.name}.cluster-x.${region}.rds.amazonaws.com`;
        state.readerEndpoint = `${args.name}.cluster-ro-x.${region}.rds.amazonaws.com`;
      }
      if (args.type === "aws:lb/loadBalancer:LoadBalancer") {
        state.arnSuffix = `app/${args.name}/0123`;
        state.dnsName = `${args.name}.${region}.elb.amazonaws.com`;
      }
      if (args.type === "aws:lb/targetGroup:TargetGroup") state.arnSuffix = `targetgroup/${args.name}/4567`;
      if (args.type === "random:index/randomPassword:RandomPassword") state.result = "generated-secret-0123456789";
      if (args.type === "aws:dms/replicationTask:ReplicationTask") {
        state.replicationTaskArn = `arn:aws:dms:${region}:123456789012:task:${args.name.includes("reverse") ? "TASKIDREVERSE" : "TASKID0123"}`;
      }
      if (args.type === "aws:dms/replicationInstance:ReplicationInstance") state.replicationInstanceArn = arn;
      if (args.type === "aws:dms/endpoint:Endpoint") state.endpointArn = arn;
      if (args.type === "aws:dms/certificate:Certificate") state.certificateArn = arn;
      return { id: `${args.name}-id`, state };
    },
    call(args: pulumi.runtime.MockCallArgs): Record<string, unknown> {
      calls.push(args.token);
      if (!ALLOWED_CALLS.has(args.token)) throw new Error(`unexpected call ${args.token}`);
      if (args.token === "aws:ssm/getParameter:getParameter") {
        return { name: args.inputs.name, value: "oracle-secret", type: "SecureString" };
      }
      if (args.token === "aws:index/getCallerIdentity:getCallerIdentity") {
        return { accountId: "123456789012", arn: "arn:aws:iam::123456789012:user/test", userId: "AID" };
      }
      return { names: ["zone-a", "zone-b", "zone-c"], zoneIds: ["z1", "z2", "z3"] };
    },
  }, "cutover", stack, false);
}

/** A ConfigSource over plain values, as `pulumi config set` would give them. */
export function configFrom(values: Record<string, unknown>): ConfigSource {
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

/** The platform for a configuration, with every resource's options recorded. */
export async function build(values: Record<string, unknown>): Promise<Platform> {
  const settings = readSettings(configFrom(values));
  // Loaded only now, after install(): the AWS provider modules see the mocks from the start.
  const { Platform } = await import("../components/platform");
  const platform = new Platform(name("cutover", settings.suffix), settings, { transformations: [recordOptions] });
  await settle();
  return platform;
}

/** Waits until no new resource has been registered for a while. */
export async function settle(): Promise<void> {
  let last = -1;
  let still = 0;
  while (still < 5) {
    await new Promise((r) => setTimeout(r, 20));
    if (resources.length === last) still++;
    else { still = 0; last = resources.length; }
  }
}

export function ofType(type: string, region?: string): Recorded[] {
  return resources.filter((r) => r.type === type && (region === undefined || r.region === region));
}

export function one(type: string, nameIncludes: string): Recorded {
  const found = resources.filter((r) => r.type === type && r.name.includes(nameIncludes));
  if (found.length !== 1) throw new Error(`expected one ${type} named *${nameIncludes}*, found ${found.length}`);
  return found[0];
}

const SECRET_SIG = "4dabf18193072939515e22adb298388d";

/** Whether a recorded input is a Pulumi secret (kept encrypted in the state). */
export function isSecret(v: unknown): boolean {
  return typeof v === "object" && v !== null && SECRET_SIG in v;
}

/** A recorded input's value, secret or not. */
export function plain(v: unknown): unknown {
  return isSecret(v) ? (v as { value: unknown }).value : v;
}

/** The name a resource object was created with. */
export function resourceName(r: pulumi.Resource): string {
  return (r as unknown as { __name: string }).__name;
}
