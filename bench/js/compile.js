// Compiles one MJML file with the reference JavaScript MJML, `runs` times, inside one node
// process (so node's start-up is not counted), and prints the timings as JSON on stdout.
// Usage: node compile.js FILE.mjml RUNS
"use strict";
const fs = require("fs");
const path = require("path");
const mjml2html = require(path.join(__dirname, "node_modules", "mjml"));

const [file, runsArg] = process.argv.slice(2);
const source = fs.readFileSync(file, "utf8");
const runs = Math.max(1, parseInt(runsArg || "20", 10));
const options = { validationLevel: "soft", keepComments: false, minify: false };
const first = mjml2html(source, options); // warm-up, and the output size
const times = [];
for (let i = 0; i < runs; i++) {
  const t0 = process.hrtime.bigint();
  mjml2html(source, options);
  times.push(Number(process.hrtime.bigint() - t0) / 1e6);
}
times.sort((a, b) => a - b);
process.stdout.write(JSON.stringify({
  version: require(path.join(__dirname, "node_modules", "mjml", "package.json")).version,
  runs,
  median_ms: times[Math.floor(times.length / 2)],
  min_ms: times[0],
  html_bytes: Buffer.byteLength(first.html, "utf8"),
  errors: first.errors.length,
}) + "\n");
