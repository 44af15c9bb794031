// Prints the monthly cost table of a configuration (the defaults unless config keys are given
// as KEY=VALUE arguments, e.g. `npm run cost -- createDms=true desiredCount=3`), for the README.
import { readSettings } from "../config";
import { costTable, monthlyCost, PRICES, usageFor } from "../components/cost";

// The Oracle CA file is required with createDms but costs nothing; the model never reads it.
const values: Record<string, string> = { environmentSuffix: "cost", oracleCaWalletFile: "not-read.sso" };
for (const arg of process.argv.slice(2)) {
  const [key, value] = arg.split("=");
  values[key] = value;
}
const number = (k: string) => (values[k] === undefined ? undefined : Number(values[k]));
const settings = readSettings({
  require: (k) => values[k],
  get: (k) => values[k],
  getNumber: number,
  getBoolean: (k) => (values[k] === undefined ? undefined : values[k] === "true"),
  getObject: (k) => (values[k] === undefined ? undefined : JSON.parse(values[k])),
});
console.log(`On-demand list prices per region as of ${PRICES.date} (not fetched from this machine; see components/cost.ts)\n`);
console.log(costTable(monthlyCost(usageFor(settings))));
