import * as aws from "@pulumi/aws";
import * as pulumi from "@pulumi/pulumi";

import { name } from "../config";
import { assumedBy, policyJson, runbookPolicy } from "./iam";

export interface RunbookTargets {
  validatorArn: string;
  shifterArn: string;
  table: string;
  opsTopicArn: string;
}

/** How the runbook shifts: the traffic-shifter's own plan names (events/traffic-shifter/). */
export const SHIFT = { plan: "canary-10-5m", scope: "region-by-region", regionBake: "15m", pollSeconds: 60 };

type State = Record<string, unknown>;

const RETRYABLE = [{ ErrorEquals: ["Retryable", "Lambda.TooManyRequestsException", "Lambda.ServiceException"], IntervalSeconds: 5, MaxAttempts: 3, BackoffRate: 2 }];

function invoke(fn: string, payload: Record<string, unknown>, next: string, onFailure: string): State {
  return {
    Type: "Task",
    Resource: "arn:aws:states:::lambda:invoke",
    Parameters: { FunctionName: fn, Payload: payload },
    OutputPath: "$.Payload",
    Retry: RETRYABLE,
    Catch: [{ ErrorEquals: ["States.ALL"], ResultPath: "$.error", Next: onFailure }],
    Next: next,
  };
}

/** plan -> validate-segment over every segment (Map) -> merge -> MATCH or `onFailure`. */
function validation(prefix: string, validator: string, next: string, onFailure: string): Record<string, State> {
  return {
    [`${prefix}Plan`]: invoke(validator, { command: "plan" }, `${prefix}Segments`, onFailure),
    [`${prefix}Segments`]: {
      Type: "Map",
      ItemsPath: "$.segments",
      MaxConcurrency: 8,
      ItemProcessor: {
        ProcessorConfig: { Mode: "INLINE" },
        StartAt: "ValidateSegment",
        States: {
          ValidateSegment: {
            Type: "Task",
            Resource: "arn:aws:states:::lambda:invoke",
            Parameters: {
              FunctionName: validator,
              Payload: { "command": "validate-segment", "run_id.$": "$.run_id", "table.$": "$.table", "segment.$": "$.segment" },
            },
            Retry: RETRYABLE,
            End: true,
          },
        },
      },
      // Keep the plan's output (its run_id) for the merge.
      ResultPath: null,
      Catch: [{ ErrorEquals: ["States.ALL"], ResultPath: "$.error", Next: onFailure }],
      Next: `${prefix}Merge`,
    },
    [`${prefix}Merge`]: invoke(validator, { "command": "merge", "run_id.$": "$.run_id" }, `${prefix}Verdict`, onFailure),
    [`${prefix}Verdict`]: {
      Type: "Choice",
      // MATCH_WITH_FINDINGS: the rows are equal; the schemas differ in reported ways
      // (a widened type, a nullability change) or rows were still in flight under CDC.
      Choices: [
        { Variable: "$.verdict", StringEquals: "MATCH", Next: next },
        { Variable: "$.verdict", StringEquals: "MATCH_WITH_FINDINGS", Next: next },
      ],
      Default: onFailure,
    },
  };
}

/** `MIGRATION` / `PHASE` moved to `phase`, its version bumped so that stale conditional writers lose. */
function recordPhase(table: string, phase: string, next: string | undefined, onFailure: string): State {
  return {
    Type: "Task",
    QueryLanguage: "JSONata",
    Resource: "arn:aws:states:::dynamodb:updateItem",
    Arguments: {
      TableName: table,
      Key: { pk: { S: "MIGRATION" }, sk: { S: "PHASE" } },
      UpdateExpression: "SET #phase = :phase, #by = :by, #at = :at, #updated = :at ADD #version :one",
      ExpressionAttributeNames: { "#phase": "phase", "#by": "changed_by", "#at": "changed_at_ms", "#updated": "updated_at_ms", "#version": "version" },
      ExpressionAttributeValues: {
        ":phase": { S: phase },
        ":by": { S: "{% 'runbook:' & $states.context.Execution.Name %}" },
        ":at": { N: "{% $string($millis()) %}" },
        ":one": { N: "1" },
      },
    },
    // JSONata states keep their input with Output; the shifter's outcome travels on.
    Output: "{% $states.input %}",
    Catch: [{ ErrorEquals: ["States.ALL"], Next: onFailure }],
    ...(next === undefined ? { End: true } : { Next: next }),
  };
}

/**
 * The phased cutover: validate -> record "cutover" -> shift region by region (the shifter's
 * region-by-region plan, with a bake between regions; the runbook ticks and waits) ->
 * validate -> record "done". A failure before the shift notifies; a failure during or after
 * it aborts the shift (100 % blue) and notifies. Validation is fanned out: plan, a Map of
 * validate-segment invocations, merge.
 */
