// Drives a running `holdfast serve` with the official openai npm client (tests/serve/openai_test.sh
// starts the servers). Usage:
//   node openai_client.mjs api  BASE_URL API_KEY MODEL        chat/completions, streaming, stop, n, logprobs,
//                                                             tools, seeds, determinism, errors, cancellation
//   node openai_client.mjs r1   BASE_URL API_KEY MODEL        reasoning_content split (R1-style model)
//   node openai_client.mjs load BASE_URL API_KEY MODEL C N    C concurrent streaming clients, N requests
import OpenAI from 'openai';
import assert from 'node:assert/strict';

const [mode, baseURL, apiKey, model, ...rest] = process.argv.slice(2);
const client = new OpenAI({ baseURL, apiKey, maxRetries: 0, timeout: 120_000 });
const user = (content) => [{ role: 'user', content }];
let checks = 0;
const ok = (name) => { checks++; console.log(`  ok ${name}`); };

async function collectChat(params) {
  const stream = await client.chat.completions.create({ ...params, stream: true });
  const out = { content: {}, reasoning: {}, finish: {}, chunks: 0, usage: null, roles: 0, toolCalls: {} };
  for await (const chunk of stream) {
    out.chunks++;
    if (chunk.usage) out.usage = chunk.usage;
    for (const c of chunk.choices) {
      const d = c.delta ?? {};
      if (d.role) out.roles++;
      if (d.content) out.content[c.index] = (out.content[c.index] ?? '') + d.content;
      if (d.reasoning_content) out.reasoning[c.index] = (out.reasoning[c.index] ?? '') + d.reasoning_content;
      if (c.finish_reason) out.finish[c.index] = c.finish_reason;
    }
  }
  return out;
}

async function collectCompletion(params) {
  const stream = await client.completions.create({ ...params, stream: true });
  const out = { text: {}, finish: {}, usage: null };
  for await (const chunk of stream) {
    if (chunk.usage) out.usage = chunk.usage;
    for (const c of chunk.choices) {
      out.text[c.index] = (out.text[c.index] ?? '') + (c.text ?? '');
      if (c.finish_reason) out.finish[c.index] = c.finish_reason;
    }
  }
  return out;
}

async function expectError(status, fn, codeWanted) {
  try {
    await fn();
  } catch (e) {
    assert.equal(e.status, status, `wanted HTTP ${status}, got ${e.status}: ${e.message}`);
    assert.ok(e.error && typeof e.error.message === 'string', 'error body has a message');
    assert.ok('type' in e.error && 'param' in e.error && 'code' in e.error, 'error body has type, param, code');
    if (codeWanted) assert.equal(e.error.code, codeWanted);
    return e;
  }
  assert.fail(`expected HTTP ${status}`);
}

async function metric(name) {
  const text = await (await fetch(baseURL.replace(/\/v1$/, '') + '/metrics')).text();
  const line = text.split('\n').find((l) => l.startsWith(name + ' '));
  return line ? Number(line.split(' ')[1]) : NaN;
}

