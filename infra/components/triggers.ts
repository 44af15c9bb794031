import * as aws from "@pulumi/aws";
import * as pulumi from "@pulumi/pulumi";

import { name } from "../config";
import { FunctionName, WatchedAlarms } from "./functions";
import { assumedBy, forwardPolicy, policyJson } from "./iam";

export interface Schedule {
  fn: FunctionName;
  /** The rule's name when a function has more than one schedule (default: the function's). */
  id?: string;
  expression: string;
  /** The event the function receives; the scheduled event itself when absent. */
  input?: string;
}

/**
 * When each function runs by itself. lag-probe runs in every region, each on its own clock:
 * it writes the heartbeat to the writer (the region SSM `active-region` names) and watches
 * every other region through the peerings, so each region sees the writer from its own
 * vantage point. failover syncs every region's endpoint copies in every region (the recorded move
 * is the truth, so a region that was lost heals by itself). The validator and the shifter run in
 * the primary.
 */
export function schedules(validationSchedule: string): Schedule[] {
  return [
    { fn: "lag-probe", expression: "rate(1 minute)" },
    // Every region's SSM copy of the endpoints made to name the last recorded move's writer: a
    // region lost during a failover heals its own copy within five minutes of coming back.
    { fn: "failover", id: "failover-sync-endpoints", expression: "rate(5 minutes)", input: JSON.stringify({ command: "sync-endpoints" }) },
    { fn: "data-validator", expression: validationSchedule },
    { fn: "traffic-shifter", expression: "rate(1 minute)", input: JSON.stringify({ command: "tick" }) },
    // Every region's listener against the recorded state, finished deployments too: re-asserts and alerts on drift.
    { fn: "traffic-shifter", id: "traffic-shifter-reconcile", expression: "rate(5 minutes)", input: JSON.stringify({ command: "reconcile" }) },
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

export interface RegionalFunctions {
  region: string;
  provider: aws.Provider;
  /** The functions that run in this region (EVERY_REGION, and in the primary all five). */
  functionArns: Partial<Record<FunctionName, pulumi.Input<string>>>;
  functionNames: Partial<Record<FunctionName, pulumi.Input<string>>>;
}

export interface TriggersArgs {
  suffix: string;
  primaryRegion: string;
  /** The primary first. */
  regions: RegionalFunctions[];
  validationSchedule: string;
  alarms: WatchedAlarms;
  accountId: pulumi.Input<string>;
}

/**
 * EventBridge, per region: the schedules of the functions that run there, and the failover
 * alarm's state changes to that region's own failover function (an alarm changes state in its
 * own region, and a region that survives must not need the lost one's bus). In the primary,
 * the watched application alarms go to the traffic-shifter (rollback); the secondaries'
 * application alarms are forwarded to the primary's default bus, where the shifter runs.
 */
export class Triggers extends pulumi.ComponentResource {
  constructor(id: string, args: TriggersArgs, opts?: pulumi.ComponentResourceOptions) {
    super("cutover:triggers:Triggers", id, {}, opts);
    const primaryBus = pulumi.interpolate`arn:aws:events:${args.primaryRegion}:${args.accountId}:event-bus/default`;
    for (const r of args.regions) {
      const isPrimary = r.region === args.primaryRegion;
      const o = { parent: this, provider: r.provider };
      const n = (type: string) => (isPrimary ? name(type, args.suffix) : name(type, args.suffix, r.region));
      const invoke = (fn: FunctionName, ruleId: string, rule: aws.cloudwatch.EventRule, input?: string) => {
        new aws.cloudwatch.EventTarget(n(`${ruleId}-target`), { rule: rule.name, arn: r.functionArns[fn] as pulumi.Input<string>, input }, o);
        new aws.lambda.Permission(n(`${ruleId}-invoke`), {
          action: "lambda:InvokeFunction", function: r.functionNames[fn] as pulumi.Input<string>, principal: "events.amazonaws.com", sourceArn: rule.arn,
        }, o);
      };

      for (const s of schedules(args.validationSchedule).filter((s) => r.functionArns[s.fn] !== undefined)) {
        const id = `schedule-${s.id ?? s.fn}`;
        const rule = new aws.cloudwatch.EventRule(n(id), { scheduleExpression: s.expression }, o);
        invoke(s.fn, id, rule, s.input);
      }

      const failover = new aws.cloudwatch.EventRule(n("alarms-to-failover"), { eventPattern: alarmPattern(args.alarms.failover) }, o);
      invoke("failover", "alarms-to-failover", failover);

      if (isPrimary) {
        const rule = new aws.cloudwatch.EventRule(n("alarms-to-traffic-shifter"), { eventPattern: alarmPattern(args.alarms.trafficShifter) }, o);
        invoke("traffic-shifter", "alarms-to-traffic-shifter", rule);
      } else {
        const role = new aws.iam.Role(n("role-alarms-forward"), { assumeRolePolicy: assumedBy("events.amazonaws.com") }, o);
        new aws.iam.RolePolicy(n("policy-alarms-forward"), { role: role.id, policy: policyJson(forwardPolicy(primaryBus)) }, o);
        const rule = new aws.cloudwatch.EventRule(n("alarms-forward"), { eventPattern: alarmPattern(args.alarms.trafficShifter) }, o);
        new aws.cloudwatch.EventTarget(n("alarms-forward-target"), { rule: rule.name, arn: primaryBus, roleArn: role.arn }, o);
      }
    }
    this.registerOutputs({});
  }
}
