import * as aws from "@pulumi/aws";
import * as pulumi from "@pulumi/pulumi";

import { Settings, name, subnetCidrs } from "../config";
import { Application } from "./application";
import { Database } from "./database";
import { EVERY_REGION, FUNCTIONS, Functions } from "./functions";
import { Migration } from "./migration";
import { Monitoring, watchedAlarms } from "./monitoring";
import { Network } from "./network";
import { Notifications } from "./notifications";
import { Parameters } from "./parameters";
import { Peering } from "./peering";
import { Runbook } from "./runbook";
import { State } from "./state";
import { Triggers } from "./triggers";

export const METRICS_NAMESPACE = "Cutover";

export interface RegionOutputs {
  region: string;
  vpcId: pulumi.Output<string>;
  listenerArn: pulumi.Output<string>;
  blueTargetGroupArn: pulumi.Output<string>;
  greenTargetGroupArn: pulumi.Output<string>;
  albDnsName: pulumi.Output<string>;
  clusterArn: pulumi.Output<string>;
}

/** One explicit provider per region: nothing depends on the ambient AWS region. */
export function providers(s: Settings, parent: pulumi.Resource): Map<string, aws.Provider> {
  const out = new Map<string, aws.Provider>();
  for (const region of [s.primaryRegion, ...s.secondaryRegions]) {
    out.set(region, new aws.Provider(name("aws", s.suffix, region), {
      region: region as aws.Region,
      defaultTags: { tags: { project: "cutover", environment: s.suffix } },
    }, { parent }));
  }
  return out;
}

/**
 * The whole platform, composed from its components: per region a network and an
 * application, the VPC peerings, the Aurora global database, the state table, the SSM
 * hierarchy, optional DMS and VPN; then the functions, their triggers, notifications,
 * monitoring and the cutover runbook.
 */
export class Platform extends pulumi.ComponentResource {
  readonly regions: RegionOutputs[];
  readonly globalClusterId: pulumi.Output<string>;
  readonly stateTableName: pulumi.Output<string>;
  readonly parameterNames: string[];
  readonly replicationTaskArn?: pulumi.Output<string>;
  readonly reverseReplicationTaskArn?: pulumi.Output<string>;
  readonly vpnConnectionId?: pulumi.Output<string>;
  /** The primary's functions. */
  readonly functionArns: Partial<Record<string, pulumi.Output<string>>>;
  readonly opsTopicArn: pulumi.Output<string>;
  readonly runbookArn: pulumi.Output<string>;
  readonly validationMachineArn: pulumi.Output<string>;