async function api() {
  const models = await client.models.list();
  assert.deepEqual(models.data.map((m) => m.id), [model]);
  ok('models.list');

  // Chat, greedy: non-streaming and streaming agree; usage everywhere.
  const greedy = { model, messages: user('Tell me about Paris.'), max_tokens: 12, temperature: 0 };
  const chat = await client.chat.completions.create(greedy);
  assert.equal(chat.object, 'chat.completion');
  assert.equal(chat.choices.length, 1);
  assert.equal(chat.choices[0].message.role, 'assistant');
  assert.equal(typeof chat.choices[0].message.content, 'string');
  assert.ok(['length', 'stop'].includes(chat.choices[0].finish_reason));
  assert.ok(chat.usage.prompt_tokens > 0 && chat.usage.completion_tokens > 0);
  assert.equal(chat.usage.total_tokens, chat.usage.prompt_tokens + chat.usage.completion_tokens);
  const s = await collectChat({ ...greedy, stream_options: { include_usage: true } });
  assert.equal(s.content[0] ?? '', chat.choices[0].message.content);
  assert.equal(s.finish[0], chat.choices[0].finish_reason);
  assert.equal(s.roles, 1);
  assert.deepEqual(s.usage, chat.usage);
  ok('chat: streaming == non-streaming, usage chunk');

  // Completions, greedy, with logprobs: the token strings spell the text.
  const cparams = { model, prompt: 'The capital of France is', max_tokens: 10, temperature: 0 };
  const comp = await client.completions.create({ ...cparams, logprobs: 2 });
  assert.equal(comp.object, 'text_completion');
  const text = comp.choices[0].text;
  const lp = comp.choices[0].logprobs;
  assert.equal(lp.tokens.length, comp.usage.completion_tokens);
  assert.equal(lp.tokens.join(''), text);
  assert.ok(lp.token_logprobs.every((v) => v <= 0));
  assert.ok(lp.top_logprobs.every((t) => Object.keys(t).length >= 1 && Object.keys(t).length <= 2));
  const cs = await collectCompletion({ ...cparams, stream_options: { include_usage: true } });
  assert.equal(cs.text[0], text);
  assert.equal(cs.usage.completion_tokens, comp.usage.completion_tokens);
  ok('completions: streaming == non-streaming, logprobs');

  // Stop strings, including one that spans two tokens, never leak (streaming and not).
  const toks = lp.tokens;
  let k = 1;
  while (k < toks.length - 1 && !(toks[k].length >= 2 && toks[k + 1].length >= 1)) k++;
  const before = toks.slice(0, k).join('');
  const stop = toks[k].slice(-2) + toks[k + 1].slice(0, 2);
  const expected = text.slice(0, text.indexOf(stop));
  const stopped = await client.completions.create({ ...cparams, stop: [stop, 'zzzzqqqq'] });
  assert.equal(stopped.choices[0].text, expected);
  assert.equal(stopped.choices[0].finish_reason, 'stop');
  const stoppedStream = await collectCompletion({ ...cparams, stop });
  assert.equal(stoppedStream.text[0] ?? '', expected);
  assert.equal(stoppedStream.finish[0], 'stop');
  assert.ok(expected.length <= before.length + toks[k].length);
  ok(`stop string spanning tokens (${JSON.stringify(stop)})`);

  // n choices, seeds.
  const sampled = { model, messages: user('Write a word.'), max_tokens: 6, temperature: 1, seed: 7, n: 3 };
  const many = await client.chat.completions.create(sampled);
  assert.deepEqual(many.choices.map((c) => c.index), [0, 1, 2]);
  const again = await client.chat.completions.create(sampled);
  assert.deepEqual(again.choices.map((c) => c.message.content), many.choices.map((c) => c.message.content));
  assert.equal(many.usage.completion_tokens, 18);
  const manyStream = await collectChat(sampled);
  assert.deepEqual([0, 1, 2].map((i) => manyStream.content[i] ?? ''), many.choices.map((c) => c.message.content));
  ok('n=3 with a seed: reproducible, streaming == non-streaming');

  // logprobs on chat, logit_bias, penalties, top_k/top_p.
  const clp = await client.chat.completions.create({ ...greedy, logprobs: true, top_logprobs: 3 });
  assert.equal(clp.choices[0].logprobs.content.length, clp.usage.completion_tokens);
  for (const t of clp.choices[0].logprobs.content) {
    assert.equal(t.top_logprobs.length, 3);
    assert.ok(t.logprob <= 0 && Array.isArray(t.bytes));
    assert.ok(t.top_logprobs[0].logprob >= t.top_logprobs[2].logprob);
  }
  const hello = 19923;  // "Hello" in the V3 vocabulary
  const biased = await client.completions.create({ ...cparams, max_tokens: 4, logit_bias: { [hello]: 100 } });
  assert.equal(biased.choices[0].text, 'HelloHelloHelloHello');
  const pen = await client.completions.create({ ...cparams, max_tokens: 4, logit_bias: { [hello]: 5 },
                                                frequency_penalty: 2, presence_penalty: 2, top_k: 5, top_p: 0.9,
                                                temperature: 0.7 });
  assert.equal(pen.usage.completion_tokens, 4);
  ok('chat logprobs, logit_bias, penalties, top_k/top_p');

  // Tools are rendered into the prompt; the conversation round trip (calls + outputs) is accepted.
  const tools = [{ type: 'function', function: { name: 'get_weather', description: 'Weather for a city',
                                                 parameters: { type: 'object', properties: { city: { type: 'string' } } } } }];
  const withTools = await client.chat.completions.create({ ...greedy, tools, tool_choice: 'auto' });
  assert.ok(withTools.usage.prompt_tokens > chat.usage.prompt_tokens + 20, 'tool definitions are in the prompt');
  const named = await client.chat.completions.create({ ...greedy, tools,
                                                       tool_choice: { type: 'function', function: { name: 'get_weather' } } });
  assert.ok(named.usage.prompt_tokens > withTools.usage.prompt_tokens);
  const none = await client.chat.completions.create({ ...greedy, tools, tool_choice: 'none' });
  assert.equal(none.usage.prompt_tokens, chat.usage.prompt_tokens);
  const roundTrip = await client.chat.completions.create({
    model, max_tokens: 4, temperature: 0, tools,
    messages: [{ role: 'user', content: 'Weather in Paris?' },
               { role: 'assistant', content: null,
                 tool_calls: [{ id: 'call_1', type: 'function', function: { name: 'get_weather', arguments: '{"city": "Paris"}' } }] },
               { role: 'tool', tool_call_id: 'call_1', content: '{"temp": 20}' }] });
  assert.equal(roundTrip.choices.length, 1);
  ok('tools and tool_choice rendered; tool call history accepted');

  // Greedy output is identical alone and inside a busy batch.
  const probe = { model, messages: user('Determinism probe: ' + 'the quick brown fox '.repeat(40)), max_tokens: 16, temperature: 0 };
  const alone = (await client.chat.completions.create(probe)).choices[0].message.content;
  const noise = Array.from({ length: 12 }, (_, i) => client.chat.completions.create(
    { model, messages: user(`noise ${i} ` + 'lorem ipsum '.repeat(i * 4)), max_tokens: 24, temperature: 1, seed: i }));
  const busy = client.chat.completions.create(probe);
  const [busyRes] = await Promise.all([busy, ...noise]);
  assert.equal(busyRes.choices[0].message.content, alone);
  const busyStream = collectChat(probe);
  const noise2 = Array.from({ length: 8 }, (_, i) => collectCompletion({ model, prompt: 'x'.repeat(i * 30 + 1), max_tokens: 20 }));
  const [bs] = await Promise.all([busyStream, ...noise2]);
  assert.equal(bs.content[0], alone);
  ok('greedy output identical alone and in a busy batch');

  // Prefix cache: a long shared prompt is served from cached chunks the second time.
  const hits0 = await metric('holdfast_prefix_cache_hit_tokens_total');
  await client.chat.completions.create(probe);
  const hits1 = await metric('holdfast_prefix_cache_hit_tokens_total');
  assert.ok(hits1 > hits0, `prefix cache hits ${hits0} -> ${hits1}`);
  ok('prefix cache hit on a repeated prompt');

  // Errors come back as OpenAI errors and the server stays up.
  await expectError(404, () => client.chat.completions.create({ ...greedy, model: 'no-such-model' }), 'model_not_found');
  await expectError(400, () => client.chat.completions.create({ ...greedy, messages: [] }));
  await expectError(400, () => client.chat.completions.create({ ...greedy, max_tokens: -1 }));
  await expectError(400, () => client.chat.completions.create({ ...greedy, max_tokens: 1e9 }));
  await expectError(400, () => client.chat.completions.create({ ...greedy, n: 1000 }));
  await expectError(400, () => client.chat.completions.create({ ...greedy, messages: user('word '.repeat(3000)) }),
                    'context_length_exceeded');
  await expectError(400, () => client.chat.completions.create({ ...greedy, tools: [{ type: 'function', function: { name: 'bad name!' } }] }));
  await expectError(400, () => client.chat.completions.create({ ...greedy, temperature: 'hot' }));
  await expectError(400, () => client.completions.create({ model, prompt: [1, 2, 10_000_000] }));
  const noKey = new OpenAI({ baseURL, apiKey: 'wrong-key', maxRetries: 0 });
  await expectError(401, () => noKey.models.list(), 'invalid_api_key');
  await expectError(401, () => noKey.chat.completions.create(greedy), 'invalid_api_key');
  assert.equal((await client.chat.completions.create(greedy)).choices[0].message.content, chat.choices[0].message.content);
  ok('errors: 400/401/404 with OpenAI bodies; server still answers');

  // Cancellation: a client that goes away mid-stream frees its sequence.
  const ac = new AbortController();
  const long = await client.chat.completions.create({ model, messages: user('Go on forever.'), max_tokens: 400, stream: true },
                                                     { signal: ac.signal });
  let got = 0;
  try {
    for await (const _ of long) if (++got === 3) ac.abort();
  } catch (e) {
    assert.ok(e.name === 'APIUserAbortError' || e.name === 'AbortError', e.name);
  }
  const t0 = Date.now();
  while ((await metric('holdfast_requests_running')) > 0 && Date.now() - t0 < 10_000) await new Promise((r) => setTimeout(r, 100));
  assert.equal(await metric('holdfast_requests_running'), 0);
  const generated = await metric('holdfast_generation_tokens_total');
  assert.ok(Number.isFinite(generated) && generated > 0);
  ok(`client disconnect cancels the sequence (freed in ${Date.now() - t0} ms)`);
  console.log(`openai_client api: ${checks} checks passed`);
}

