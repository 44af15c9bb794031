import * as aws from "@pulumi/aws";
import * as pulumi from "@pulumi/pulumi";

import { name } from "../config";

/**
 * The one statement of a key policy that grants `kms:*`: the account root, which hands the
 * key's administration to IAM policies (AWS's default key policy; without it the key becomes
 * unmanageable). Every other statement names its actions.
 */
export const KEY_POLICY_ROOT_SID = "AccountAdministersThroughIam";

/** The SNS key's policy: the account through IAM; CloudWatch and EventBridge may encrypt to the topics. */
export function snsKeyPolicy(accountId: string): string {
  return JSON.stringify({
    Version: "2012-10-17",
    Statement: [
      { Sid: KEY_POLICY_ROOT_SID, Effect: "Allow", Principal: { AWS: `arn:aws:iam::${accountId}:root` }, Action: "kms:*", Resource: "*" },
      {
        Sid: "AlarmsAndEventsPublish",
        Effect: "Allow",
        Principal: { Service: ["cloudwatch.amazonaws.com", "events.amazonaws.com"] },
        Action: ["kms:Decrypt", "kms:GenerateDataKey"],
        Resource: "*",
        Condition: { StringEquals: { "aws:SourceAccount": accountId } },
      },
    ],
  });
}

/** The ops topic's policy: EventBridge rules of this account (DMS task failures) may publish. */
export function eventsTopicPolicy(topicArn: string, accountId: string): string {
  return JSON.stringify({
    Version: "2012-10-17",
    Statement: [{
      Sid: "EventBridgePublishes",
      Effect: "Allow",
      Principal: { Service: "events.amazonaws.com" },
      Action: "sns:Publish",
      Resource: topicArn,
      Condition: { StringEquals: { "aws:SourceAccount": accountId } },
    }],
  });
}

export interface RegionalTopicInput {
  region: string;
  provider: aws.Provider;
}

export interface NotificationsArgs {
  suffix: string;
  accountId: pulumi.Input<string>;
  /** The primary first. */
  regions: RegionalTopicInput[];
  alertEmail?: string;
}

export interface RegionalTopic {
  region: string;
  opsTopicArn: pulumi.Output<string>;
  keyArn: pulumi.Output<string>;
}

/**
 * SNS, KMS-encrypted: an ops topic in every region (a CloudWatch alarm can only notify a
 * topic of its own region) and the validation topic in the primary. With `alertEmail`, an
 * e-mail subscription to every ops topic and to the validation topic.
 */
export class Notifications extends pulumi.ComponentResource {
  readonly regions: RegionalTopic[] = [];
  readonly validationTopicArn: pulumi.Output<string>;

  constructor(id: string, args: NotificationsArgs, opts?: pulumi.ComponentResourceOptions) {
    super("cutover:notifications:Notifications", id, {}, opts);
    let validation: aws.sns.Topic | undefined;
    args.regions.forEach((r, i) => {
      const o = { parent: this, provider: r.provider };
      const n = (type: string) => (i === 0 ? name(type, args.suffix) : name(type, args.suffix, r.region));
      const key = new aws.kms.Key(n("kms-sns"), {
        description: `cutover SNS topics, ${r.region}`,
        enableKeyRotation: true,
        deletionWindowInDays: 7,
        policy: pulumi.output(args.accountId).apply(snsKeyPolicy),
      }, o);
      const topic = (kind: string) => new aws.sns.Topic(n(`sns-${kind}`), { name: n(`cutover-${kind}`), kmsMasterKeyId: key.id }, o);
      const ops = topic("ops");
      new aws.sns.TopicPolicy(n("sns-ops-policy"), {
        arn: ops.arn,
        policy: pulumi.all([ops.arn, args.accountId]).apply(([arn, account]) => eventsTopicPolicy(arn, account)),
      }, o);
      const subscribed: [string, aws.sns.Topic][] = [["ops", ops]];
      if (i === 0) {
        validation = topic("validation");
        subscribed.push(["validation", validation]);
      }
      if (args.alertEmail !== undefined) {
        for (const [kind, t] of subscribed) {
          new aws.sns.TopicSubscription(n(`sns-${kind}-email`), { topic: t.arn, protocol: "email", endpoint: args.alertEmail }, o);
        }
      }
      this.regions.push({ region: r.region, opsTopicArn: ops.arn, keyArn: key.arn });
    });
    this.validationTopicArn = (validation as aws.sns.Topic).arn;
    this.registerOutputs({ opsTopicArns: this.regions.map((r) => r.opsTopicArn), validationTopicArn: this.validationTopicArn });
  }
}
