import * as aws from "@pulumi/aws";
import * as pulumi from "@pulumi/pulumi";

import { name } from "../config";
import { STABLE_WATCH_MS } from "./functions";
import { assumedBy, policyJson, runbookPolicy, validationMachinePolicy } from "./iam";

export interface RunbookTargets {
  validatorArn: string;
  cutoverArn: string;
  shifterArn: string;
  opsTopicArn: string;
}

/** How the runbook shifts: the traffic-shifter's own plan names (events/traffic-shifter/). */
export const SHIFT = { plan: "canary-10-5m", scope: "region-by-region", regionBake: "15m", pollSeconds: 60 };

/** The cutover's phases, in order (shared/src/state.rs `Phase`). */
export const PHASES = ["full-load", "cdc", "in-sync", "frozen", "drained", "verified", "switched", "stable", "done"] as const;
export type Phase = (typeof PHASES)[number];

/** The cutover's results that let the runbook go on; anything else (refused, busy, ...) rolls back. */
export const PROCEED = ["advanced", "already"] as const;

/**
 * The watch window the runbook waits after `switched` before asking for `stable`: the
 * cutover's own window (CUTOVER_STABLE_WATCH_MS) plus a margin for the clocks, so the gate is
 * never asked early.
 */
export const WATCH_SECONDS = STABLE_WATCH_MS / 1000 + 30;

/** What the runbook waits for and how it shifts: production values, or the rehearsal's (see `template`). */
export interface RunbookTiming {
  watchSeconds: number;
  shiftPlan: string;
  regionBake: string;
  pollSeconds: number;
}

export const TIMING: RunbookTiming = { watchSeconds: WATCH_SECONDS, shiftPlan: SHIFT.plan, regionBake: SHIFT.regionBake, pollSeconds: SHIFT.pollSeconds };

export type State = Record<string, unknown>;

const RETRYABLE = [{ ErrorEquals: ["Retryable", "Lambda.TooManyRequestsException", "Lambda.ServiceException"], IntervalSeconds: 5, MaxAttempts: 3, BackoffRate: 2 }];

/** Where every failure and every refusal goes: the cutover's rollback, then the ops topic, then Fail. */
export const ROLLBACK = "Rollback";

export function invoke(fn: string, payload: Record<string, unknown>, next: string, onFailure: string): State {
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

/** A Choice on `variable` (guarded by IsPresent: a Choice on a missing field fails the execution instead of choosing). */
function equals(variable: string, value: string) {
  return { And: [{ Variable: variable, IsPresent: true }, { Variable: variable, StringEquals: value }] };
}

/**
 * plan -> validate-segment over every segment (Map) -> merge -> MATCH or `onFailure`. The
 * merge's output (its `run_id`) goes on to `next`, which passes it to the cutover as evidence.
 */
export function validation(prefix: string, validator: string, next: string, onFailure: string, plan: Record<string, unknown> = { command: "plan" }): Record<string, State> {
  return {
    [`${prefix}Plan`]: invoke(validator, plan, `${prefix}Segments`, onFailure),
    ...fanOut(prefix, validator, next, onFailure, onFailure),
  };
}

/** A plan's output -> `<prefix>Segments` (Map) -> `<prefix>Merge` -> `<prefix>Verdict`: MATCH to `next`, another verdict to `otherVerdict`. */
export function fanOut(prefix: string, validator: string, next: string, onFailure: string, otherVerdict: string): Record<string, State> {
  return {
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
            // Keep the item (run_id, table, segment) for another pass.
            ResultSelector: { "done.$": "$.Payload.done" },
            ResultPath: "$.checkpoint",
            Next: "SegmentDone",
          },
          // A segment cut by the function's deadline is checkpointed where it stopped
          // (done: false): the next invocation resumes there.
          SegmentDone: {
            Type: "Choice",
            Choices: [{ Variable: "$.checkpoint.done", BooleanEquals: false, Next: "ValidateSegment" }],
            Default: "Validated",
          },
          Validated: { Type: "Succeed" },
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
      Default: otherVerdict,
    },
  };
}

/**
 * `{"command":"advance","until":<phase>}` on the cutover, with the run id of the validation
 * just merged as evidence when `withEvidence`; then a Choice: `advanced` or `already` go on
 * to `next`, anything else (refused, busy) and any failure roll back. Two states,
 * `<id>` and `<id>Result`.
 */
