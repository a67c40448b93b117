// Test strings and the Oniguruma `\s` patch shared by the tokenizer oracles (oracle.mjs for the DeepSeek-V3
// tokenizer.json, trained_oracle.mjs for tokenizers trained by `holdfast tokenizer train`).

export const FIXED = [
  // English, punctuation, contractions
  "The quick brown fox jumps over the lazy dog.",
  "Don't stop; it's what we'd've done. I'm sure they'll, you've, he's...",
  "Hello,world!How are you?I'm fine.",
  "e.g. i.e. U.S.A. Mr. Smith's",
  "\"Quoted\" 'single' `backtick` (paren) [bracket] {brace} <angle>",
  "email@example.com https://example.org/path?q=1&r=2#frag",
  "!!!???...---___===+++***",
  " ?!",
  "a.b,c;d:e",
  "#hashtag @mention $dollar %percent ^caret &amp *star",
  "ALLCAPS lowercase MiXeD CamelCaseWord snake_case_word kebab-case-word",
  // numbers
  "0", "12", "123", "1234", "12345678901234567890",
  "3.14159 2.71828 -42 +7 1e10 0x1F 1,000,000",
  "Year 2024, page 12-34, ratio 3:2, 50%",
  "①②③④⑤ ½ ¼ ¾ ² ³ ¹ ٣٤٥ ١٢٣٤ ۱۲۳ ०१२३ ๑๒๓ ⅠⅡⅢⅣ 〇一二三",
  "x²+y²=z² and H₂O, 10⁻³",
  "١٢٣٤٥٦٧", "①②③④", "a1b22c333d4444",
  "１２３４５ fullwidth digits",
  // CJK, kana, Hangul
  "你好，世界！", "我爱北京天安门。", "中文字符测试：这是一个句子。",
  "日本語のテキスト、ひらがなとカタカナ。", "カタカナーとひらがな", "ｶﾀｶﾅ halfwidth katakana",
  "한국어 텍스트입니다. 안녕하세요!", "漢字とかな混じり文です", "𠀀𠀁𠀂 CJK extension B", "㐀㐁 ext A 鿦鿧 beyond 9FA5",
  "中文English混合123数字", "「引用」『二重』【括弧】", "　全角スペース　",
  // other scripts
  "Привет, мир! Как дела?", "Γειά σου Κόσμε", "שלום עולם", "مرحبا بالعالم", "नमस्ते दुनिया", "สวัสดีชาวโลก",
  "Xin chào thế giới", "Zażółć gęślą jaźń", "Ça va? Où est l'hôtel?", "Straße groß", "ሰላም ዓለም", "გამარჯობა",
  "Բարեւ աշխարհ", "ᚠᚢᚦᚨᚱᚲ", "ⴰⵣⵓⵍ", "ᐊᐃᐅ", "ꦲꦤꦕꦫꦏ", "𐌰𐌱𐌲 Gothic", "𝐀𝐁𝐂 𝒜ℬ𝒞 math alphanumerics",
  // code
  "def foo(x):\n    return x + 1\n",
  "int main() {\n\treturn 0;\n}\n",
  "for (let i = 0; i < n; ++i) { a[i] = b[i] * 2; }",
  "if (a && b || !c) { x->y = z; } // comment",
  "<div class=\"x\">&nbsp;</div>", "SELECT * FROM t WHERE id = 42;", "$ ls -la | grep foo > out.txt 2>&1",
  "```python\nprint('hi')\n```", "{\"key\": [1, 2, 3], \"nested\": {\"a\": null}}",
  "    indented with spaces", "\t\ttabs\tinside\t", "x = y\r\nz = w\r\n",
  // whitespace runs
  "a   b", "a \t b", "a\t\tb", "a\n\nb", "a \n b", "a  \n  b", "a\r\nb", "a\r\n\r\nb", "a \r\n \r\n b",
  "\n", "\n\n\n", " ", "  ", "   ", "\t", "\r", "\r\r\n\n", " \n", "\n ", "  \n  \n  ", " \t \n \t ",
  "trailing   ", "   leading", "a\u000bb\u000cc", "end\n", "word \n\nnext", "x\u00a0y \u00a0 z",
  "a\u2028b\u2029c", " \u2028 ", "a\u3000b\u3000\u3000c", "\u1680\u2000\u2001\u200a x", "a\u202f\u205fb",
  // whitespace class edge cases (Oniguruma vs JS/Python)
  "a\u0085b", "a\u0085\u0085b", "\u0085", " \u0085 x", "a\u0085\n", "x \u0085",
  "\ufeffHello", "a\ufeff b", "a\ufeff\nb", "\ufeff\ufeff", " \ufeff", "x\ufeff  \n",
  "a\u001cb\u001dc\u001ed\u001ff", "\u001c\n", "a\u001f\u001f\n", "a\u200bb", "\u200b \u200b", "zero\u200bwidth\u200cjoiner\u200dtest",
  // emoji
  "😀😃😄", "👍🏽 👋🏿", "👨‍👩‍👧‍👦 family", "🏳️‍🌈 flag", "🇺🇸🇯🇵🇩🇪", "❤️ ✨ ⭐", "I ❤ NY", "🤖: beep boop",
  "#️⃣ 1️⃣ keycaps", "😀a😀 b 😀", "🧑🏻‍💻 coder",
  // special tokens inside text
  "<｜User｜>", "<｜Assistant｜>", "<｜begin▁of▁sentence｜>Hi", "text<｜end▁of▁sentence｜>more",
  "<｜User｜><｜Assistant｜>", "<<｜User｜>>", "<｜User", "｜User｜>", "<|EOT|>", "<|EOT|", "<｜tool▁calls▁begin｜>",
  "<｜tool▁call▁begin｜>function<｜tool▁sep｜>get_weather\n```json\n{\"city\": \"Paris\"}\n```<｜tool▁call▁end｜>",
  "<｜place▁holder▁no▁0｜><｜place▁holder▁no▁799｜>", "<｜place▁holder▁no▁800｜>", "<｜fim▁hole｜>x<｜fim▁end｜>",
  "<think>\nreasoning\n</think>\n\nanswer", "<｜▁pad▁｜>",
  // control characters, replacement char, marks
  "\u0000", "a\u0001b\u0002c", "\u0007\u0008\u001b[0m", "\u007f", "\u0080\u0081\u009f", "x\ufffdy", "\ufffd\ufffd",
  "e\u0301 a\u0300 n\u0303", "\u0301abc", " \u0301", "\u0301\u0302\u0303", "a\u0301\u0302", "Z̤̈́a̟͞l͠go",
  "क्षत्रिय", "\u20dd\u20de", "a\u20e3",
  // other symbols, punctuation
  "€100 £50 ¥30 ₹20 ₿1", "∀x∈ℝ: x²≥0 ⇒ √x²=|x|", "← ↑ → ↓ ↔", "©®™ §¶ †‡", "—–- “curly” ‘quotes’ «guillemets»",
  "…‥", "¿Qué? ¡Sí!", "…and then", " ...", ".hidden", "'quoted'", "-flag --long-flag",
  "。、，；：？！", "（全角括弧）", "a，b", " ，", "┌─┐│└┘", "♠♣♥♦", "⌘⌥⇧", "°C °F",
  // mixed long-ish
  "In 2023, the model scored 92.5% on MMLU (vs. 88.1% prior) — a +4.4pt gain! 🎉",
  "Line one.\nLine two!\n\n  Indented line three?\r\n\tTabbed four.",
  "mixed\u00a0spaces\u2003and\u2009thin",
  "x".repeat(300), "ab".repeat(200), " ".repeat(50), "\n".repeat(20), "😀".repeat(30), "1".repeat(40),
  "word ".repeat(60), "中".repeat(100),
];

