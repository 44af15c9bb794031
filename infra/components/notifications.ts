import * as aws from "@pulumi/aws";
import * as pulumi from "@pulumi/pulumi";

import { name } from "../config";

/**
 * The one statement of a key policy that grants `kms:*`: the account root, which hands the
 * key's administration to IAM policies (AWS's default key policy; without it the key becomes
 * unmanageable). Every other statement names its actions.
 */
export const KEY_POLICY_ROOT_SID = "AccountAdministersThroughIam";

/** Who publishes to a region's ops topic besides this stack's own roles. */
export interface TopicPublishers {
  region: string;
  accountId: string;
  suffix: string;
  /** EventBridge rules of this stack target the topic (the DMS task-failure rule). */
  eventBridge: boolean;
}

/** The ARN pattern of this stack's alarms in a region: every alarm name ends in `-<suffix>`. */
export function stackAlarmArns(p: TopicPublishers): string {
  return `arn:aws:cloudwatch:${p.region}:${p.accountId}:alarm:*-${p.suffix}`;
}

/**
 * The SNS key's policy: the account through IAM; CloudWatch may encrypt for this stack's
 * alarms only (aws:SourceAccount and aws:SourceArn, which CloudWatch's KMS calls carry);
 * EventBridge, when a rule publishes, without those keys: AWS documents that they are not
 * supported in a KMS key policy for EventBridge-to-encrypted-topic delivery (the request does
 * not carry them, so the condition would drop every event). The topic policy scopes
 * EventBridge instead.
 */
export function snsKeyPolicy(p: TopicPublishers): string {
  const statements: Record<string, unknown>[] = [
    { Sid: KEY_POLICY_ROOT_SID, Effect: "Allow", Principal: { AWS: `arn:aws:iam::${p.accountId}:root` }, Action: "kms:*", Resource: "*" },
    {
      Sid: "AlarmsEncryptNotifications",
      Effect: "Allow",
      Principal: { Service: "cloudwatch.amazonaws.com" },
      Action: ["kms:Decrypt", "kms:GenerateDataKey"],
      Resource: "*",
      Condition: { StringEquals: { "aws:SourceAccount": p.accountId }, ArnLike: { "aws:SourceArn": stackAlarmArns(p) } },
    },
  ];
  if (p.eventBridge) {
    statements.push({
      Sid: "EventRulesEncryptNotifications",
      Effect: "Allow",
      Principal: { Service: "events.amazonaws.com" },
      Action: ["kms:Decrypt", "kms:GenerateDataKey"],
      Resource: "*",
    });
  }
  return JSON.stringify({ Version: "2012-10-17", Statement: statements });
}

/**
 * The ops topic's policy. It replaces SNS's default policy, so it names every service that
 * publishes: CloudWatch, for this stack's alarms in this region (ALARM and OK actions), and
 * EventBridge rules of this account and region when one targets the topic. The stack's own
 * roles publish through their IAM policies (same account).
 */
export function opsTopicPolicy(topicArn: string, p: TopicPublishers): string {
  const statements: Record<string, unknown>[] = [{
    Sid: "AlarmsPublish",
    Effect: "Allow",
    Principal: { Service: "cloudwatch.amazonaws.com" },
    Action: "sns:Publish",
    Resource: topicArn,
    Condition: { StringEquals: { "aws:SourceAccount": p.accountId }, ArnLike: { "aws:SourceArn": stackAlarmArns(p) } },
  }];
  if (p.eventBridge) {
    statements.push({
      Sid: "EventRulesPublish",
      Effect: "Allow",
      Principal: { Service: "events.amazonaws.com" },
      Action: "sns:Publish",
      Resource: topicArn,
      Condition: {
        StringEquals: { "aws:SourceAccount": p.accountId },
        ArnLike: { "aws:SourceArn": `arn:aws:events:${p.region}:${p.accountId}:rule/*` },
      },
    });
  }
  return JSON.stringify({ Version: "2012-10-17", Statement: statements });
}

export interface RegionalTopicInput {
  region: string;
  provider: aws.Provider;
  /** An EventBridge rule in this region publishes to the ops topic. */
  eventBridgePublishes: boolean;
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
      const publishers = (accountId: string): TopicPublishers => ({
        region: r.region, accountId, suffix: args.suffix, eventBridge: r.eventBridgePublishes,
      });
      const key = new aws.kms.Key(n("kms-sns"), {
        description: `cutover SNS topics, ${r.region}`,
        enableKeyRotation: true,
        deletionWindowInDays: 7,
        policy: pulumi.output(args.accountId).apply((accountId) => snsKeyPolicy(publishers(accountId))),
      }, o);
      const topic = (kind: string) => new aws.sns.Topic(n(`sns-${kind}`), { name: n(`cutover-${kind}`), kmsMasterKeyId: key.id }, o);
      const ops = topic("ops");
      new aws.sns.TopicPolicy(n("sns-ops-policy"), {
        arn: ops.arn,
        policy: pulumi.all([ops.arn, args.accountId]).apply(([arn, accountId]) => opsTopicPolicy(arn, publishers(accountId))),
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
