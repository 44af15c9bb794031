import * as aws from "@pulumi/aws";
import * as pulumi from "@pulumi/pulumi";

import { name } from "../config";

export interface PeeringSide {
  region: string;
  provider: aws.Provider;
  vpcId: pulumi.Input<string>;
  cidr: string;
  privateRouteTableId: pulumi.Input<string>;
}

export interface PeeringArgs {
  suffix: string;
  /** The requester: the primary, or for a pair of secondaries the first of them. */
  primary: PeeringSide;
  secondary: PeeringSide;
  /** Names the pair's resources: the accepter's region for a pair with the primary, both regions otherwise. */
  label: string;
}

/**
 * An inter-region VPC peering between two of the stack's VPCs, with a route each way on the
 * private route tables. Every pair of regions is peered: each region's lag-probe writes the
 * heartbeat to the writer and watches every other region's reader, and each region's failover
 * probes the writer, wherever it is (every database admits the other regions' function
 * subnets on 5432; see Network). Requested from one side, accepted in the other:
 * cross-region peerings cannot be auto-accepted by the requester.
 */
export class Peering extends pulumi.ComponentResource {
  readonly connectionId: pulumi.Output<string>;

  constructor(id: string, args: PeeringArgs, opts?: pulumi.ComponentResourceOptions) {
    super("cutover:network:Peering", id, {}, opts);
    const { primary, secondary } = args;
    const n = (type: string) => name(type, args.suffix, args.label);
    const connection = new aws.ec2.VpcPeeringConnection(n("pcx"), {
      vpcId: primary.vpcId,
      peerVpcId: secondary.vpcId,
      peerRegion: secondary.region,
      autoAccept: false,
      tags: { Name: n("pcx") },
    }, { parent: this, provider: primary.provider });
    const accepter = new aws.ec2.VpcPeeringConnectionAccepter(n("pcx-accept"), {
      vpcPeeringConnectionId: connection.id,
      autoAccept: true,
      tags: { Name: n("pcx") },
    }, { parent: this, provider: secondary.provider });
    new aws.ec2.Route(n("route-to-secondary"), {
      routeTableId: primary.privateRouteTableId,
      destinationCidrBlock: secondary.cidr,
      vpcPeeringConnectionId: connection.id,
    }, { parent: this, provider: primary.provider, dependsOn: [accepter] });
    new aws.ec2.Route(n("route-to-primary"), {
      routeTableId: secondary.privateRouteTableId,
      destinationCidrBlock: primary.cidr,
      vpcPeeringConnectionId: accepter.id,
    }, { parent: this, provider: secondary.provider });
    this.connectionId = connection.id;
    this.registerOutputs({ connectionId: this.connectionId });
  }
}
