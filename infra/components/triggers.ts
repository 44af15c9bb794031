import * as aws from "@pulumi/aws";
import * as pulumi from "@pulumi/pulumi";

import { name } from "../config";
import { FunctionName, WatchedAlarms } from "./functions";
import { assumedBy, forwardPolicy, policyJson } from "./iam";

export interface Schedule {
  fn: FunctionName;
  expression: string;
  /** The event the function receives; the scheduled event itself when absent. */
  input?: string;
}

/**
 * When each function runs by itself. One lag-probe, in the primary region, covers every
 * region: it writes the heartbeat to the primary and watches each secondary over the VPC
 * peering, all on its own clock (see README).
 */
export function schedules(validationSchedule: string): Schedule[] {
  return [
    { fn: "lag-probe", expression: "rate(1 minute)" },
    { fn: "data-validator", expression: validationSchedule },
    { fn: "traffic-shifter", expression: "rate(1 minute)", input: JSON.stringify({ command: "tick" }) },
  ];
}

/** "CloudWatch Alarm State Change" into ALARM of the named alarms, from any region of the stack. */
export function alarmPattern(alarmNames: string[]): string {
  return JSON.stringify({
    source: ["aws.cloudwatch"],
    "detail-type": ["CloudWatch Alarm State Change"],
    detail: { alarmName: alarmNames, state: { value: ["ALARM"] } },
  });
}

export interface TriggersArgs {
  suffix: string;
  primaryRegion: string;
  /** The primary first. */
  regions: { region: string; provider: aws.Provider }[];
  functionArns: Record<FunctionName, pulumi.Input<string>>;
  functionNames: Record<FunctionName, pulumi.Input<string>>;
  validationSchedule: string;
  alarms: WatchedAlarms;
  accountId: pulumi.Input<string>;
}

/**
 * EventBridge: the schedules, and the watched alarms' state changes to the traffic-shifter
 * (rollback) and to failover. The secondaries' alarms change state in their own regions, so
 * a rule there forwards this stack's alarm events to the primary region's default bus.
 */
export class Triggers extends pulumi.ComponentResource {
  constructor(id: string, args: TriggersArgs, opts?: pulumi.ComponentResourceOptions) {
    super("cutover:triggers:Triggers", id, {}, opts);
    const primary = args.regions[0];
    const o = { parent: this, provider: primary.provider };
    const n = (type: string) => name(type, args.suffix);
    const invoke = (fn: FunctionName, ruleId: string, rule: aws.cloudwatch.EventRule, input?: string) => {
      new aws.cloudwatch.EventTarget(n(`${ruleId}-target`), { rule: rule.name, arn: args.functionArns[fn], input }, o);
      new aws.lambda.Permission(n(`${ruleId}-invoke`), {
        action: "lambda:InvokeFunction", function: args.functionNames[fn], principal: "events.amazonaws.com", sourceArn: rule.arn,
      }, o);
    };

    for (const s of schedules(args.validationSchedule)) {
      const rule = new aws.cloudwatch.EventRule(n(`schedule-${s.fn}`), { scheduleExpression: s.expression }, o);
      invoke(s.fn, `schedule-${s.fn}`, rule, s.input);
    }

    const routes: [FunctionName, string[]][] = [
      ["traffic-shifter", args.alarms.trafficShifter],
      ["failover", args.alarms.failover],
    ];
    for (const [fn, alarmNames] of routes) {
      const rule = new aws.cloudwatch.EventRule(n(`alarms-to-${fn}`), { eventPattern: alarmPattern(alarmNames) }, o);
      invoke(fn, `alarms-to-${fn}`, rule);
    }

    const primaryBus = pulumi.interpolate`arn:aws:events:${args.primaryRegion}:${args.accountId}:event-bus/default`;
    const watched = [...args.alarms.trafficShifter, ...args.alarms.failover];
    for (const r of args.regions.slice(1)) {
      const ro = { parent: this, provider: r.provider };
      const rn = (type: string) => name(type, args.suffix, r.region);
      const role = new aws.iam.Role(rn("role-alarms-forward"), { assumeRolePolicy: assumedBy("events.amazonaws.com") }, ro);
      new aws.iam.RolePolicy(rn("policy-alarms-forward"), { role: role.id, policy: policyJson(forwardPolicy(primaryBus)) }, ro);
      const rule = new aws.cloudwatch.EventRule(rn("alarms-forward"), { eventPattern: alarmPattern(watched) }, ro);
      new aws.cloudwatch.EventTarget(rn("alarms-forward-target"), { rule: rule.name, arn: primaryBus, roleArn: role.arn }, ro);
    }
    this.registerOutputs({});
  }
}
