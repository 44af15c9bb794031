import * as aws from "@pulumi/aws";
import * as pulumi from "@pulumi/pulumi";

import { name } from "../config";

export interface StateArgs {
  suffix: string;
  /** The primary region's provider: the table is declared there, its replicas follow. */
  provider: aws.Provider;
  primaryRegion: string;
  /** Every other region of the stack: a replica each. */
  replicaRegions: string[];
  accountId: pulumi.Input<string>;
}

/** The ARN of the table's copy in `region`: a replica's ARN names its own region. */
export function tableArnIn(region: string, accountId: string, tableName: string): string {
  return `arn:aws:dynamodb:${region}:${accountId}:table/${tableName}`;
}

/**
 * The migration-state table: pk/sk strings, on demand, point-in-time recovery, encrypted, TTL;
 * a DynamoDB global table (version 2019.11.21) with a replica in every other region, so the
 * failover state, lease and lag samples outlive the loss of any one region. Replication needs
 * the stream (new and old images). Encrypted with DynamoDB's AWS managed key (`aws/dynamodb`),
 * which exists in every region, so no customer key has to be created per region. Eventually consistent across regions
 * (multi-region strong consistency only exists inside one of AWS's region sets, and these
 * regions span three continents): a conditional write is consistent in its own region only, so
 * the lease guards one region's triggers and Aurora's global cluster arbitrates across regions.
 */
export class State extends pulumi.ComponentResource {
  readonly tableName: pulumi.Output<string>;
  readonly tableArn: pulumi.Output<string>;
  /** The table's ARN in each region (the primary's table, the replicas). */
  readonly tableArns: Record<string, pulumi.Output<string>> = {};

  constructor(id: string, args: StateArgs, opts?: pulumi.ComponentResourceOptions) {
    super("cutover:state:State", id, {}, opts);
    const table = new aws.dynamodb.Table(name("migration-state", args.suffix), {
      name: name("migration-state", args.suffix),
      billingMode: "PAY_PER_REQUEST",
      hashKey: "pk",
      rangeKey: "sk",
      attributes: [{ name: "pk", type: "S" }, { name: "sk", type: "S" }],
      pointInTimeRecovery: { enabled: true },
      serverSideEncryption: { enabled: true },
      ttl: { attributeName: "expires_at", enabled: true },
      deletionProtectionEnabled: false,
      streamEnabled: true,
      streamViewType: "NEW_AND_OLD_IMAGES",
      replicas: args.replicaRegions.map((regionName) => ({
        regionName, pointInTimeRecovery: true, propagateTags: true, consistencyMode: "EVENTUAL",
      })),
    }, { parent: this, provider: args.provider });
    this.tableName = table.name;
    this.tableArn = table.arn;
    this.tableArns[args.primaryRegion] = table.arn;
    for (const region of args.replicaRegions) {
      this.tableArns[region] = pulumi.all([args.accountId, table.name]).apply(([account, t]) => tableArnIn(region, account, t));
    }
    this.registerOutputs({ tableName: this.tableName });
  }
}
