import { readFileSync } from "node:fs";

import * as aws from "@pulumi/aws";
import * as pulumi from "@pulumi/pulumi";

import { name } from "../config";
import { assumedBy } from "./iam";

export interface MigrationArgs {
  suffix: string;
  region: string;
  provider: aws.Provider;
  createDms: boolean;
  createVpn: boolean;
  /** Create the account-wide `dms-vpc-role` (it must not exist yet). */
  createDmsVpcRole: boolean;
  /** With createDms: the reverse task, Aurora -> Oracle, CDC only, created stopped. */
  reverseDms: boolean;
  vpcId: pulumi.Input<string>;
  privateSubnetIds: pulumi.Input<string>[];
  privateRouteTableId: pulumi.Input<string>;
  /** DMS's own security group (with createDms). */
  securityGroupId?: pulumi.Input<string>;
  oracleEndpoint: string;
  oraclePort: number;
  oracleServiceName: string;
  /** `verify-ca`: TCPS to Oracle, its listener's CA read from the wallet in oracleCaWalletFile. */
  oracleSslMode: "verify-ca" | "none";
  /** An auto-login Oracle wallet (.sso): DMS takes an Oracle endpoint's certificate as a wallet, not a PEM. */
  oracleCaWalletFile?: string;
  /** The RDS CA bundle (PEM file) the Aurora target is verified with (verify-full). */
  targetCaBundleFile: string;
  /** The Aurora writer this task loads into, and its credentials. */
  targetEndpoint: pulumi.Input<string>;
  targetDatabase: string;
  targetUsername: string;
  targetPassword: pulumi.Input<string>;
  customerGatewayIp: string;
  onPremCidr: string;
}

/** DMS table mappings: every table of every schema but Oracle's own. */
export function tableMappings(): string {
  return JSON.stringify({
    rules: [
      {
        "rule-type": "selection",
        "rule-id": "1",
        "rule-name": "all-application-schemas",
        "object-locator": { "schema-name": "%", "table-name": "%" },
        "rule-action": "include",
      },
      ...["SYS", "SYSTEM", "OUTLN", "XDB", "MDSYS", "CTXSYS"].map((schema, i) => ({
        "rule-type": "selection",
        "rule-id": String(i + 2),
        "rule-name": `exclude-${schema.toLowerCase()}`,
        "object-locator": { "schema-name": schema, "table-name": "%" },
        "rule-action": "exclude",
      })),
    ],
  });
}

/**
 * The reverse task's mappings (Aurora -> Oracle): every schema DMS carried forward, none of
 * PostgreSQL's own, and not `cutover` (lag-probe's heartbeat lives only on Aurora).
 */
export function reverseTableMappings(): string {
  return JSON.stringify({
    rules: [
      {
        "rule-type": "selection",
        "rule-id": "1",
        "rule-name": "all-application-schemas",
        "object-locator": { "schema-name": "%", "table-name": "%" },
        "rule-action": "include",
      },
      ...["pg_catalog", "information_schema", "cutover"].map((schema, i) => ({
        "rule-type": "selection",
        "rule-id": String(i + 2),
        "rule-name": `exclude-${schema.replace(/_/g, "-")}`,
        "object-locator": { "schema-name": schema, "table-name": "%" },
        "rule-action": "exclude",
      })),
    ],
  });
}

/**
 * The reverse task's settings: the Oracle tables exist and hold the data; DMS must never
 * drop or truncate them (CDC only applies changes, this makes it explicit).
 */
export function reverseTaskSettings(): string {
  return JSON.stringify({ FullLoadSettings: { TargetTablePrepMode: "DO_NOTHING" } });
}

/**
 * The way in from on-premises, both optional: DMS (replication instance, Oracle source,
 * Aurora target, a full-load-and-CDC task) when `createDms`; a site-to-site VPN (customer
 * gateway, virtual private gateway on the primary VPC, connection and static route) when
 * `createVpn`.
 */
export class Migration extends pulumi.ComponentResource {
  readonly replicationTaskArn?: pulumi.Output<string>;
  /** The reverse task (Aurora -> Oracle), with reverseDms. */
  readonly reverseReplicationTaskArn?: pulumi.Output<string>;
  readonly vpnConnectionId?: pulumi.Output<string>;

