import * as aws from "@pulumi/aws";
import * as pulumi from "@pulumi/pulumi";

import { name } from "../config";

export interface ParametersArgs {
  suffix: string;
  /** The region this copy of the hierarchy lives in, and its provider. */
  region: string;
  provider: aws.Provider;
  primaryRegion: string;
  databaseName: string;
  username: string;
  password: pulumi.Input<string>;
  writerEndpoint: pulumi.Input<string>;
  readerEndpoints: Record<string, pulumi.Input<string>>;
  sourceDsn: pulumi.Input<string>;
  /**
   * The cutover's parameters, in the primary only (where the cutover function runs and owns
   * `writes-to`): one copy, so nothing can diverge between regions.
   */
  cutover?: CutoverParameters;
}

/** What the cutover function reads besides the database access, and the application's switch. */
export interface CutoverParameters {
  /** `host:port` of the source database (the application's writer before the switch). */
  sourceEndpoint: string;
  /** Placeholder for the operator's DSN of a source role that can ALTER ROLE and end sessions. */
  sourceAdminDsn: string;
  /** Placeholder for how the source reaches Aurora for reverse replication. */
  reverseConninfo: pulumi.Input<string>;
}

/**
 * The functions that connect to the database, each as its own role (infra/sql/roles.sql):
 * no function connects as the master user.
 */
export const DATABASE_FUNCTIONS = ["data-validator", "lag-probe", "failover", "cutover"] as const;
export type DatabaseFunction = (typeof DATABASE_FUNCTIONS)[number];

/** The role infra/sql/roles.sql creates for a function: `cutover_<function>`. */
export function databaseRole(fn: DatabaseFunction): string {
  return `cutover_${fn.replace(/-/g, "_")}`;
}

/** Where a function's role password goes: the operator sets the role's password and puts it here. */
export const ROLE_PASSWORD_PLACEHOLDER = "SET-ME: ALTER ROLE <role> PASSWORD '...' (infra/sql/roles.sql), then put it here";

export interface ParameterSpec {
  path: string;
  value: pulumi.Input<string>;
  secure: boolean;
  /**
   * Rewritten at run time (failover moves the writer and the active region; operators put
   * the real source DSN): `pulumi up` sets the first value and then leaves it alone.
   */
  owned: boolean;
}

/** The SSM hierarchy the functions read (and failover rewrites); secrets are SecureString. */
export function parameterSpecs(a: ParametersArgs): ParameterSpec[] {
  const db = `/migration/db/${a.suffix}`;
  const app = `/migration/app/${a.suffix}`;
  const endpoint = (host: pulumi.Input<string>) => pulumi.interpolate`${host}:5432`;
  return [
    { path: `${db}/writer-endpoint`, value: endpoint(a.writerEndpoint), secure: false, owned: true },
    ...Object.entries(a.readerEndpoints).map(([region, host]) => ({
      path: `${db}/reader-endpoint/${region}`, value: endpoint(host), secure: false, owned: false,
    })),
    { path: `${db}/database`, value: a.databaseName, secure: false, owned: false },
    // The application's role: what the cutover freezes. No function connects with it.
    { path: `${db}/user`, value: a.username, secure: false, owned: false },
    { path: `${db}/password`, value: a.password, secure: true, owned: false },
    // Each function's own role; its password is the operator's (seeded with a placeholder).
    ...DATABASE_FUNCTIONS.flatMap((fn) => [
      { path: `${db}/users/${fn}`, value: databaseRole(fn), secure: false, owned: false },
      { path: `${db}/passwords/${fn}`, value: ROLE_PASSWORD_PLACEHOLDER, secure: true, owned: true },
    ]),
    { path: `${db}/source-dsn`, value: a.sourceDsn, secure: true, owned: true },
    { path: `${app}/active-region`, value: a.primaryRegion, secure: false, owned: true },
    {
      path: `${app}/traffic-policy`,
      value: JSON.stringify({ plan: "canary-10-5m", scope: "region-by-region" }),
      secure: false,
      owned: false,
    },
    ...(a.cutover === undefined ? [] : cutoverSpecs(a, a.cutover)),
  ];
}

/**
 * The cutover's parameters (primary only). The target it reaches as its own role
 * (`users/cutover`); `source-admin-dsn` and `reverse-conninfo` are the operator's secrets,
 * seeded with placeholders and never overwritten; `writes-to` says where the application
 * writes (`source` until the switch), seeded once and then the cutover function's.
 */
export function cutoverSpecs(a: ParametersArgs, c: CutoverParameters): ParameterSpec[] {
  const db = `/migration/db/${a.suffix}`;
  const app = `/migration/app/${a.suffix}`;
  return [
    { path: `${db}/source-admin-dsn`, value: c.sourceAdminDsn, secure: true, owned: true },
    { path: `${db}/reverse-conninfo`, value: c.reverseConninfo, secure: true, owned: true },
    { path: `${db}/source-endpoint`, value: c.sourceEndpoint, secure: false, owned: false },
    { path: `${app}/writes-to`, value: "source", secure: false, owned: true },
  ];
}

/**
 * One region's copy of the parameters: every region of the stack has the whole hierarchy, so
 * the functions of a region read their own region's SSM and nothing a surviving region does
 * needs a lost region's API. SecureStrings are encrypted with a key of the region's own, so
 * that a function's kms:Decrypt can name one key. Every copy is seeded with the same values
 * (the writer is the primary's); after a move, failover rewrites `writer-endpoint` and
 * `active-region` in every region it can reach (a lost region's copy when it is back:
 * `sync-endpoints`). Both are String parameters, so the copies need no key.
 */
export class Parameters extends pulumi.ComponentResource {
  readonly names: string[];
  readonly kmsKeyArn: pulumi.Output<string>;

  constructor(id: string, args: ParametersArgs, opts?: pulumi.ComponentResourceOptions) {
    super("cutover:parameters:Parameters", id, {}, opts);
    // The primary's resources keep their names; the other regions' carry the region.
    const n = (type: string) => (args.region === args.primaryRegion ? name(type, args.suffix) : name(type, args.suffix, args.region));
    const key = new aws.kms.Key(n("kms-ssm"), {
      description: "cutover SSM SecureString parameters",
      enableKeyRotation: true,
      deletionWindowInDays: 7,
    }, { parent: this, provider: args.provider });
    const specs = parameterSpecs(args);
    for (const spec of specs) {
      const slug = spec.path.split("/").slice(4).join("-");
      new aws.ssm.Parameter(n(`ssm-${spec.path.split("/")[2]}-${slug}`), {
        name: spec.path,
        type: spec.secure ? "SecureString" : "String",
        keyId: spec.secure ? key.arn : undefined,
        value: spec.value,
        tier: "Standard",
      }, { parent: this, provider: args.provider, ignoreChanges: spec.owned ? ["value"] : [] });
    }
    this.names = specs.map((s) => s.path);
    this.kmsKeyArn = key.arn;
    this.registerOutputs({ names: this.names, kmsKeyArn: this.kmsKeyArn });
  }
}