// Deterministic PRNG (mulberry32).
function rng(seed) {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

// Code point ranges for random strings. Emoji and other ranges are kept to long-assigned blocks: node's ICU
// knows newer Unicode versions than the system ICU 72 holdfast links, and a character assigned in between
// would differ in category (Cn vs So) without either side being wrong.
const RANGES = [
  [0x20, 0x7e, 30], [0x09, 0x0d, 6], [0x00, 0x1f, 2], [0x7f, 0xa0, 2], [0xa0, 0xff, 6], [0x100, 0x24f, 4],
  [0x300, 0x36f, 4], [0x370, 0x3ff, 3], [0x400, 0x4ff, 4], [0x590, 0x5ff, 2], [0x600, 0x6ff, 4],
  [0x900, 0x97f, 3], [0xe00, 0xe7f, 2], [0x10a0, 0x10ff, 1], [0x1100, 0x11ff, 1], [0x2000, 0x206f, 4],
  [0x2070, 0x209f, 1], [0x20a0, 0x20bf, 1], [0x2100, 0x218f, 2], [0x2190, 0x23ff, 2], [0x2460, 0x24ff, 2],
  [0x2500, 0x27bf, 2], [0x3000, 0x303f, 3], [0x3040, 0x30ff, 5], [0x3400, 0x4dbf, 1], [0x4e00, 0x9fff, 8],
  [0xac00, 0xd7a3, 5], [0xf900, 0xfaff, 1], [0xfe30, 0xfe4f, 1], [0xff00, 0xffef, 3], [0xfff0, 0xfffd, 1],
  [0x10000, 0x1007f, 1], [0x1d400, 0x1d7ff, 1], [0x1f300, 0x1f64f, 4], [0x1f680, 0x1f6c5, 1],
  [0x1f1e6, 0x1f1ff, 1], [0x1f3fb, 0x1f3ff, 1], [0x20000, 0x2a6d6, 1],
];
const SPECIALS = ["\u200d", "\ufe0f", "\u0085", "\ufeff", "\u2028", "\u2029", "\u200b", "\u3000", "\r\n", "\ufffd",
  "<｜User｜>", "<｜Assistant｜>", "<｜end▁of▁sentence｜>", "<|EOT|>", "  ", "\t", "\n", "'s", " "];
const TOTAL_WEIGHT = RANGES.reduce((s, r) => s + r[2], 0);

function randomChar(next) {
  if (next() < 0.08) return SPECIALS[Math.floor(next() * SPECIALS.length)];
  for (;;) {
    let w = next() * TOTAL_WEIGHT, r = RANGES[0];
    for (r of RANGES) if ((w -= r[2]) < 0) break;
    const cp = r[0] + Math.floor(next() * (r[1] - r[0] + 1));
    const ch = String.fromCodePoint(cp);
    if (!/\p{Cn}|\p{Cs}/u.test(ch)) return ch;  // skip unassigned code points and surrogates
  }
}

export function randomStrings(count, seed) {
  const next = rng(seed);
  const out = [];
  for (let i = 0; i < count; ++i) {
    const len = 1 + Math.floor(next() * (i % 10 === 0 ? 200 : 24));
    let s = "";
    for (let j = 0; j < len; ++j) s += randomChar(next);
    out.push(s);
  }
  return out;
}

// Word-level mixes: realistic text built from fragments of the fixed strings.
export function mixedStrings(count, seed) {
  const next = rng(seed);
  const words = FIXED.flatMap((s) => s.split(/(?<= )/u)).filter((w) => w.length > 0 && w.length < 40);
  const seps = [" ", "  ", "\n", "\t", ", ", ". ", "\r\n", "", "\u3000", " \n ", "   "];
  const out = [];
  for (let i = 0; i < count; ++i) {
    const n = 2 + Math.floor(next() * 12);
    let s = "";
    for (let j = 0; j < n; ++j) {
      s += words[Math.floor(next() * words.length)];
      if (next() < 0.5) s += seps[Math.floor(next() * seps.length)];
    }
    out.push(s);
  }
  return out;
}

const ONIG_SPACE = "\\t-\\r \\x85\\xA0\\u1680\\u2000-\\u200A\\u2028\\u2029\\u202F\\u205F\\u3000";

// JavaScript regexes differ from Oniguruma (which HF tokenizers uses, MODEL-SPEC §7.1) in one place that matters
// here: JS `\s` includes U+FEFF and excludes U+0085. This returns a copy of a DeepSeek pre_tokenizer with `\s` /
// `\S` replaced by Oniguruma's explicit set.
export function onigurumaPreTokenizer(preTokenizer) {
  const pt = structuredClone(preTokenizer);
  let patched = 0;
  for (const step of pt.pretokenizers) {
    if (step.type !== "Split" || !step.pattern.Regex.includes("\\s")) continue;
    step.pattern.Regex = step.pattern.Regex.replaceAll("\\s", `[${ONIG_SPACE}]`).replaceAll("\\S", `[^${ONIG_SPACE}]`);
    ++patched;
  }
  if (patched !== 1) throw new Error(`expected one Split pattern using \\s, found ${patched}`);
  return pt;
}

// FIXED, then word-level mixes and random strings: several hundred in all.
export function testStrings() {
  return [...FIXED, ...mixedStrings(200, 7), ...randomStrings(400, 12345)];
}
