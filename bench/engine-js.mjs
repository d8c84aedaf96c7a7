// Times Amplitude's JS evaluation engine (@amplitude/experiment-core, as the Node SDK runs it)
// on the file `heavy_fixture` wrote: the same flags and contexts the Rust engine was timed on.
// Checks first that both engines give every user the same variant of every flag.
// Usage: node bench/engine-js.mjs FILE   (run by bench/engine-js.sh)

import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';

const require = createRequire(new URL('../tests/sdk-node/package.json', import.meta.url));
const { EvaluationEngine, topologicalSort } = require('@amplitude/experiment-core');

const fixture = JSON.parse(readFileSync(process.argv[2], 'utf8'));
const flags = topologicalSort(Object.fromEntries(fixture.flags.map((f) => [f.key, f])));
const engine = new EvaluationEngine();

let mismatches = 0;
fixture.contexts.forEach((context, i) => {
  const results = engine.evaluate(structuredClone(context), flags);
  for (const [key, variant] of Object.entries(fixture.variants[i])) {
    if (results[key]?.key !== variant) {
      mismatches++;
      if (mismatches <= 5) console.error(`user ${i}, flag ${key}: JS ${results[key]?.key}, Rust ${variant}`);
    }
  }
});
if (mismatches > 0) {
  console.error(`${mismatches} mismatches between the engines`);
  process.exit(1);
}

const pass = () => {
  for (const context of fixture.contexts) engine.evaluate(context, flags);
};
for (let i = 0; i < 2000; i++) pass();
const started = process.hrtime.bigint();
let passes = 0;
while (Number(process.hrtime.bigint() - started) < 3e9) {
  pass();
  passes++;
}
const perUser = Number(process.hrtime.bigint() - started) / 1e3 / (passes * fixture.contexts.length);
console.log(`amplitude js: ${perUser.toFixed(2)} µs per user (50 heavy flags, ${passes} passes of ${fixture.contexts.length} users)`);