  constructor(id: string, args: MigrationArgs, opts?: pulumi.ComponentResourceOptions) {
    super("cutover:migration:Migration", id, {}, opts);
    const o = { parent: this, provider: args.provider };
    const n = (type: string) => name(type, args.suffix);

    if (args.createDms) {
      const oraclePassword = aws.ssm.getParameterOutput(
        { name: `/migration/db/${args.suffix}/oracle-password`, withDecryption: true },
        { parent: this, provider: args.provider },
      );
      // DMS looks for a role of exactly this name, once per account, to manage its network
      // interfaces; the console creates it on first use, an API-only account has none.
      const vpcRole = args.createDmsVpcRole
        ? [new aws.iam.RolePolicyAttachment(n("dms-vpc-role-policy"), {
          role: new aws.iam.Role(n("dms-vpc-role"), { name: "dms-vpc-role", assumeRolePolicy: assumedBy("dms.amazonaws.com") }, o).name,
          policyArn: "arn:aws:iam::aws:policy/service-role/AmazonDMSVPCManagementRole",
        }, o)]
        : [];
      // A PEM for PostgreSQL; for Oracle a wallet, its bytes base64 (ImportCertificate's CertificateWallet).
      const certificate = (id: string, file: string, form: "pem" | "wallet") => new aws.dms.Certificate(n(id), {
        certificateId: n(id),
        ...(form === "pem" ? { certificatePem: readFileSync(file, "utf8") } : { certificateWallet: readFileSync(file).toString("base64") }),
      }, o);
      const subnets = new aws.dms.ReplicationSubnetGroup(n("dms-subnets"), {
        replicationSubnetGroupId: n("dms-subnets"),
        replicationSubnetGroupDescription: "cutover DMS, private subnets of the primary region",
        subnetIds: args.privateSubnetIds,
      }, { ...o, dependsOn: vpcRole });
      const instance = new aws.dms.ReplicationInstance(n("dms"), {
        replicationInstanceId: n("dms"),
        replicationInstanceClass: "dms.t3.medium",
        allocatedStorage: 50,
        multiAz: false,
        publiclyAccessible: false,
        replicationSubnetGroupId: subnets.id,
        vpcSecurityGroupIds: [args.securityGroupId as pulumi.Input<string>],
        applyImmediately: true,
      }, o);
      const oracleCertificateArn = args.oracleSslMode === "verify-ca"
        ? certificate("dms-cert-oracle", args.oracleCaWalletFile as string, "wallet").certificateArn
        : undefined;
      const rdsCertificateArn = certificate("dms-cert-rds", args.targetCaBundleFile, "pem").certificateArn;
      // The Oracle side, as the forward source and (reverseDms) the reverse target.
      const oracle = (id: string, endpointType: "source" | "target") => new aws.dms.Endpoint(n(id), {
        endpointId: n(id),
        endpointType,
        engineName: "oracle",
        serverName: args.oracleEndpoint,
        port: args.oraclePort,
        databaseName: args.oracleServiceName,
        username: "cutover_dms",
        password: oraclePassword.value,
        // TCPS, the server's certificate checked against the configured CA (DMS offers
        // verify-ca for Oracle, not verify-full); `none` only when configured so.
        sslMode: args.oracleSslMode,
        certificateArn: oracleCertificateArn,
      }, o);
      // The Aurora writer, as the forward target and (reverseDms) the reverse source.
      const aurora = (id: string, endpointType: "source" | "target") => new aws.dms.Endpoint(n(id), {
        endpointId: n(id),
        endpointType,
        engineName: "aurora-postgresql",
        serverName: args.targetEndpoint,
        port: 5432,
        databaseName: args.targetDatabase,
        username: args.targetUsername,
        password: args.targetPassword,
        // The writer's name and chain checked against the RDS CA bundle.
        sslMode: "verify-full",
        certificateArn: rdsCertificateArn,
      }, o);
      const source = oracle("dms-source-oracle", "source");
      const target = aurora("dms-target-aurora", "target");
      const task = new aws.dms.ReplicationTask(n("dms-task"), {
        replicationTaskId: n("dms-task"),
        migrationType: "full-load-and-cdc",
        replicationInstanceArn: instance.replicationInstanceArn,
        sourceEndpointArn: source.endpointArn,
        targetEndpointArn: target.endpointArn,
        tableMappings: tableMappings(),
        startReplicationTask: false,
      }, o);
      this.replicationTaskArn = task.replicationTaskArn;

      if (args.reverseDms) {
        // The fallback after the switch: Aurora's changes back to Oracle. Created stopped:
        // it must start at the switch (see README, Reverse replication), never before.
        const reverse = new aws.dms.ReplicationTask(n("dms-reverse-task"), {
          replicationTaskId: n("dms-reverse-task"),
          migrationType: "cdc",
          replicationInstanceArn: instance.replicationInstanceArn,
          sourceEndpointArn: aurora("dms-reverse-source-aurora", "source").endpointArn,
          targetEndpointArn: oracle("dms-reverse-target-oracle", "target").endpointArn,
          tableMappings: reverseTableMappings(),
          replicationTaskSettings: reverseTaskSettings(),
          startReplicationTask: false,
        }, o);
        this.reverseReplicationTaskArn = reverse.replicationTaskArn;
      }
    }

    if (args.createVpn) {
      const cgw = new aws.ec2.CustomerGateway(n("cgw"), {
        bgpAsn: "65000",
        ipAddress: args.customerGatewayIp,
        type: "ipsec.1",
        tags: { Name: n("cgw") },
      }, o);
      const vgw = new aws.ec2.VpnGateway(n("vgw"), { vpcId: args.vpcId, tags: { Name: n("vgw") } }, o);
      const vpn = new aws.ec2.VpnConnection(n("vpn"), {
        customerGatewayId: cgw.id,
        vpnGatewayId: vgw.id,
        type: "ipsec.1",
        staticRoutesOnly: true,
        tags: { Name: n("vpn") },
      }, o);
      new aws.ec2.VpnConnectionRoute(n("vpn-route"), {
        vpnConnectionId: vpn.id,
        destinationCidrBlock: args.onPremCidr,
      }, o);
      new aws.ec2.VpnGatewayRoutePropagation(n("vpn-propagation"), {
        vpnGatewayId: vgw.id,
        routeTableId: args.privateRouteTableId,
      }, o);
      this.vpnConnectionId = vpn.id;
    }
    this.registerOutputs({});
  }
}