async function r1() {
  const p = { model, messages: user('What is 2+2?'), max_tokens: 12, temperature: 0 };
  const r = await client.chat.completions.create(p);
  const m = r.choices[0].message;
  // A random-weight model never writes </think>: everything is reasoning and content is empty (§8.3).
  assert.equal(typeof m.reasoning_content, 'string');
  assert.ok(m.reasoning_content.length > 0);
  assert.equal(m.content, '');
  const s = await collectChat(p);
  assert.equal(s.reasoning[0], m.reasoning_content);
  assert.equal(s.content[0], undefined);
  const hist = await client.chat.completions.create({ ...p, messages: [
    { role: 'user', content: 'Hi' }, { role: 'assistant', content: '<think>\nsecret plan\n</think>\n\nHello!' },
    { role: 'user', content: 'Again?' }] });
  assert.equal(typeof hist.choices[0].message.reasoning_content, 'string');
  ok('R1: reasoning_content split (streaming and not), history with reasoning accepted');
  console.log(`openai_client r1: ${checks} checks passed`);
}

function percentile(xs, p) {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor((p / 100) * s.length))];
}

async function load() {
  const concurrency = Number(rest[0] ?? 64), total = Number(rest[1] ?? 200);
  let next = 0, done = 0, tokens = 0;
  const ttft = [], e2e = [];
  const t0 = performance.now();
  async function worker(w) {
    while (next < total) {
      const i = next++;
      const start = performance.now();
      let first = 0, n = 0, finish = null, content = '';
      const stream = await client.chat.completions.create({
        model, messages: user(`Load test request ${i}: say something.`), max_tokens: 8, temperature: 0.8, seed: i,
        stream: true, stream_options: { include_usage: true } });
      let usage = null;
      for await (const chunk of stream) {
        for (const c of chunk.choices) {
          if (c.delta?.content) { if (!first) first = performance.now(); content += c.delta.content; n++; }
          if (c.finish_reason) finish = c.finish_reason;
        }
        if (chunk.usage) usage = chunk.usage;
      }
      assert.ok(finish === 'length' || finish === 'stop', `request ${i} finished with ${finish}`);
      assert.ok(usage && usage.completion_tokens >= 1 && usage.completion_tokens <= 8, `request ${i} usage`);
      tokens += usage.completion_tokens;
      ttft.push((first || performance.now()) - start);
      e2e.push(performance.now() - start);
      done++;
    }
  }
  await Promise.all(Array.from({ length: concurrency }, (_, w) => worker(w)));
  const secs = (performance.now() - t0) / 1000;
  assert.equal(done, total);
  const f = (x) => x.toFixed(0);
  console.log(`load: ${total} streaming requests, ${concurrency} concurrent clients, all completed in ${secs.toFixed(1)} s`);
  console.log(`load: throughput ${(total / secs).toFixed(2)} req/s, ${(tokens / secs).toFixed(1)} generated tok/s`);
  console.log(`load: time to first token ms p50 ${f(percentile(ttft, 50))} p90 ${f(percentile(ttft, 90))} p99 ${f(percentile(ttft, 99))}`);
  console.log(`load: request latency ms p50 ${f(percentile(e2e, 50))} p90 ${f(percentile(e2e, 90))} p99 ${f(percentile(e2e, 99))}`);
}

const modes = { api, r1, load };
await modes[mode]();
