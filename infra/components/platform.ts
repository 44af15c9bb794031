import * as aws from "@pulumi/aws";
import * as pulumi from "@pulumi/pulumi";

import { Settings, name } from "../config";
import { Application } from "./application";
import { Database } from "./database";
import { Migration } from "./migration";
import { Network } from "./network";
import { Operations } from "./operations";
import { Parameters } from "./parameters";
import { State } from "./state";

export interface RegionOutputs {
  region: string;
  vpcId: pulumi.Output<string>;
  listenerArn: pulumi.Output<string>;
  blueTargetGroupArn: pulumi.Output<string>;
  greenTargetGroupArn: pulumi.Output<string>;
  albDnsName: pulumi.Output<string>;
  clusterArn: pulumi.Output<string>;
}

export interface PlatformOutputs {
  regions: RegionOutputs[];
  globalClusterId: pulumi.Output<string>;
  stateTableName: pulumi.Output<string>;
  parameterNames: string[];
  replicationTaskArn?: pulumi.Output<string>;
  vpnConnectionId?: pulumi.Output<string>;
  functionArns: Record<string, pulumi.Output<string>>;
  opsTopicArn: pulumi.Output<string>;
  stateMachineArn: pulumi.Output<string>;
}

/** One explicit provider per region: nothing depends on the ambient AWS region. */
export function providers(s: Settings): Map<string, aws.Provider> {
  const out = new Map<string, aws.Provider>();
  for (const region of [s.primaryRegion, ...s.secondaryRegions]) {
    out.set(region, new aws.Provider(name("aws", s.suffix, region), {
      region: region as aws.Region,
      defaultTags: { tags: { project: "cutover", environment: s.suffix } },
    }));
  }
  return out;
}

/** The whole platform, composed from its components. */
export function createPlatform(s: Settings): PlatformOutputs {
  const regions = [s.primaryRegion, ...s.secondaryRegions];
  const provider = providers(s);
  const p = (r: string) => provider.get(r) as aws.Provider;
  const networks = regions.map((region) => new Network(name("network", s.suffix, region), {
    suffix: s.suffix,
    region,
    cidr: s.vpcCidrs[region],
    containerPort: s.containerPort,
    provider: p(region),
  }));
  const database = new Database(name("database", s.suffix), {
    suffix: s.suffix,
    engineVersion: s.auroraEngineVersion,
    minAcu: s.auroraMinAcu,
    maxAcu: s.auroraMaxAcu,
    databaseName: s.databaseName,
    masterUsername: s.masterUsername,
    regions: networks.map((net, i) => ({
      region: regions[i],
      provider: p(regions[i]),
      privateSubnetIds: net.privateSubnetIds,
      securityGroupId: net.databaseSecurityGroupId,
    })),
  });
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
    maxCount: s.maxCount,
  }));
  const state = new State(name("state", s.suffix), { suffix: s.suffix, provider: p(s.primaryRegion) });
  const primaryDb = database.regions[0];
  const migration = new Migration(name("migration", s.suffix), {
    suffix: s.suffix,
    region: s.primaryRegion,
    provider: p(s.primaryRegion),
    createDms: s.createDms,
    createVpn: s.createVpn,
    vpcId: networks[0].vpcId,
    privateSubnetIds: networks[0].privateSubnetIds,
    privateRouteTableId: networks[0].privateRouteTableId,
    securityGroupId: networks[0].functionSecurityGroupId,
    oracleEndpoint: s.oracleEndpoint,
    oraclePort: s.oraclePort,
    oracleServiceName: s.oracleServiceName,
    targetEndpoint: primaryDb.writerEndpoint,
    targetDatabase: s.databaseName,
    targetUsername: s.masterUsername,
    targetPassword: database.masterPassword,
    customerGatewayIp: s.customerGatewayIp,
    onPremCidr: s.onPremCidr,
  });
  const readerEndpoints: Record<string, pulumi.Input<string>> = {};
  database.regions.forEach((r) => { readerEndpoints[r.region] = r.readerEndpoint; });
  const parameters = new Parameters(name("parameters", s.suffix), {
    suffix: s.suffix,
    provider: p(s.primaryRegion),
    primaryRegion: s.primaryRegion,
    databaseName: s.databaseName,
    username: s.masterUsername,
    password: database.masterPassword,
    writerEndpoint: primaryDb.writerEndpoint,
    readerEndpoints,
    sourceDsn: `oracle://cutover_validator:SET-ME@${s.oracleEndpoint}:${s.oraclePort}/${s.oracleServiceName}`,
    caBundlePem: s.caBundlePem,
  });
  const identity = aws.getCallerIdentityOutput({}, { provider: p(s.primaryRegion) });
  const operations = new Operations(name("operations", s.suffix), {
    suffix: s.suffix,
    primaryRegion: s.primaryRegion,
    regions: regions.map((region, i) => ({
      region,
      provider: p(region),
      listenerArn: apps[i].listenerArn,
      blueTargetGroupArn: apps[i].blueTargetGroupArn,
      greenTargetGroupArn: apps[i].greenTargetGroupArn,
      albArnSuffix: apps[i].albArnSuffix,
      clusterArn: database.regions[i].clusterArn,
    })),
    privateSubnetIds: networks[0].privateSubnetIds,
    functionSecurityGroupId: networks[0].functionSecurityGroupId,
    stateTableArn: state.tableArn,
    stateTableName: state.tableName,
    globalClusterId: database.globalClusterId,
    globalClusterArn: database.globalClusterArn,
    accountId: identity.accountId,
    zipDir: s.lambdaZipDir,
    validationSchedule: s.validationSchedule,
    validationSchemas: s.validationSchemas,
    oracleLayerArn: s.oracleInstantClientLayerArn,
    alertEmail: s.alertEmail,
    createDms: s.createDms,
    dmsTaskArn: migration.replicationTaskArn,
    metricsNamespace: "Cutover",
  });
  return {
    functionArns: operations.functionArns,
    opsTopicArn: operations.opsTopicArn,
    stateMachineArn: operations.stateMachineArn,
    regions: regions.map((region, i) => ({
      region,
      vpcId: networks[i].vpcId,
      listenerArn: apps[i].listenerArn,
      blueTargetGroupArn: apps[i].blueTargetGroupArn,
      greenTargetGroupArn: apps[i].greenTargetGroupArn,
      albDnsName: apps[i].albDnsName,
      clusterArn: database.regions[i].clusterArn,
    })),
    globalClusterId: database.globalClusterId,
    stateTableName: state.tableName,
    parameterNames: parameters.names,
    replicationTaskArn: migration.replicationTaskArn,
    vpnConnectionId: migration.vpnConnectionId,
  };
}