export function advance(id: string, cutover: string, until: Phase, withEvidence: boolean, next: string): Record<string, State> {
  const payload: Record<string, unknown> = { command: "advance", until };
  if (withEvidence) payload["validation_run.$"] = "$.run_id";
  return {
    [id]: invoke(cutover, payload, `${id}Result`, ROLLBACK),
    [`${id}Result`]: {
      Type: "Choice",
      Choices: [{ Or: PROCEED.map((r) => equals("$.result", r)), Next: next }],
      Default: ROLLBACK,
    },
  };
}

/**
 * The cutover's phase machine, run as the rehearsal runs it (tests/src/cutover_stage.rs):
 *
 * 1. validation fan-out -> `advance until in-sync` with that run;
 * 2. validation fan-out again (fresh evidence) -> `advance until drained` (freezes the source,
 *    waits for the target to apply everything committed before the freeze);
 * 3. the final validation over what the freeze reports changed (`revalidate` of the step into
 *    `frozen`), skipped when nothing changed, over everything when this execution did not
 *    see the freeze -> `advance until switched` (with the final run, or without evidence when
 *    none was needed);
 * 4. wait the watch window -> `advance until stable`;
 * 5. the application's blue/green shift by the traffic-shifter (region by region, ticked) ->
 *    `advance until done`.
 *
 * Any refusal or failure: abort the shift if it started, then the cutover's `rollback`
 * (before `switched` it unfreezes the source; after it, it moves the writes back), then the
 * ops topic, then Fail. The cutover records the phase itself (MIGRATION/PHASE, fenced by its
 * lease): the runbook writes nothing to the state table.
 */
export function runbookDefinition(t: RunbookTargets, timing: RunbookTiming = TIMING): string {
  const V = t.validatorArn;
  const C = t.cutoverArn;
  return JSON.stringify({
    Comment: "cutover runbook: the cutover's phases with validation evidence at each gate, the watch window, the shift; any refusal or failure rolls back and notifies",
    StartAt: "InSyncValidatePlan",
    States: {
      ...validation("InSyncValidate", V, "AdvanceInSync", ROLLBACK),
      ...advance("AdvanceInSync", C, "in-sync", true, "FreezeValidatePlan"),
      ...validation("FreezeValidate", V, "AdvanceDrained", ROLLBACK),
      AdvanceDrained: invoke(C, { "command": "advance", "until": "drained", "validation_run.$": "$.run_id" }, "AdvanceDrainedResult", ROLLBACK),
      AdvanceDrainedResult: {
        Type: "Choice",
        Choices: [
          { ...equals("$.result", "advanced"), Next: "FinalScope" },
          // Frozen before this execution: its `revalidate` is not in this output, so validate everything.
          { ...equals("$.result", "already"), Next: "FullFinalValidatePlan" },
        ],
        Default: ROLLBACK,
      },
      // The step into `frozen` says what changed since the last passing validation.
      FinalScope: {
        Type: "Pass",
        Parameters: { "frozen.$": "$.transitions[?(@.to == 'frozen')]" },
        Next: "FinalScopeChoice",
      },
      FinalScopeChoice: {
        Type: "Choice",
        Choices: [
          { Variable: "$.frozen[0].action.revalidate[0]", IsPresent: true, Next: "FinalValidatePlan" },
          // Nothing changed since the evidence the freeze accepted: no final run is needed.
          { Variable: "$.frozen[0].action.revalidate", IsPresent: true, Next: "AdvanceSwitchedUnchanged" },
        ],
        // No freeze in this output (advanced from `frozen`): validate everything.
        Default: "FullFinalValidatePlan",
      },
      ...validation("FinalValidate", V, "AdvanceSwitched", ROLLBACK, { "command": "plan", "tables.$": "$.frozen[0].action.revalidate" }),
      ...validation("FullFinalValidate", V, "AdvanceSwitched", ROLLBACK),
      ...advance("AdvanceSwitched", C, "switched", true, "WatchWindow"),
      ...advance("AdvanceSwitchedUnchanged", C, "switched", false, "WatchWindow"),
      WatchWindow: { Type: "Wait", Seconds: timing.watchSeconds, Next: "AdvanceStable" },
      ...advance("AdvanceStable", C, "stable", false, "StartShift"),
      StartShift: invoke(t.shifterArn, {
        command: "start", plan: timing.shiftPlan, scope: SHIFT.scope, region_bake: timing.regionBake, on_gate_failure: "rollback",
      }, "Bake", "AbortShift"),
      Bake: { Type: "Wait", Seconds: timing.pollSeconds, Next: "Tick" },
      Tick: invoke(t.shifterArn, { command: "tick" }, "ShiftState", "AbortShift"),
      ShiftState: {
        Type: "Choice",
        Choices: [
          { ...equals("$.deployment.status", "succeeded"), Next: "AdvanceDone" },
          { ...equals("$.deployment.status", "running"), Next: "Bake" },
        ],
        // rolled-back, aborted, paused, or no deployment at all
        Default: "AbortShift",
      },
      ...advance("AdvanceDone", C, "done", false, "Done"),
      Done: { Type: "Succeed" },
      AbortShift: {
        ...invoke(t.shifterArn, { command: "abort", reason: "the cutover runbook failed a step" }, ROLLBACK, ROLLBACK),
        // Whatever abort says, the cutover rolls back; keep the first error.
        OutputPath: "$",
        ResultPath: "$.abort",
        Catch: [{ ErrorEquals: ["States.ALL"], ResultPath: "$.abortError", Next: ROLLBACK }],
      },
      [ROLLBACK]: {
        ...invoke(C, {
          "command": "rollback",
          // Bounded (the cutover refuses a reason over 1000 bytes); the failure itself goes to the ops topic.
          "reason.$": "States.Format('the cutover runbook (execution {}) stopped at a refused or failed step', $$.Execution.Name)",
        }, "Notify", "Notify"),
        // The failure and the rollback's outcome travel on to the notification.
        ResultSelector: { "outcome.$": "$.Payload" },
        ResultPath: "$.rollback",
        OutputPath: "$",
        Catch: [{ ErrorEquals: ["States.ALL"], ResultPath: "$.rollbackError", Next: "Notify" }],
      },
      Notify: {
        Type: "Task",
        Resource: "arn:aws:states:::sns:publish",
        Parameters: {
          TopicArn: t.opsTopicArn,
          Subject: "cutover runbook stopped and rolled back",
          // The execution's name first: the operator's way to its history.
          "Message.$": "States.Format('cutover runbook execution {} stopped and rolled back: {}', $$.Execution.Name, States.JsonToString($))",
          MessageAttributes: {
            event_type: { DataType: "String", StringValue: "runbook-aborted" },
            severity: { DataType: "String", StringValue: "critical" },
          },
        },
        ResultPath: null,
        Catch: [{ ErrorEquals: ["States.ALL"], Next: "Aborted" }],
        Next: "Aborted",
      },
      Aborted: { Type: "Fail", Error: "CutoverAborted", Cause: "a step was refused or failed; the cutover was asked to roll back and the ops topic told" },
    },
  });
}