  constructor(id: string, s: Settings, opts?: pulumi.ComponentResourceOptions) {
    super("cutover:platform:Platform", id, {}, opts);
    const child = { parent: this };
    const regions = [s.primaryRegion, ...s.secondaryRegions];
    const provider = providers(s, this);
    const p = (r: string) => provider.get(r) as aws.Provider;
    // Every region's functions reach every other region's database: the writer, wherever it is, and the readers.
    const peerFunctionCidrs = (region: string) => regions.filter((r) => r !== region).flatMap((r) => subnetCidrs(s.vpcCidrs[r]).functions);

    const networks = regions.map((region, i) => new Network(name("network", s.suffix, region), {
      suffix: s.suffix,
      region,
      cidr: s.vpcCidrs[region],
      containerPort: s.containerPort,
      provider: p(region),
      peerFunctionCidrs: peerFunctionCidrs(region),
      peerCidrs: regions.filter((r) => r !== region).map((r) => s.vpcCidrs[r]),
      // The validator and the cutover read the source; they run in the primary only.
      source: { port: s.oraclePort, cidr: s.onPremCidr, functionsReachSource: i === 0 },
      dms: i === 0 && s.createDms ? { oraclePort: s.oraclePort, onPremCidr: s.onPremCidr } : undefined,
    }, child));
    const side = (i: number) => ({
      region: regions[i], provider: p(regions[i]), vpcId: networks[i].vpcId, cidr: s.vpcCidrs[regions[i]],
      privateRouteTableId: networks[i].privateRouteTableId,
    });
    // Every pair of regions: the primary with each secondary (named after the secondary), and the secondaries with each other.
    for (let i = 0; i < regions.length; i++) {
      for (let j = i + 1; j < regions.length; j++) {
        const label = i === 0 ? regions[j] : `${regions[i]}-${regions[j]}`;
        new Peering(name("peering", s.suffix, label), { suffix: s.suffix, primary: side(i), secondary: side(j), label }, child);
      }
    }

    const database = new Database(name("database", s.suffix), {
      suffix: s.suffix,
      engineVersion: s.auroraEngineVersion,
      minAcu: s.auroraMinAcu,
      maxAcu: s.auroraMaxAcu,
      databaseName: s.databaseName,
      masterUsername: s.masterUsername,
      logicalReplication: s.reverseDms,
      regions: networks.map((net, i) => ({
        region: regions[i],
        provider: p(regions[i]),
        privateSubnetIds: net.privateSubnetIds,
        securityGroupId: net.databaseSecurityGroupId,
      })),
    }, child);
    const accountId = aws.getCallerIdentityOutput({}, { provider: p(s.primaryRegion), parent: this }).accountId;
    // One copy of the cutover's parameters, in the primary: every region's application reads it.
    const cutoverParameterArn = (path: string) => pulumi.interpolate`arn:aws:ssm:${s.primaryRegion}:${accountId}:parameter/migration/${path}`;
    const apps = networks.map((net, i) => new Application(name("application", s.suffix, regions[i]), {
      suffix: s.suffix,
      region: regions[i],
      provider: p(regions[i]),
      vpcId: net.vpcId,
      publicSubnetIds: net.publicSubnetIds,
      privateSubnetIds: net.privateSubnetIds,
      albSecurityGroupId: net.albSecurityGroupId,
      taskSecurityGroupId: net.taskSecurityGroupId,
      image: s.containerImage,
      containerPort: s.containerPort,
      desiredCount: s.desiredCount,
      greenDesiredCount: s.greenDesiredCount,
      maxCount: s.maxCount,
      architecture: s.taskArchitecture,
      containerInsights: s.containerInsights,
      certificateArn: s.certificateArns[regions[i]],
      // functions/cutover/README.md, the application's contract: writes-to says source (source-endpoint)
      // or target (writer-endpoint: its own region's copy, the one its region's failover keeps current).
      readsParameterArns: [
        cutoverParameterArn(`app/${s.suffix}/writes-to`),
        cutoverParameterArn(`db/${s.suffix}/source-endpoint`),
        pulumi.interpolate`arn:aws:ssm:${regions[i]}:${accountId}:parameter/migration/db/${s.suffix}/writer-endpoint`,
      ],
    }, child));
    const state = new State(name("state", s.suffix), {
      suffix: s.suffix, provider: p(s.primaryRegion), primaryRegion: s.primaryRegion, replicaRegions: s.secondaryRegions, accountId,
    }, child);
    const primaryDb = database.regions[0];
    const migration = new Migration(name("migration", s.suffix), {
      suffix: s.suffix,
      region: s.primaryRegion,
      provider: p(s.primaryRegion),
      createDms: s.createDms,
      createVpn: s.createVpn,
      createDmsVpcRole: s.createDmsVpcRole,
      reverseDms: s.reverseDms,
      vpcId: networks[0].vpcId,
      privateSubnetIds: networks[0].privateSubnetIds,
      privateRouteTableId: networks[0].privateRouteTableId,
      securityGroupId: networks[0].dmsSecurityGroupId,
      oracleEndpoint: s.oracleEndpoint,
      oraclePort: s.oraclePort,
      oracleServiceName: s.oracleServiceName,
      oracleSslMode: s.oracleSslMode,
      oracleCaWalletFile: s.oracleCaWalletFile,
      targetCaBundleFile: s.caBundleFile,
      targetEndpoint: primaryDb.writerEndpoint,
      targetDatabase: s.databaseName,
      targetUsername: s.masterUsername,
      targetPassword: database.masterPassword,
      customerGatewayIp: s.customerGatewayIp,
      onPremCidr: s.onPremCidr,
    }, child);
    const readerEndpoints: Record<string, pulumi.Input<string>> = {};
    database.regions.forEach((r) => { readerEndpoints[r.region] = r.readerEndpoint; });
    // The whole hierarchy in every region: each region's functions read their own region's SSM.
    const parameterSets = regions.map((region, i) => new Parameters(i === 0 ? name("parameters", s.suffix) : name("parameters", s.suffix, region), {
      suffix: s.suffix,
      region,
      provider: p(region),
      primaryRegion: s.primaryRegion,
      databaseName: s.databaseName,
      username: s.masterUsername,
      password: database.masterPassword,
      writerEndpoint: primaryDb.writerEndpoint,
      readerEndpoints,
      sourceDsn: `oracle://cutover_validator:SET-ME@${s.oracleEndpoint}:${s.oraclePort}/${s.oracleServiceName}`,
      cutover: i === 0 ? {
        sourceEndpoint: `${s.oracleEndpoint}:${s.oraclePort}`,
        sourceAdminDsn: `oracle://cutover_admin:SET-ME@${s.oracleEndpoint}:${s.oraclePort}/${s.oracleServiceName}`,
        reverseConninfo: pulumi.interpolate`host=${primaryDb.writerEndpoint} port=5432 dbname=${s.databaseName} user=SET-ME password=SET-ME sslmode=verify-full`,
      } : undefined,
    }, child));
    const parameters = parameterSets[0];
    const notifications = new Notifications(name("notifications", s.suffix), {
      suffix: s.suffix,
      accountId,
      // The DMS task-failure rule, in the primary, is the one EventBridge rule that publishes.
      regions: regions.map((region, i) => ({ region, provider: p(region), eventBridgePublishes: i === 0 && s.createDms })),
      alertEmail: s.alertEmail,
    }, child);
    const primaryTopic = notifications.regions[0];
    const alarms = watchedAlarms(s.suffix);
    // A control plane in every region: all five functions in the primary, lag-probe and failover in each other region.
    const functionSets = regions.map((region, i) => new Functions(i === 0 ? name("functions", s.suffix) : name("functions", s.suffix, region), {
      suffix: s.suffix,
      primaryRegion: s.primaryRegion,
      region,
      functions: i === 0 ? FUNCTIONS : EVERY_REGION,
      provider: p(region),
      regions: regions.map((r, j) => ({
        region: r,
        listenerArn: apps[j].listenerArn,
        blueTargetGroupArn: apps[j].blueTargetGroupArn,
        greenTargetGroupArn: apps[j].greenTargetGroupArn,
        clusterArn: database.regions[j].clusterArn,
        auroraKeyArn: database.regions[j].kmsKeyArn,
        ecsClusterName: apps[j].clusterName,
        taskRoleArns: apps[j].taskRoleArns,
        scalingTargetArns: apps[j].scalingTargetArns,
      })),
      subnetIds: networks[i].functionSubnetIds,
      securityGroupId: networks[i].functionSecurityGroupId,
      stateTableArn: state.tableArns[region],
      stateTableName: state.tableName,
      opsTopicArn: notifications.regions[i].opsTopicArn,
      validationTopicArn: notifications.validationTopicArn,
      snsKeyArn: notifications.regions[i].keyArn,
      ssmKeyArn: parameterSets[i].kmsKeyArn,
      globalClusterId: database.globalClusterId,
      globalClusterArn: database.globalClusterArn,
      accountId,
      zipDir: s.lambdaZipDir,
      caBundleFile: s.caBundleFile,
      validationTables: s.validationTables,
      validationSchemas: s.validationSchemas,
      oracleLayerArn: s.oracleInstantClientLayerArn,
      failoverReservedConcurrency: s.failoverReservedConcurrency,
      releaseHooks: s.releaseHooks,
      releaseHookDetails: s.releaseHookDetails,
      alarms,
      metricsNamespace: METRICS_NAMESPACE,
    }, child));
    const functions = functionSets[0];
    new Triggers(name("triggers", s.suffix), {
      suffix: s.suffix,
      primaryRegion: s.primaryRegion,
      regions: functionSets.map((f, i) => ({ region: regions[i], provider: p(regions[i]), functionArns: f.arns, functionNames: f.names })),
      validationSchedule: s.validationSchedule,
      alarms,
      accountId,
    }, child);
    new Monitoring(name("monitoring", s.suffix), {
      suffix: s.suffix,
      metricsNamespace: METRICS_NAMESPACE,
      regions: regions.map((region, i) => ({
        region,
        provider: p(region),
        opsTopicArn: notifications.regions[i].opsTopicArn,
        albArnSuffix: apps[i].albArnSuffix,
        targetGroupArnSuffixes: apps[i].targetGroupArnSuffixes,
      })),
      createDms: s.createDms,
      dmsTaskArn: migration.replicationTaskArn,
      reverseDmsTaskArn: migration.reverseReplicationTaskArn,
    }, child);
    const runbook = new Runbook(name("runbook", s.suffix), {
      suffix: s.suffix,
      provider: p(s.primaryRegion),
      validatorArn: functions.arns["data-validator"] as pulumi.Output<string>,
      cutoverArn: functions.arns.cutover as pulumi.Output<string>,
      shifterArn: functions.arns["traffic-shifter"] as pulumi.Output<string>,
      opsTopicArn: primaryTopic.opsTopicArn,
      snsKeyArn: primaryTopic.keyArn,
    }, child);

    this.regions = regions.map((region, i) => ({
      region,
      vpcId: networks[i].vpcId,
      listenerArn: apps[i].listenerArn,
      blueTargetGroupArn: apps[i].blueTargetGroupArn,
      greenTargetGroupArn: apps[i].greenTargetGroupArn,
      albDnsName: apps[i].albDnsName,
      clusterArn: database.regions[i].clusterArn,
    }));
    this.globalClusterId = database.globalClusterId;
    this.stateTableName = state.tableName;
    this.parameterNames = parameters.names;
    this.replicationTaskArn = migration.replicationTaskArn;
    this.reverseReplicationTaskArn = migration.reverseReplicationTaskArn;
    this.vpnConnectionId = migration.vpnConnectionId;
    this.functionArns = functions.arns;
    this.opsTopicArn = primaryTopic.opsTopicArn;
    this.runbookArn = runbook.stateMachineArn;
    this.validationMachineArn = runbook.validationArn;
    this.registerOutputs({ globalClusterId: this.globalClusterId, runbookArn: this.runbookArn, validationMachineArn: this.validationMachineArn });
  }
}
