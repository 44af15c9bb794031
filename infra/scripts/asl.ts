// `npm run asl`: writes the state machines' definitions, as infra deploys them, with `${Name}`
// placeholders for the ARNs and the runbook's timing (components/runbook.ts `templates`), to
// infra/asl/<machine>.asl.json. The rehearsal creates the same machines in its local AWS from
// these files (tests/src/runbooks.rs); test/asl.test.ts fails when a file is stale.
import { mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";

import { templates } from "../components/runbook";

export const ASL_DIR = join(__dirname, "..", "..", "asl");

export function render(definition: string): string {
  return JSON.stringify(JSON.parse(definition), null, 2) + "\n";
}

/* c8 ignore start */
if (require.main === module) {
  mkdirSync(ASL_DIR, { recursive: true });
  for (const [machine, definition] of Object.entries(templates())) {
    const file = join(ASL_DIR, `${machine}.asl.json`);
    writeFileSync(file, render(definition));
    console.log(`[asl] ${file}`);
  }
}
/* c8 ignore stop */