export function runbookDefinition(t: RunbookTargets): string {
  const choice = (variable: string, value: string, next: string) => ({
    And: [{ Variable: variable, IsPresent: true }, { Variable: variable, StringEquals: value }],
    Next: next,
  });
  return JSON.stringify({
    Comment: "cutover runbook: validate, shift traffic region by region with a bake, validate, record the phase; failures abort the shift and notify",
    StartAt: "PreValidatePlan",
    States: {
      ...validation("PreValidate", t.validatorArn, "RecordCutover", "Notify"),
      RecordCutover: recordPhase(t.table, "cutover", "StartShift", "Notify"),
      StartShift: invoke(t.shifterArn, {
        command: "start", plan: SHIFT.plan, scope: SHIFT.scope, region_bake: SHIFT.regionBake, on_gate_failure: "rollback",
      }, "Bake", "AbortShift"),
      Bake: { Type: "Wait", Seconds: SHIFT.pollSeconds, Next: "Tick" },
      Tick: invoke(t.shifterArn, { command: "tick" }, "ShiftState", "AbortShift"),
      ShiftState: {
        Type: "Choice",
        Choices: [
          choice("$.deployment.status", "succeeded", "PostValidatePlan"),
          choice("$.deployment.status", "running", "Bake"),
        ],
        // rolled-back, aborted, paused, or no deployment at all
        Default: "AbortShift",
      },
      ...validation("PostValidate", t.validatorArn, "RecordDone", "AbortShift"),
      RecordDone: recordPhase(t.table, "done", undefined, "Notify"),
      AbortShift: {
        ...invoke(t.shifterArn, { command: "abort", reason: "the cutover runbook failed a step" }, "Notify", "Notify"),
        // Whatever abort says, the operators hear about it; keep the first error.
        OutputPath: "$",
        ResultPath: "$.abort",
        Catch: [{ ErrorEquals: ["States.ALL"], ResultPath: "$.abortError", Next: "Notify" }],
      },
      Notify: {
        Type: "Task",
        Resource: "arn:aws:states:::sns:publish",
        Parameters: {
          TopicArn: t.opsTopicArn,
          Subject: "cutover runbook stopped",
          "Message.$": "States.JsonToString($)",
          MessageAttributes: {
            event_type: { DataType: "String", StringValue: "runbook-aborted" },
            severity: { DataType: "String", StringValue: "critical" },
          },
        },
        ResultPath: null,
        Catch: [{ ErrorEquals: ["States.ALL"], Next: "Aborted" }],
        Next: "Aborted",
      },
      Aborted: { Type: "Fail", Error: "CutoverAborted", Cause: "a validation or shift step failed; the shift was aborted and the ops topic told" },
    },
  });
}

export interface RunbookArgs {
  suffix: string;
  provider: aws.Provider;
  validatorArn: pulumi.Input<string>;
  shifterArn: pulumi.Input<string>;
  stateTableArn: pulumi.Input<string>;
  stateTableName: pulumi.Input<string>;
  opsTopicArn: pulumi.Input<string>;
  snsKeyArn: pulumi.Input<string>;
}

/** The runbook state machine and its role (invoke two functions, update one item, publish to one topic). */
export class Runbook extends pulumi.ComponentResource {
  readonly stateMachineArn: pulumi.Output<string>;

  constructor(id: string, args: RunbookArgs, opts?: pulumi.ComponentResourceOptions) {
    super("cutover:runbook:Runbook", id, {}, opts);
    const o = { parent: this, provider: args.provider };
    const n = (type: string) => name(type, args.suffix);
    const role = new aws.iam.Role(n("role-runbook"), { assumeRolePolicy: assumedBy("states.amazonaws.com") }, o);
    const policy = new aws.iam.RolePolicy(n("policy-runbook"), {
      role: role.id,
      policy: policyJson(runbookPolicy({
        functionArns: [args.validatorArn, args.shifterArn],
        stateTableArn: args.stateTableArn,
        opsTopicArn: args.opsTopicArn,
        snsKeyArn: args.snsKeyArn,
      })),
    }, o);
    const machine = new aws.sfn.StateMachine(n("runbook"), {
      name: n("cutover-runbook"),
      roleArn: role.arn,
      definition: pulumi.all([args.validatorArn, args.shifterArn, args.stateTableName, args.opsTopicArn])
        .apply(([validatorArn, shifterArn, table, opsTopicArn]) => runbookDefinition({ validatorArn, shifterArn, table, opsTopicArn })),
    }, { ...o, dependsOn: [policy] });
    this.stateMachineArn = machine.arn;
    this.registerOutputs({ stateMachineArn: this.stateMachineArn });
  }
}
