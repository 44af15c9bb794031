// The definitions the rehearsal executes (infra/asl/*.asl.json, written by `npm run asl`) are
// the ones infra deploys: the files must equal what components/runbook.ts produces, and their
// placeholders, filled with the deployed values, must give exactly the deployed definitions.
import assert from "node:assert/strict";
import { readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { test } from "node:test";

import { runbookDefinition, templates, TIMING, validationDefinition } from "../components/runbook";
import { ASL_DIR, render } from "../scripts/asl";

const ARNS = { validatorArn: "arn:aws:lambda:us-east-1:1:function:v", cutoverArn: "arn:aws:lambda:us-east-1:1:function:c", shifterArn: "arn:aws:lambda:us-east-1:1:function:s", opsTopicArn: "arn:aws:sns:us-east-1:1:ops" };

/** What the rehearsal does with a template (tests/src/runbooks.rs `fill`): quoted placeholders for numbers first, then the rest. */
function fill(template: string, values: Record<string, string | number>): string {
  let out = template;
  for (const [name, value] of Object.entries(values)) {
    out = typeof value === "number" ? out.split(`"\${${name}}"`).join(String(value)) : out.split(`\${${name}}`).join(value);
  }
  assert.doesNotMatch(out, /\$\{[A-Za-z]+\}/, "every placeholder is filled");
  return out;
}

const VALUES = {
  ValidatorArn: ARNS.validatorArn, CutoverArn: ARNS.cutoverArn, ShifterArn: ARNS.shifterArn, OpsTopicArn: ARNS.opsTopicArn,
  WatchSeconds: TIMING.watchSeconds, PollSeconds: TIMING.pollSeconds, ShiftPlan: TIMING.shiftPlan, RegionBake: TIMING.regionBake,
};

test("infra/asl holds exactly the current definitions (run `npm run asl` after changing components/runbook.ts)", () => {
  const files = readdirSync(ASL_DIR).filter((f) => f.endsWith(".asl.json")).sort();
  const machines = Object.keys(templates()).map((m) => `${m}.asl.json`).sort();
  assert.deepEqual(files, machines);
  for (const [machine, definition] of Object.entries(templates())) {
    assert.equal(readFileSync(join(ASL_DIR, `${machine}.asl.json`), "utf8"), render(definition), `${machine}.asl.json is stale`);
  }
});

test("the templates, filled with the deployed values, are the deployed definitions", () => {
  const t = templates();
  assert.deepEqual(JSON.parse(fill(t.runbook, VALUES)), JSON.parse(runbookDefinition(ARNS)));
  assert.deepEqual(JSON.parse(fill(t.validation, VALUES)), JSON.parse(validationDefinition(ARNS.validatorArn)));
});

test("the templates hold placeholders only where a deployment differs: ARNs and the runbook's timing", () => {
  const names = (s: string) => [...new Set([...s.matchAll(/\$\{([A-Za-z]+)\}/g)].map((m) => m[1]))].sort();
  assert.deepEqual(names(templates().runbook), ["CutoverArn", "OpsTopicArn", "PollSeconds", "RegionBake", "ShiftPlan", "ShifterArn", "ValidatorArn", "WatchSeconds"]);
  assert.deepEqual(names(templates().validation), ["ValidatorArn"]);
});

type State = { Type: string; Next?: string; Default?: string; Choices?: { Next: string }[]; Catch?: { Next: string; ErrorEquals: string[] }[]; Retry?: unknown[]; End?: boolean; ItemProcessor?: { States: Record<string, State> }; MaxConcurrency?: number };

test("the validation machine: every path ends, every task retries and is caught, a failed segment is recorded before the run fails", () => {
  const def: { StartAt: string; States: Record<string, State> } = JSON.parse(validationDefinition(ARNS.validatorArn));
  const S = def.States;
  const next = (st: State) => [st.Next, st.Default, ...(st.Choices ?? []).map((c) => c.Next), ...(st.Catch ?? []).map((c) => c.Next)].filter((n): n is string => n !== undefined);
  const seen = new Set<string>();
  const walk = (id: string) => {
    assert.ok(S[id] !== undefined, `state ${id} exists`);
    if (seen.has(id)) return;
    seen.add(id);
    next(S[id]).forEach(walk);
  };
  walk(def.StartAt);
  assert.deepEqual([...seen].sort(), Object.keys(S).sort(), "every state is reachable");
  for (const [id, st] of Object.entries(S)) {
    if (st.Type === "Task" || st.Type === "Map") assert.ok((st.Catch ?? []).some((c) => c.ErrorEquals.includes("States.ALL")), `${id} is caught`);
    if (st.Type === "Task") assert.ok(st.Retry !== undefined, `${id} retries`);
  }
  const map = S.ValidateSegments;
  assert.equal(map.Type, "Map");
  assert.ok((map.MaxConcurrency ?? 0) > 0);
  const inner = map.ItemProcessor?.States ?? {};
  assert.ok(Object.values(inner).filter((st) => st.Type === "Task").every((st) => st.Retry !== undefined));
  assert.deepEqual(inner.SegmentDone.Choices?.map((c) => c.Next), ["ValidateSegment"], "a segment cut by its deadline is invoked again");
  assert.deepEqual(map.Catch?.map((c) => c.Next), ["RecordFailure"]);
  assert.equal(S.RecordFailure.Next, "Failed");
  assert.equal(S.Failed.Type, "Fail");
  assert.equal(S.ValidateVerdict.Default, "Mismatch");
});
