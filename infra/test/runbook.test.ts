// The runbook's definition, pure: its flow, its failure paths, and its payloads against the
// functions' own sample events (events/<function>/), which are the functions' contract. The
// ASL is checked as a structure (and its Choices evaluated on sample outputs), not executed:
// nothing here runs Step Functions.
import assert from "node:assert/strict";
import { readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { test } from "node:test";

import { STABLE_WATCH_MS } from "../components/functions";
import { PHASES, PROCEED, ROLLBACK, runbookDefinition, SHIFT, WATCH_SECONDS } from "../components/runbook";

type Rule = { Variable?: string; StringEquals?: string; IsPresent?: boolean; And?: Rule[]; Or?: Rule[]; Not?: Rule; Next?: string };
type State = {
  Type: string; Next?: string; Default?: string; End?: boolean; Resource?: string; Seconds?: number;
  Catch?: { ErrorEquals: string[]; Next: string; ResultPath?: string }[];
  Choices?: Rule[];
  Parameters?: Record<string, unknown> & { FunctionName?: string; Payload?: Record<string, unknown>; TopicArn?: string };
  ItemsPath?: string;
  ItemProcessor?: { StartAt: string; States: Record<string, State> };
};

const ARNS = { validatorArn: "arn:validator", cutoverArn: "arn:cutover", shifterArn: "arn:shifter", opsTopicArn: "arn:ops" };
const def: { StartAt: string; States: Record<string, State> } = JSON.parse(runbookDefinition(ARNS));
const S = def.States;

/** The states a state can go to: Next, Default, every Choice and every Catch. */
function successors(st: State): string[] {
  return [st.Next, st.Default, ...(st.Choices ?? []).map((c) => c.Next), ...(st.Catch ?? []).map((c) => c.Next)].filter((n): n is string => n !== undefined);
}

/** Every state reachable from `from`. */
function reachable(from: string): Set<string> {
  const seen = new Set<string>();
  const walk = (id: string) => {
    if (seen.has(id)) return;
    seen.add(id);
    for (const next of successors(S[id])) walk(next);
  };
  walk(from);
  return seen;
}

const terminal = (st: State) => st.Type === "Succeed" || st.Type === "Fail" || st.End === true;

/** A JSONPath reference path (`$.a.b[0].c`) on a value; undefined when absent. */
function at(input: unknown, path: string): unknown {
  let v: unknown = input;
  for (const part of path.replace(/^\$\.?/, "").split(/\.|(?=\[)/).filter((p) => p !== "")) {
    const index = /^\[(\d+)\]$/.exec(part);
    if (v === null || typeof v !== "object") return undefined;
    v = index !== null ? (Array.isArray(v) ? v[Number(index[1])] : undefined) : (v as Record<string, unknown>)[part];
  }
  return v;
}

/** The ASL rules the definition uses (And, Or, Not, IsPresent, StringEquals); a missing variable in StringEquals fails the execution, as in Step Functions. */
function holds(rule: Rule, input: unknown): boolean {
  if (rule.And !== undefined) return rule.And.every((r) => holds(r, input));
  if (rule.Or !== undefined) return rule.Or.some((r) => holds(r, input));
  if (rule.Not !== undefined) return !holds(rule.Not, input);
  const value = at(input, rule.Variable as string);
  if (rule.IsPresent !== undefined) return (value !== undefined) === rule.IsPresent;
  if (value === undefined) throw new Error(`States.Runtime: ${rule.Variable} is absent`);
  if (rule.StringEquals !== undefined) return value === rule.StringEquals;
  throw new Error(`a rule the evaluator does not know: ${JSON.stringify(rule)}`);
}

/** Where a Choice state sends `input`. */
function choose(id: string, input: unknown): string {
  const st = S[id];
  assert.equal(st.Type, "Choice", id);
  return st.Choices?.find((c) => holds(c, input))?.Next ?? (st.Default as string);
}

/** The happy path: every state's Next, or where its Choice sends the expected output. */
function happyPath(outputs: Record<string, unknown>): string[] {
  const path: string[] = [];
  let id: string | undefined = def.StartAt;
  while (id !== undefined && !path.includes(id)) {
    path.push(id);
    const st: State = S[id];
    id = st.Type === "Choice" ? choose(id, outputs[id]) : st.Next;
  }
  return path;
}

type Transition = { from: string; to: string; at_ms: number; took_ms: number; gates: unknown[]; action: Record<string, unknown> };
const match = { run_id: "run-1", verdict: "MATCH" };
const advanced = (to: string, transitions: Transition[] = []) => ({ result: "advanced", phase: to, detail: `now at ${to}`, transitions, gates: [] });
const intoFrozen = (revalidate: string[]) => ({ from: "in-sync", to: "frozen", at_ms: 1, took_ms: 40, gates: [], action: { revalidate, change_counters: {} } });
const drained = (revalidate: string[]) => advanced("drained", [intoFrozen(revalidate), { from: "frozen", to: "drained", at_ms: 2, took_ms: 9, gates: [], action: {} }]);
/** The Pass state's filter, `$.transitions[?(@.to == 'frozen')]`, done by hand for the Choice after it. */
const scoped = (out: { transitions: { to: string }[] }) => ({ frozen: out.transitions.filter((t) => t.to === "frozen") });

test("the happy path is the rehearsal's: validate -> in-sync, validate -> drained, final validation of what changed -> switched, watch -> stable, shift -> done", () => {
  const out = drained(["app.orders"]);
  const path = happyPath({
    InSyncValidateVerdict: match, AdvanceInSyncResult: advanced("in-sync"),
    FreezeValidateVerdict: match, AdvanceDrainedResult: out, FinalScopeChoice: scoped(out),
    FinalValidateVerdict: match, AdvanceSwitchedResult: advanced("switched"), AdvanceStableResult: advanced("stable"),
    ShiftState: { deployment: { status: "succeeded" } }, AdvanceDoneResult: advanced("done"),
  });
  assert.deepEqual(path, [
    "InSyncValidatePlan", "InSyncValidateSegments", "InSyncValidateMerge", "InSyncValidateVerdict", "AdvanceInSync", "AdvanceInSyncResult",
    "FreezeValidatePlan", "FreezeValidateSegments", "FreezeValidateMerge", "FreezeValidateVerdict", "AdvanceDrained", "AdvanceDrainedResult",
    "FinalScope", "FinalScopeChoice", "FinalValidatePlan", "FinalValidateSegments", "FinalValidateMerge", "FinalValidateVerdict",
    "AdvanceSwitched", "AdvanceSwitchedResult", "WatchWindow", "AdvanceStable", "AdvanceStableResult",
    "StartShift", "Bake", "Tick", "ShiftState", "AdvanceDone", "AdvanceDoneResult", "Done",
  ]);
  const until = path.filter((id) => S[id].Parameters?.FunctionName === "arn:cutover").map((id) => S[id].Parameters?.Payload?.until);
  assert.deepEqual(until, ["in-sync", "drained", "switched", "stable", "done"], "the phases in the machine's order");
  assert.deepEqual(until.map((p) => PHASES.indexOf(p as never)), [...until.map((p) => PHASES.indexOf(p as never))].sort((a, b) => a - b));
  assert.equal(S.Done.Type, "Succeed");
  assert.equal(choose("ShiftState", { deployment: { status: "running" } }), "Bake");
});

test("every path reaches a terminal state: every target exists, nothing is dead, and from every state an end is reachable", () => {
  const all = Object.keys(S);
  for (const [id, st] of Object.entries(S)) {
    for (const next of successors(st)) assert.ok(next in S, `${id} -> ${next} exists`);
    assert.ok(terminal(st) || successors(st).length > 0, `${id} ends or goes on`);
    assert.ok([...reachable(id)].some((r) => terminal(S[r])), `${id} can reach an end`);
    if (st.Type === "Choice") assert.ok(st.Default !== undefined, `${id}: a Default, so no output is left unmatched`);
  }
  assert.ok(all.every((id) => reachable(def.StartAt).has(id)), "no dead state");
  assert.deepEqual(all.filter((id) => terminal(S[id])).sort(), ["Aborted", "Done"]);
  // The one loop (Bake -> Tick -> ShiftState -> Bake) leaves as soon as the deployment is anything but running.
  for (const status of ["succeeded", "rolled-back", "aborted", "paused"]) assert.notEqual(choose("ShiftState", { deployment: { status } }), "Bake", status);
  assert.equal(choose("ShiftState", {}), "AbortShift", "no deployment at all");
});

test("a refused, busy or malformed advance goes to the rollback branch; advanced and already go on", () => {
  const results = Object.keys(S).filter((id) => /^Advance.*Result$/.test(id));
  assert.equal(results.length, 6);
  for (const id of results) {
    for (const result of ["refused", "busy", "rolled-back", "dry-run", "status"]) {
      assert.equal(choose(id, { result, phase: "cdc", detail: "gate validation: MISMATCH on app.orders" }), ROLLBACK, `${id}: ${result}`);
    }
    assert.equal(choose(id, {}), ROLLBACK, `${id}: no result at all`);
    for (const result of PROCEED) {
      const out = result === "advanced" && id === "AdvanceDrainedResult" ? drained([]) : { result, phase: "x", transitions: [] };
      assert.notEqual(choose(id, out), ROLLBACK, `${id}: ${result}`);
    }
  }
  assert.deepEqual([...PROCEED], ["advanced", "already"]);
  for (const id of ["InSyncValidateVerdict", "FreezeValidateVerdict", "FinalValidateVerdict", "FullFinalValidateVerdict"]) {
    assert.equal(choose(id, { run_id: "r", verdict: "MISMATCH" }), ROLLBACK, `${id}: a mismatch rolls back`);
  }
});

test("any failure rolls back: before the shift straight to the cutover's rollback; from the shift on, the shift is aborted first; then the ops topic, then Fail", () => {
  const shift = new Set(["StartShift", "Tick"]);
  for (const [id, st] of Object.entries(S)) {
    if (st.Type !== "Task" && st.Type !== "Map") continue;
    assert.ok(st.Catch?.every((c) => c.ErrorEquals.includes("States.ALL")), `${id} catches every error`);
    const expected = shift.has(id) ? "AbortShift" : id === "AbortShift" ? ROLLBACK : id === ROLLBACK || id === "Notify" ? undefined : ROLLBACK;
    if (expected !== undefined) assert.equal(st.Catch?.[0].Next, expected, id);
  }
  assert.equal(S.ShiftState.Default, "AbortShift");
  assert.equal(S.AbortShift.Parameters?.Payload?.command, "abort");
  assert.deepEqual([S.AbortShift.Next, S.AbortShift.Catch?.[0].Next], [ROLLBACK, ROLLBACK], "a failed abort still rolls back");
  const rollback = S[ROLLBACK];
  assert.equal(rollback.Parameters?.FunctionName, "arn:cutover");
  assert.equal(rollback.Parameters?.Payload?.command, "rollback");
  const reason = String(rollback.Parameters?.Payload?.["reason.$"]);
  assert.match(reason, /^States\.Format\('.*', \$\$\.Execution\.Name\)$/, "a bounded reason: the cutover refuses one over 1000 bytes");
  assert.ok(reason.length + 80 < 1000, "with an execution name of at most 80 characters");
  assert.deepEqual([rollback.Next, rollback.Catch?.[0].Next], ["Notify", "Notify"], "a failed rollback is still announced");
  assert.equal(S.Notify.Resource, "arn:aws:states:::sns:publish");
  assert.equal(S.Notify.Parameters?.TopicArn, "arn:ops");
  assert.deepEqual([S.Notify.Next, S.Notify.Catch?.[0].Next], ["Aborted", "Aborted"]);
  assert.equal(S.Aborted.Type, "Fail");
  assert.ok([...reachable(ROLLBACK)].every((id) => [ROLLBACK, "Notify", "Aborted"].includes(id)), "the rollback branch only ends");
});

test("the final validation covers the freeze's revalidate list, is skipped when it is empty, and covers everything when this execution did not see the freeze", () => {
  assert.deepEqual(S.FinalScope.Parameters, { "frozen.$": "$.transitions[?(@.to == 'frozen')]" }, "the step into frozen, as the rehearsal finds it");
  const listed = drained(["app.orders", "app.order_items"]);
  assert.equal(choose("FinalScopeChoice", scoped(listed)), "FinalValidatePlan");
  assert.deepEqual(S.FinalValidatePlan.Parameters?.Payload, { "command": "plan", "tables.$": "$.frozen[0].action.revalidate" });
  assert.deepEqual(at(scoped(listed), "$.frozen[0].action.revalidate"), ["app.orders", "app.order_items"], "the plan's tables: schema.table names");
  assert.equal(S.FinalValidateVerdict.Choices?.[0].Next, "AdvanceSwitched");
  assert.equal(S.AdvanceSwitched.Parameters?.Payload?.["validation_run.$"], "$.run_id", "the final run as evidence");

  assert.equal(choose("FinalScopeChoice", scoped(drained([]))), "AdvanceSwitchedUnchanged", "nothing changed: no final run");
  assert.deepEqual(S.AdvanceSwitchedUnchanged.Parameters?.Payload, { command: "advance", until: "switched" }, "advance without validation_run");

  const fromFrozen = advanced("drained", [{ from: "frozen", to: "drained", at_ms: 2, took_ms: 9, gates: [], action: {} }]);
  assert.equal(choose("FinalScopeChoice", scoped(fromFrozen)), "FullFinalValidatePlan");
  assert.equal(choose("AdvanceDrainedResult", { result: "already", phase: "drained", detail: "already at drained" }), "FullFinalValidatePlan");
  assert.deepEqual(S.FullFinalValidatePlan.Parameters?.Payload, { command: "plan" }, "every table");
  assert.equal(S.FullFinalValidateVerdict.Choices?.[0].Next, "AdvanceSwitched");
});

test("the watch window: the runbook waits the cutover's own window (and a margin) between switched and stable", () => {
  assert.equal(S.WatchWindow.Type, "Wait");
  assert.equal(S.WatchWindow.Seconds, WATCH_SECONDS);
  assert.ok(WATCH_SECONDS * 1000 >= STABLE_WATCH_MS && WATCH_SECONDS * 1000 <= STABLE_WATCH_MS + 60_000);
  assert.equal(S.AdvanceSwitchedResult.Choices?.[0].Next, "WatchWindow");
  assert.equal(S.WatchWindow.Next, "AdvanceStable");
});

test("the runbook writes nothing to the state table: the cutover records the phase under its lease", () => {
  const resources = Object.values(S).map((st) => String(st.Resource ?? ""));
  assert.ok(resources.every((r) => !/dynamodb/.test(r)), resources.join(", "));
  assert.ok(!JSON.stringify(def).includes("MIGRATION"));
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

test("every payload the runbook sends is a command the function's sample events show, with fields they use; every until is a phase", () => {
  const sent: [string, Record<string, unknown>][] = [];
  const collect = (states: Record<string, State>) => {
    for (const st of Object.values(states)) {
      if (st.Parameters?.Payload !== undefined) sent.push([String(st.Parameters.FunctionName), st.Parameters.Payload]);
      if (st.ItemProcessor !== undefined) collect(st.ItemProcessor.States);
    }
  };
  collect(S);
  const known: Record<string, Map<string, Set<string>>> = {
    "arn:validator": samples("data-validator"), "arn:cutover": samples("cutover"), "arn:shifter": samples("traffic-shifter"),
  };
  const count = (fn: string) => sent.filter(([f]) => f === fn).length;
  assert.deepEqual([count("arn:validator"), count("arn:cutover"), count("arn:shifter")], [4 * 3, 7, 3],
    "plan, segment, merge for four validations; six advances and the rollback; start, tick, abort");
  for (const [fn, payload] of sent) {
    const fields = known[fn].get(String(payload.command));
    assert.ok(fields, `${fn}: command ${payload.command} has a sample event`);
    for (const key of Object.keys(payload).map((k) => k.replace(/\.\$$/, ""))) {
      assert.ok(fields.has(key), `${fn} ${payload.command}: field ${key} appears in a sample`);
    }
    if (payload.command === "advance") assert.ok(PHASES.includes(payload.until as never), `until ${payload.until} is a phase`);
    if (payload.command === "advance" && "validation_run.$" in payload) assert.equal(payload["validation_run.$"], "$.run_id", "the merge's run_id");
  }
  assert.ok(known["arn:cutover"].get("advance")?.has("until") && known["arn:cutover"].get("advance")?.has("validation_run"));
  assert.match(SHIFT.plan, /^canary-\d+-\d+m$/);
});