/**
 * On-demand validation of large tables, fanned out: `{}` validates every table of the
 * configured schemas, `{"tables": ["app.orders", ...]}` those. The same plan -> Map of
 * validate-segment -> merge as the runbook's gates. A segment whose invocation keeps failing
 * (after its Retry) ends the run with an ERROR verdict recorded by the validator itself
 * (`merge` with the failure), never a run left INCOMPLETE; a MISMATCH ends the execution
 * failed, so an alarm on failed executions sees it.
 */
export function validationDefinition(validatorArn: string): string {
  const V = validatorArn;
  return JSON.stringify({
    Comment: "cutover validation fan-out: plan, validate every segment (Map), merge; a failed segment ends the run as ERROR",
    StartAt: "Scope",
    States: {
      Scope: {
        Type: "Choice",
        Choices: [{ Variable: "$.tables", IsPresent: true, Next: "SomeTablesPlan" }],
        Default: "AllTablesPlan",
      },
      SomeTablesPlan: invoke(V, { "command": "plan", "tables.$": "$.tables" }, "ValidateSegments", "Unplanned"),
      AllTablesPlan: invoke(V, { command: "plan" }, "ValidateSegments", "Unplanned"),
      ...fanOut("Validate", V, "Matched", "RecordFailure", "Mismatch"),
      RecordFailure: {
        ...invoke(V, { "command": "merge", "run_id.$": "$.run_id", "failure.$": "$.error" }, "Failed", "Failed"),
        ResultPath: "$.merged",
        OutputPath: "$",
      },
      Unplanned: { Type: "Fail", Error: "ValidationError", Cause: "the validation could not be planned (see the task's error in this execution)" },
      Failed: { Type: "Fail", Error: "ValidationError", Cause: "a segment could not be validated after its retries; the run is recorded with verdict ERROR" },
      Mismatch: { Type: "Fail", Error: "ValidationMismatch", Cause: "the validation's verdict is not MATCH (see its run in the state table and the notification)" },
      Matched: { Type: "Succeed" },
    },
  });
}

