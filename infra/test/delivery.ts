// Who may deliver a notification: every alarm action and every EventBridge rule that targets a
// topic, followed to the topic's policy and its KMS key's policy, evaluated for the condition
// keys the service's request carries. Unknown condition operators fail loudly.
import assert from "node:assert/strict";

import { ofType, Recorded } from "./mocks";

export const ACCOUNT = "123456789012";

type Statement = {
  Sid?: string;
  Effect: string;
  Principal?: { Service?: string | string[]; AWS?: string | string[] };
  Action: string | string[];
  Resource: string | string[];
  Condition?: Record<string, Record<string, string | string[]>>;
};

const list = (v: string | string[] | undefined): string[] => (v === undefined ? [] : Array.isArray(v) ? v : [v]);
const glob = (pattern: string, value: string) =>
  new RegExp(`^${pattern.split("*").map((part) => part.replace(/[.+?^${}()|[\]\\]/g, "\\$&")).join(".*")}$`).test(value);

const OPERATORS: Record<string, (pattern: string, value: string) => boolean> = {
  StringEquals: (p, v) => p === v,
  ArnEquals: (p, v) => p === v,
  StringLike: glob,
  ArnLike: glob,
};

type Context = Record<string, string | string[]>;

function matches(st: Statement, action: string, resource: string, context: Context): boolean {
  if (st.Effect !== "Allow") return false;
  if (!list(st.Action).some((a) => glob(a, action)) || !list(st.Resource).some((r) => glob(r, resource))) return false;
  return Object.entries(st.Condition ?? {}).every(([operator, keys]) => {
    const forAll = operator.startsWith("ForAllValues:");
    const test = OPERATORS[operator.replace(/^ForAllValues:/, "")];
    if (test === undefined) throw new Error(`${st.Sid}: condition operator ${operator} is not modelled by this test`);
    return Object.entries(keys).every(([key, patterns]) => {
      const value = context[key];
      if (value === undefined) return false;
      const ok = (v: string) => list(patterns).some((p) => test(p, v));
      return forAll ? list(value).every(ok) : !Array.isArray(value) && ok(value);
    });
  });
}

/** Whether a resource policy allows `service` to call `action` on `resource`, given the condition keys its request carries. */
export function allows(doc: { Statement: Statement[] }, service: string, action: string, resource: string, context: Context): boolean {
  return doc.Statement.some((st) => list(st.Principal?.Service).includes(service) && matches(st, action, resource, context));
}

/** Whether an identity policy grants `action` on `resource`, given the condition keys of the request. */
export function grants(doc: { Statement: object[] }, action: string, resource: string, context: Context = {}): boolean {
  return (doc.Statement as Statement[]).some((st) => matches(st, action, resource, context));
}

/** The mocks' ARN of a recorded resource. */
export const arnOf = (r: Recorded) => `arn:aws:mock:${r.region}:${ACCOUNT}:${r.type}/${r.name}`;

interface Delivery {
  topic: Recorded;
  topicPolicy: { Statement: Statement[] };
  keyPolicy: { Statement: Statement[] };
}

function delivery(topicArn: string, from: string): Delivery {
  const topic = ofType("aws:sns/topic:Topic").find((t) => arnOf(t) === topicArn);
  assert.ok(topic, `${from}: ${topicArn} is a topic of this stack`);
  const policy = ofType("aws:sns/topicPolicy:TopicPolicy").find((p) => p.inputs.arn === topicArn);
  assert.ok(policy, `${from}: ${topic.name} has a topic policy (SNS's default admits only the account's own principals)`);
  const key = ofType("aws:kms/key:Key").find((k) => `${k.name}-id` === topic.inputs.kmsMasterKeyId);
  assert.ok(key?.inputs.policy, `${from}: ${topic.name}'s key has a policy`);
  return { topic, topicPolicy: JSON.parse(policy.inputs.policy), keyPolicy: JSON.parse(key.inputs.policy) };
}

/**
 * Every alarm action (ALARM and OK) reaches its topic: the topic policy lets CloudWatch publish
 * for that alarm, and the topic's key lets CloudWatch encrypt for it. Returns how many were walked.
 */
export function checkAlarmDelivery(): number {
  let walked = 0;
  for (const alarm of ofType("aws:cloudwatch/metricAlarm:MetricAlarm")) {
    const context = { "aws:SourceAccount": ACCOUNT, "aws:SourceArn": `arn:aws:cloudwatch:${alarm.region}:${ACCOUNT}:alarm:${alarm.inputs.name}` };
    for (const topicArn of [...(alarm.inputs.alarmActions ?? []), ...(alarm.inputs.okActions ?? [])] as string[]) {
      const d = delivery(topicArn, alarm.name);
      assert.equal(d.topic.region, alarm.region, `${alarm.name}: a topic of its own region`);
      assert.ok(allows(d.topicPolicy, "cloudwatch.amazonaws.com", "sns:Publish", topicArn, context), `${alarm.name}: CloudWatch may publish to ${d.topic.name}`);
      for (const action of ["kms:GenerateDataKey", "kms:Decrypt"]) {
        assert.ok(allows(d.keyPolicy, "cloudwatch.amazonaws.com", action, "*", context), `${alarm.name}: CloudWatch may ${action} with ${d.topic.name}'s key`);
      }
      assert.ok(!allows(d.topicPolicy, "cloudwatch.amazonaws.com", "sns:Publish", topicArn, { ...context, "aws:SourceAccount": "999999999999" }), "another account's alarms may not");
      walked++;
    }
  }
  return walked;
}

/**
 * Every EventBridge rule that targets a topic reaches it: the topic policy admits the rule
 * (aws:SourceAccount and aws:SourceArn are carried to SNS), and the key admits EventBridge
 * with no source keys at all (AWS: not carried in EventBridge's KMS requests). Returns how many.
 */
export function checkEventDelivery(): number {
  let walked = 0;
  for (const target of ofType("aws:cloudwatch/eventTarget:EventTarget").filter((t) => String(t.inputs.arn).includes(":aws:sns/topic:Topic/"))) {
    const rule = ofType("aws:cloudwatch/eventRule:EventRule").find((r) => r.name === target.inputs.rule);
    assert.ok(rule, `${target.name}: its rule`);
    const d = delivery(target.inputs.arn, target.name);
    const context = { "aws:SourceAccount": ACCOUNT, "aws:SourceArn": `arn:aws:events:${rule.region}:${ACCOUNT}:rule/${rule.name}` };
    assert.ok(allows(d.topicPolicy, "events.amazonaws.com", "sns:Publish", target.inputs.arn, context), `${rule.name}: EventBridge may publish to ${d.topic.name}`);
    for (const action of ["kms:GenerateDataKey", "kms:Decrypt"]) {
      assert.ok(allows(d.keyPolicy, "events.amazonaws.com", action, "*", {}), `${rule.name}: EventBridge may ${action} with ${d.topic.name}'s key`);
    }
    walked++;
  }
  return walked;
}
