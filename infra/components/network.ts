import * as aws from "@pulumi/aws";
import * as pulumi from "@pulumi/pulumi";

import { name, subnetCidrs } from "../config";

export interface NetworkArgs {
  suffix: string;
  region: string;
  cidr: string;
  containerPort: number;
  provider: aws.Provider;
  /**
   * Other regions' function subnets, admitted to this region's database on 5432 over the
   * VPC peering (security groups cannot be referenced across regions).
   */
  peerFunctionCidrs: string[];
  /** The other regions' VPCs: this region's functions reach their databases over the peerings. */
  peerCidrs: string[];
  /**
   * The Oracle source: the tasks reach it (the application writes there until the switch,
   * `writes-to` = source), and so do the functions when `functionsReachSource` (the validator
   * and the cutover, in the primary).
   */
  source: { port: number; cidr: string; functionsReachSource: boolean };
  /** DMS runs here (the primary, with createDms): its own security group, reaching Oracle on-premises. */
  dms?: { oraclePort: number; onPremCidr: string };
}

/**
 * One region's network: a VPC with public, private and function subnets in two AZs,
 * exactly one NAT gateway, S3 and DynamoDB gateway endpoints on the private route table,
 * and the security groups: ALB <- 80/443 from the internet; tasks <- the container port
 * from the ALB only; database <- 5432 from the tasks and the functions only (and from the
 * other regions' function subnets over the peerings). Egress is as narrow: the ALB to the
 * tasks' port; tasks and functions HTTPS anywhere (AWS APIs and image pulls through the NAT),
 * 5432 to the databases they use and the Oracle port to `onPremCidr`; the database nothing.
 * Routes are separate resources so that the peering can add its own to the same tables.
 */
export class Network extends pulumi.ComponentResource {
  readonly vpcId: pulumi.Output<string>;
  readonly publicSubnetIds: pulumi.Output<string>[];
  readonly privateSubnetIds: pulumi.Output<string>[];
  readonly functionSubnetIds: pulumi.Output<string>[];
  readonly privateRouteTableId: pulumi.Output<string>;
  readonly albSecurityGroupId: pulumi.Output<string>;
  readonly taskSecurityGroupId: pulumi.Output<string>;
  readonly functionSecurityGroupId: pulumi.Output<string>;
  readonly databaseSecurityGroupId: pulumi.Output<string>;
  readonly dmsSecurityGroupId?: pulumi.Output<string>;