/**
 * The definitions as the rehearsal runs them (`npm run asl` writes them to infra/asl/):
 * function and topic ARNs, and the runbook's timing, as `${Name}` placeholders. A placeholder
 * for a number stands quoted (`"${WatchSeconds}"`) and is replaced with its quotes. The
 * rehearsal substitutes its own values and nothing else (tests/src/runbooks.rs), and
 * infra's tests check that these files are what the functions above produce.
 */
export const PLACEHOLDERS = {
  targets: { validatorArn: "${ValidatorArn}", cutoverArn: "${CutoverArn}", shifterArn: "${ShifterArn}", opsTopicArn: "${OpsTopicArn}" } as RunbookTargets,
  timing: {
    watchSeconds: "${WatchSeconds}" as unknown as number,
    shiftPlan: "${ShiftPlan}",
    regionBake: "${RegionBake}",
    pollSeconds: "${PollSeconds}" as unknown as number,
  } as RunbookTiming,
};

export function templates(): Record<string, string> {
  return {
    runbook: runbookDefinition(PLACEHOLDERS.targets, PLACEHOLDERS.timing),
    validation: validationDefinition(PLACEHOLDERS.targets.validatorArn),
  };
}

export interface RunbookArgs {
  suffix: string;
  provider: aws.Provider;
  validatorArn: pulumi.Input<string>;
  cutoverArn: pulumi.Input<string>;
  shifterArn: pulumi.Input<string>;
  opsTopicArn: pulumi.Input<string>;
  snsKeyArn: pulumi.Input<string>;
}

/**
 * The runbook state machine and its role (invoke three functions, publish to one topic), and
 * the validation fan-out machine and its role (invoke the validator).
 */
export class Runbook extends pulumi.ComponentResource {
  readonly stateMachineArn: pulumi.Output<string>;
  /** The validation fan-out as a machine of its own (`validationDefinition`). */
  readonly validationArn: pulumi.Output<string>;

  constructor(id: string, args: RunbookArgs, opts?: pulumi.ComponentResourceOptions) {
    super("cutover:runbook:Runbook", id, {}, opts);
    const o = { parent: this, provider: args.provider };
    const n = (type: string) => name(type, args.suffix);
    const role = new aws.iam.Role(n("role-runbook"), { assumeRolePolicy: assumedBy("states.amazonaws.com") }, o);
    const policy = new aws.iam.RolePolicy(n("policy-runbook"), {
      role: role.id,
      policy: policyJson(runbookPolicy({
        functionArns: [args.validatorArn, args.cutoverArn, args.shifterArn],
        opsTopicArn: args.opsTopicArn,
        snsKeyArn: args.snsKeyArn,
      })),
    }, o);
    const machine = new aws.sfn.StateMachine(n("runbook"), {
      name: n("cutover-runbook"),
      roleArn: role.arn,
      definition: pulumi.all([args.validatorArn, args.cutoverArn, args.shifterArn, args.opsTopicArn])
        .apply(([validatorArn, cutoverArn, shifterArn, opsTopicArn]) => runbookDefinition({ validatorArn, cutoverArn, shifterArn, opsTopicArn })),
    }, { ...o, dependsOn: [policy] });
    this.stateMachineArn = machine.arn;

    const validationRole = new aws.iam.Role(n("role-validation"), { assumeRolePolicy: assumedBy("states.amazonaws.com") }, o);
    const validationPolicy = new aws.iam.RolePolicy(n("policy-validation"), {
      role: validationRole.id,
      policy: policyJson(validationMachinePolicy(args.validatorArn)),
    }, o);
    const validationMachine = new aws.sfn.StateMachine(n("validation"), {
      name: n("cutover-validation"),
      roleArn: validationRole.arn,
      definition: pulumi.output(args.validatorArn).apply((validatorArn) => validationDefinition(validatorArn)),
    }, { ...o, dependsOn: [validationPolicy] });
    this.validationArn = validationMachine.arn;
    this.registerOutputs({ stateMachineArn: this.stateMachineArn, validationArn: this.validationArn });
  }
}
