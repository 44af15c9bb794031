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
  primary: PeeringSide;
  secondary: PeeringSide;
}

/**
 * An inter-region VPC peering between the primary VPC and one secondary VPC, with a route
 * each way on the private route tables. lag-probe runs in the primary region and watches
 * every secondary's reader endpoint through it (the secondary's database admits the primary's
 * function subnets on 5432; see Network). Requested from the primary, accepted in the
 * secondary: cross-region peerings cannot be auto-accepted by the requester.
 */
export class Peering extends pulumi.ComponentResource {
  readonly connectionId: pulumi.Output<string>;

  constructor(id: string, args: PeeringArgs, opts?: pulumi.ComponentResourceOptions) {
    super("cutover:network:Peering", id, {}, opts);
    const { primary, secondary } = args;
    const n = (type: string) => name(type, args.suffix, secondary.region);
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
