import * as aws from "@pulumi/aws";
import * as pulumi from "@pulumi/pulumi";

import { name } from "../config";

export interface StateArgs {
  suffix: string;
  provider: aws.Provider;
}

/** The migration-state table: pk/sk strings, on demand, point-in-time recovery, encrypted, TTL. */
export class State extends pulumi.ComponentResource {
  readonly tableName: pulumi.Output<string>;
  readonly tableArn: pulumi.Output<string>;

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
    }, { parent: this, provider: args.provider });
    this.tableName = table.name;
    this.tableArn = table.arn;
    this.registerOutputs({ tableName: this.tableName });
  }
}
