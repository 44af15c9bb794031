import * as aws from "@pulumi/aws";
import * as pulumi from "@pulumi/pulumi";
import * as random from "@pulumi/random";

import { name } from "../config";

export interface RegionalDatabaseInput {
  region: string;
  provider: aws.Provider;
  privateSubnetIds: pulumi.Input<string>[];
  securityGroupId: pulumi.Input<string>;
}

export interface DatabaseArgs {
  suffix: string;
  engineVersion: string;
  minAcu: number;
  maxAcu: number;
  databaseName: string;
  masterUsername: string;
  /** Logical replication on every cluster (`rds.logical_replication`): DMS's CDC from Aurora (reverseDms) needs it on the writer, wherever it is. */
  logicalReplication: boolean;
  /** The primary first, then the secondaries. */
  regions: RegionalDatabaseInput[];
}

export interface RegionalDatabase {
  region: string;
  clusterArn: pulumi.Output<string>;
  clusterId: pulumi.Output<string>;
  writerEndpoint: pulumi.Output<string>;
  readerEndpoint: pulumi.Output<string>;
  kmsKeyArn: pulumi.Output<string>;
}

/** The parameter family of an engine version (15.4 -> aurora-postgresql15). */
export function parameterFamily(engineVersion: string): string {
  return `aurora-postgresql${engineVersion.split(".")[0]}`;
}

/**
 * Aurora PostgreSQL Global Database: a KMS key per region, the primary cluster in the first
 * region and a secondary in each other, Serverless v2 instances, 7-day backups, TLS forced,
 * nothing kept on destroy. The master password is generated here (a Pulumi secret) and kept
 * in the SSM SecureString `/migration/db/<suffix>/password` by Parameters; never in config.
 */
export class Database extends pulumi.ComponentResource {
  readonly globalClusterId: pulumi.Output<string>;
  readonly globalClusterArn: pulumi.Output<string>;
  readonly regions: RegionalDatabase[];
  readonly masterPassword: pulumi.Output<string>;

  constructor(id: string, args: DatabaseArgs, opts?: pulumi.ComponentResourceOptions) {
    super("cutover:database:Database", id, {}, opts);
    const engine = "aurora-postgresql";
    const primary = args.regions[0];
    const password = new random.RandomPassword(name("db-master-password", args.suffix), {
      length: 32,
      special: true,
      // Aurora refuses / " @ and space; DMS endpoint settings trip over ; + % { }.
      overrideSpecial: "!#*-_=:?",
    }, { parent: this });

    const global = new aws.rds.GlobalCluster(name("aurora-global", args.suffix), {
      globalClusterIdentifier: name("aurora-global", args.suffix),
      engine,
      engineVersion: args.engineVersion,
      databaseName: args.databaseName,
      storageEncrypted: true,
      deletionProtection: false,
      forceDestroy: true,
      // A minor-version upgrade AWS applies, or one made through the global cluster, is not drift.
    }, { parent: this, provider: primary.provider, ignoreChanges: ["engineVersion"] });

    const regional: RegionalDatabase[] = [];
    let primaryInstance: aws.rds.ClusterInstance | undefined;
    args.regions.forEach((r, i) => {
      const o = { parent: this, provider: r.provider };
      const n = (type: string) => name(type, args.suffix, r.region);
      const key = new aws.kms.Key(n("kms-aurora"), {
        description: `Aurora storage encryption, ${r.region}`,
        enableKeyRotation: true,
        deletionWindowInDays: 7,
      }, o);
      const subnets = new aws.rds.SubnetGroup(n("db-subnets"), {
        name: n("db-subnets"),
        subnetIds: r.privateSubnetIds,
      }, o);
      const params = new aws.rds.ClusterParameterGroup(n("aurora-params"), {
        name: n("aurora-params"),
        family: parameterFamily(args.engineVersion),
        parameters: [
          { name: "rds.force_ssl", value: "1", applyMethod: "pending-reboot" },
          ...(args.logicalReplication ? [{ name: "rds.logical_replication", value: "1", applyMethod: "pending-reboot" }] : []),
        ],
      }, o);
      const isPrimary = i === 0;
      const cluster = new aws.rds.Cluster(n("aurora"), {
        clusterIdentifier: n("aurora"),
        engine,
        engineVersion: args.engineVersion,
        engineMode: "provisioned",
        globalClusterIdentifier: global.id,
        // Said on the primary as on the global cluster (else a refresh shows a diff); a
        // secondary takes the global database's and may not name one.
        databaseName: isPrimary ? args.databaseName : undefined,
        masterUsername: isPrimary ? args.masterUsername : undefined,
        masterPassword: isPrimary ? password.result : undefined,
        dbSubnetGroupName: subnets.name,
        vpcSecurityGroupIds: [r.securityGroupId],
        dbClusterParameterGroupName: params.name,
        storageEncrypted: true,
        kmsKeyId: key.arn,
        backupRetentionPeriod: 7,
        skipFinalSnapshot: true,
        deletionProtection: false,
        serverlessv2ScalingConfiguration: { minCapacity: args.minAcu, maxCapacity: args.maxAcu },
      }, {
        ...o,
        dependsOn: primaryInstance === undefined ? [] : [primaryInstance],
        // After a switchover or failover (the failover function's job) the writer is elsewhere
        // and this cluster's replication source changes; upgrades go through the global
        // cluster. Neither may be "corrected" back by the next `pulumi up`.
        ignoreChanges: ["replicationSourceIdentifier", "engineVersion"],
      });
      const instance = new aws.rds.ClusterInstance(n("aurora-1"), {
        identifier: n("aurora-1"),
        clusterIdentifier: cluster.id,
        instanceClass: "db.serverless",
        engine,
        engineVersion: args.engineVersion,
        publiclyAccessible: false,
      }, { ...o, ignoreChanges: ["engineVersion"] });
      if (isPrimary) primaryInstance = instance;
      regional.push({
        region: r.region,
        clusterArn: cluster.arn,
        clusterId: cluster.id,
        writerEndpoint: cluster.endpoint,
        readerEndpoint: cluster.readerEndpoint,
        kmsKeyArn: key.arn,
      });
    });

    this.globalClusterId = global.id;
    this.globalClusterArn = global.arn;
    this.regions = regional;
    this.masterPassword = password.result;
    this.registerOutputs({ globalClusterId: this.globalClusterId });
  }
}
