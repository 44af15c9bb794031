// The runbook's definition, pure: its flow, its failure paths, and its payloads against the
// functions' own sample events (events/<function>/), which are the functions' contract.
import assert from "node:assert/strict";
import { readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { test } from "node:test";

import { runbookDefinition, SHIFT } from "../components/runbook";

type State = {
  Type: string; Next?: string; Default?: string; End?: boolean; Resource?: string;
  Catch?: { ErrorEquals: string[]; Next: string }[];
  Choices?: { Next: string; And?: { Variable: string; StringEquals?: string }[]; Variable?: string; StringEquals?: string }[];
  Parameters?: { FunctionName?: string; Payload?: Record<string, unknown>; TopicArn?: string };
  Arguments?: { ExpressionAttributeValues: Record<string, { S?: string; N?: string }> };
  ItemsPath?: string;
  ItemProcessor?: { StartAt: string; States: Record<string, State> };
};

const def: { StartAt: string; States: Record<string, State> } = JSON.parse(runbookDefinition({
  validatorArn: "arn:validator", shifterArn: "arn:shifter", table: "migration-state-x", opsTopicArn: "arn:ops",
}));
const S = def.States;

/** Every state reachable from `from` through Next, Default, Choices and Catch. */
function reachable(from: string): Set<string> {
  const seen = new Set<string>();
  const walk = (id: string) => {
    if (seen.has(id)) return;
    seen.add(id);
    const st = S[id];
    for (const next of [st.Next, st.Default, ...(st.Choices ?? []).map((c) => c.Next), ...(st.Catch ?? []).map((c) => c.Next)]) {
      if (next !== undefined) walk(next);
    }
  };
  walk(from);
  return seen;
}

/** The happy path: every state's Next or first Choice. */
function happyPath(): string[] {
  const path: string[] = [];
  let id: string | undefined = def.StartAt;
  while (id !== undefined && !path.includes(id)) {
    path.push(id);
    const st: State = S[id];
    id = st.Type === "Choice" ? st.Choices?.[0].Next : st.Next;
  }
  return path;
}

test("the happy path: validate, record cutover, shift with a bake, validate again, record done", () => {
  assert.deepEqual(happyPath(), [
    "PreValidatePlan", "PreValidateSegments", "PreValidateMerge", "PreValidateVerdict",
    "RecordCutover", "StartShift", "Bake", "Tick", "ShiftState",
    "PostValidatePlan", "PostValidateSegments", "PostValidateMerge", "PostValidateVerdict", "RecordDone",
  ]);
  assert.equal(S.RecordDone.End, true);
  assert.equal(S.StartShift.Parameters?.Payload?.scope, "region-by-region");
  assert.equal(S.StartShift.Parameters?.Payload?.on_gate_failure, "rollback");
  assert.equal(S.Bake.Type, "Wait");
  assert.deepEqual(S.ShiftState.Choices?.map((c) => [c.And?.[1].StringEquals, c.Next]), [["succeeded", "PostValidatePlan"], ["running", "Bake"]]);
  assert.equal(S.ShiftState.Default, "AbortShift", "rolled back, aborted, paused or missing: abort and notify");
  assert.ok(Object.keys(S).every((id) => reachable(def.StartAt).has(id)), "no dead state");
});

test("validation fans out: plan, a Map of validate-segment over the plan's segments, merge, MATCH or stop", () => {
  for (const prefix of ["PreValidate", "PostValidate"]) {
    const map = S[`${prefix}Segments`];
    assert.equal(map.Type, "Map");
    assert.equal(map.ItemsPath, "$.segments");
    const inner = map.ItemProcessor?.States[map.ItemProcessor.StartAt];
    assert.equal(inner?.Parameters?.FunctionName, "arn:validator");
    assert.equal(inner?.Parameters?.Payload?.command, "validate-segment");
    const verdict = S[`${prefix}Verdict`];
    assert.deepEqual(
      verdict.Choices?.map((c) => [c.Variable, c.StringEquals]),
      [["$.verdict", "MATCH"], ["$.verdict", "MATCH_WITH_FINDINGS"]],
      "the merge's verdict field: equal rows, with or without schema findings",
    );
  }
  assert.equal(S.PreValidateVerdict.Default, "Notify", "nothing shifted yet: nothing to abort");
  assert.equal(S.PostValidateVerdict.Default, "AbortShift");
});

test("any failure: before the shift it notifies; from the shift on it aborts the shift, then notifies, then fails", () => {
  const shiftStarted = new Set(["StartShift", "Bake", "Tick", "ShiftState", "PostValidatePlan", "PostValidateSegments", "PostValidateMerge"]);
  for (const [id, st] of Object.entries(S)) {
    if (st.Type !== "Task" && st.Type !== "Map") continue;
    assert.ok(st.Catch?.every((c) => c.ErrorEquals.includes("States.ALL")), `${id} catches every error`);
    if (shiftStarted.has(id)) assert.equal(st.Catch?.[0].Next, "AbortShift", id);
  }
  assert.equal(S.PreValidatePlan.Catch?.[0].Next, "Notify");
  assert.equal(S.AbortShift.Parameters?.Payload?.command, "abort");
  assert.equal(S.AbortShift.Next, "Notify");
  assert.equal(S.AbortShift.Catch?.[0].Next, "Notify", "a failed abort still notifies");
  assert.equal(S.Notify.Resource, "arn:aws:states:::sns:publish");
  assert.equal(S.Notify.Parameters?.TopicArn, "arn:ops");
  assert.equal(S.Notify.Next, "Aborted");
  assert.equal(S.Aborted.Type, "Fail");
});

test("the phase is recorded in the state table's MIGRATION/PHASE item with a numeric time and a bumped version", () => {
  for (const [id, phase] of [["RecordCutover", "cutover"], ["RecordDone", "done"]]) {
    const st = S[id];
    assert.equal(st.Resource, "arn:aws:states:::dynamodb:updateItem");
    const values = st.Arguments?.ExpressionAttributeValues;
    assert.equal(values?.[":phase"].S, phase);
    assert.match(String(values?.[":at"].N), /\$millis\(\)/, "changed_at_ms is a number, as the crate decodes it");
    assert.equal(values?.[":one"].N, "1");
  }
});

const EVENTS = join(__dirname, "..", "..", "..", "events");

/** The sample direct-invoke events of a function, by command. */
function samples(fn: string): Map<string, Set<string>> {
  const byCommand = new Map<string, Set<string>>();
  for (const file of readdirSync(join(EVENTS, fn)).filter((f) => f.endsWith(".json"))) {
    const event = JSON.parse(readFileSync(join(EVENTS, fn, file), "utf8"));
    if (typeof event.command !== "string") continue;
    const keys = byCommand.get(event.command) ?? new Set<string>();
    for (const k of Object.keys(event)) keys.add(k);
    byCommand.set(event.command, keys);
  }
  return byCommand;
}

test("every payload the runbook sends is a command the function's sample events show, with fields they use", () => {
  const sent: [string, Record<string, unknown>][] = [];
  const collect = (states: Record<string, State>) => {
    for (const st of Object.values(states)) {
      if (st.Parameters?.Payload !== undefined) sent.push([String(st.Parameters.FunctionName), st.Parameters.Payload]);
      if (st.ItemProcessor !== undefined) collect(st.ItemProcessor.States);
    }
  };
  collect(S);
  const known: Record<string, Map<string, Set<string>>> = { "arn:validator": samples("data-validator"), "arn:shifter": samples("traffic-shifter") };
  assert.equal(sent.length, 9, "plan, segment, merge twice; start, tick, abort");
  for (const [fn, payload] of sent) {
    const fields = known[fn].get(String(payload.command));
    assert.ok(fields, `${fn}: command ${payload.command} has a sample event`);
    for (const key of Object.keys(payload).map((k) => k.replace(/\.\$$/, ""))) {
      assert.ok(fields.has(key), `${fn} ${payload.command}: field ${key} appears in a sample`);
    }
  }
  assert.match(SHIFT.plan, /^canary-\d+-\d+m$/);
});