  constructor(id: string, args: NetworkArgs, opts?: pulumi.ComponentResourceOptions) {
    super("cutover:network:Network", id, {}, opts);
    const o = { parent: this, provider: args.provider };
    const n = (type: string) => name(type, args.suffix, args.region);
    const cidrs = subnetCidrs(args.cidr);
    const zones = aws.getAvailabilityZonesOutput({ state: "available" }, { provider: args.provider, parent: this });

    const vpc = new aws.ec2.Vpc(n("vpc"), {
      cidrBlock: args.cidr,
      enableDnsHostnames: true,
      enableDnsSupport: true,
      tags: { Name: n("vpc") },
    }, o);
    const igw = new aws.ec2.InternetGateway(n("igw"), { vpcId: vpc.id, tags: { Name: n("igw") } }, o);

    const publicRt = new aws.ec2.RouteTable(n("rt-public"), { vpcId: vpc.id, tags: { Name: n("rt-public") } }, o);
    new aws.ec2.Route(n("route-public-internet"), { routeTableId: publicRt.id, destinationCidrBlock: "0.0.0.0/0", gatewayId: igw.id }, o);
    const publicSubnets = cidrs.public.map((cidr, i) => {
      const s = new aws.ec2.Subnet(n(`subnet-public-${i}`), {
        vpcId: vpc.id,
        cidrBlock: cidr,
        availabilityZone: zones.names[i],
        mapPublicIpOnLaunch: true,
        tags: { Name: n(`subnet-public-${i}`), tier: "public" },
      }, o);
      new aws.ec2.RouteTableAssociation(n(`rta-public-${i}`), { subnetId: s.id, routeTableId: publicRt.id }, o);
      return s;
    });

    // Exactly one NAT gateway per region (cost over AZ redundancy; see README).
    const eip = new aws.ec2.Eip(n("eip-nat"), { domain: "vpc", tags: { Name: n("eip-nat") } }, o);
    const nat = new aws.ec2.NatGateway(n("nat"), {
      allocationId: eip.id,
      subnetId: publicSubnets[0].id,
      tags: { Name: n("nat") },
    }, { ...o, dependsOn: [igw] });
    const privateRt = new aws.ec2.RouteTable(n("rt-private"), { vpcId: vpc.id, tags: { Name: n("rt-private") } }, o);
    new aws.ec2.Route(n("route-private-nat"), { routeTableId: privateRt.id, destinationCidrBlock: "0.0.0.0/0", natGatewayId: nat.id }, o);
    const privateTier = (tier: string, tierCidrs: string[]) => tierCidrs.map((cidr, i) => {
      const s = new aws.ec2.Subnet(n(`subnet-${tier}-${i}`), {
        vpcId: vpc.id,
        cidrBlock: cidr,
        availabilityZone: zones.names[i],
        tags: { Name: n(`subnet-${tier}-${i}`), tier },
      }, o);
      new aws.ec2.RouteTableAssociation(n(`rta-${tier}-${i}`), { subnetId: s.id, routeTableId: privateRt.id }, o);
      return s;
    });
    const privateSubnets = privateTier("private", cidrs.private);
    const functionSubnets = privateTier("functions", cidrs.functions);
    for (const service of ["s3", "dynamodb"]) {
      new aws.ec2.VpcEndpoint(n(`vpce-${service}`), {
        vpcId: vpc.id,
        serviceName: `com.amazonaws.${args.region}.${service}`,
        vpcEndpointType: "Gateway",
        routeTableIds: [privateRt.id],
        tags: { Name: n(`vpce-${service}`) },
      }, o);
    }

    // HTTPS anywhere: the AWS APIs (SSM, DynamoDB, SNS, RDS, ...) and, for the tasks, image pulls through the NAT.
    // The VPC's DNS resolver is not subject to security groups.
    const https = { protocol: "tcp", fromPort: 443, toPort: 443, cidrBlocks: ["0.0.0.0/0"], description: "HTTPS: AWS APIs" };
    const oracle = { protocol: "tcp", fromPort: args.source.port, toPort: args.source.port, cidrBlocks: [args.source.cidr], description: "to Oracle, on-premises" };
    const albSg = new aws.ec2.SecurityGroup(n("sg-alb"), {
      vpcId: vpc.id,
      description: "ALB: HTTP and HTTPS from the internet",
      ingress: [80, 443].map((port) => ({
        protocol: "tcp", fromPort: port, toPort: port, cidrBlocks: ["0.0.0.0/0"], description: `port ${port} from the internet`,
      })),
      tags: { Name: n("sg-alb") },
    }, o);
    const taskSg = new aws.ec2.SecurityGroup(n("sg-tasks"), {
      vpcId: vpc.id,
      description: "ECS tasks: the container port from the ALB only",
      ingress: [{
        protocol: "tcp", fromPort: args.containerPort, toPort: args.containerPort,
        securityGroups: [albSg.id], description: "from the ALB",
      }],
      egress: [
        https,
        { protocol: "tcp", fromPort: 5432, toPort: 5432, cidrBlocks: [args.cidr], description: "to Aurora in this VPC" },
        oracle,
      ],
      tags: { Name: n("sg-tasks") },
    }, o);
    // A separate rule: the ALB's and the tasks' groups refer to each other.
    new aws.ec2.SecurityGroupRule(n("sg-alb-to-tasks"), {
      type: "egress", securityGroupId: albSg.id, sourceSecurityGroupId: taskSg.id,
      protocol: "tcp", fromPort: args.containerPort, toPort: args.containerPort, description: "to the tasks' container port",
    }, o);
    const fnSg = new aws.ec2.SecurityGroup(n("sg-functions"), {
      vpcId: vpc.id,
      description: "cutover Lambdas: no inbound",
      egress: [
        https,
        // lag-probe and failover reach every region's database over the peerings.
        { protocol: "tcp", fromPort: 5432, toPort: 5432, cidrBlocks: [args.cidr, ...args.peerCidrs], description: "to Aurora, here and over the peerings" },
        ...(args.source.functionsReachSource ? [oracle] : []),
      ],
      tags: { Name: n("sg-functions") },
    }, o);
    // DMS: nothing inbound; out only to Oracle on-premises and to the databases of this VPC.
    const dmsSg = args.dms === undefined ? undefined : new aws.ec2.SecurityGroup(n("sg-dms"), {
      vpcId: vpc.id,
      description: "DMS replication instance: to Oracle on-premises and Aurora only",
      egress: [
        { protocol: "tcp", fromPort: args.dms.oraclePort, toPort: args.dms.oraclePort, cidrBlocks: [args.dms.onPremCidr], description: "to Oracle, on-premises" },
        { protocol: "tcp", fromPort: 5432, toPort: 5432, cidrBlocks: [args.cidr], description: "to Aurora in this VPC" },
      ],
      tags: { Name: n("sg-dms") },
    }, o);
    const dbSg = new aws.ec2.SecurityGroup(n("sg-db"), {
      vpcId: vpc.id,
      description: "Aurora: 5432 from the tasks and the functions only",
      ingress: [
        { protocol: "tcp", fromPort: 5432, toPort: 5432, securityGroups: [taskSg.id], description: "from the ECS tasks" },
        { protocol: "tcp", fromPort: 5432, toPort: 5432, securityGroups: [fnSg.id], description: "from the cutover functions" },
        {
          protocol: "tcp", fromPort: 5432, toPort: 5432, cidrBlocks: args.peerFunctionCidrs,
          description: "from the other regions' function subnets, over the VPC peering",
        },
        ...(dmsSg === undefined ? [] : [{ protocol: "tcp", fromPort: 5432, toPort: 5432, securityGroups: [dmsSg.id], description: "from DMS" }]),
      ],
      // Aurora opens no connection of its own (global replication does not pass the group).
      egress: [],
      tags: { Name: n("sg-db") },
    }, o);

    this.vpcId = vpc.id;
    this.publicSubnetIds = publicSubnets.map((s) => s.id);
    this.privateSubnetIds = privateSubnets.map((s) => s.id);
    this.functionSubnetIds = functionSubnets.map((s) => s.id);
    this.privateRouteTableId = privateRt.id;
    this.albSecurityGroupId = albSg.id;
    this.taskSecurityGroupId = taskSg.id;
    this.functionSecurityGroupId = fnSg.id;
    this.databaseSecurityGroupId = dbSg.id;
    this.dmsSecurityGroupId = dmsSg?.id;
    this.registerOutputs({ vpcId: this.vpcId, privateSubnetIds: this.privateSubnetIds });
  }
}
