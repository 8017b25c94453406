#!/usr/bin/env node
// Stream a chat answer from an OpenAI-compatible endpoint with the official openai SDK.
//
// The same code talks to the stack's LocalAI endpoint or to the real OpenAI API; only
// environment variables decide which:
//
//   OPENAI_BASE_URL     endpoint ending in /v1 (unset: the SDK's default, api.openai.com)
//   OPENAI_API_KEY      the key (the stack's key, or your OpenAI key)
//   OPENAI_MODEL        model name (default: gpt-4o-mini)
//   OPENAI_TIMEOUT      seconds to wait for the answer to start (default: 120; the first
//                       request may load the model)
//   OPENAI_MAX_RETRIES  retries on connection errors, timeouts, 429 and 5xx (default: 2)
//
// Usage: node chat.mjs Why is the sky blue?
//
// Exit codes: 0 ok, 2 usage, 3 configuration (key unset, bad OPENAI_TIMEOUT),
// 4 API key rejected, 5 endpoint unreachable, 6 timeout, 7 model not found,
// 8 other API error, 9 empty answer. Errors are one line on stderr, never a stack trace.
//
// An empty answer is an error: LocalAI (v2.24.0) answers a streamed request it cannot serve
// (an unknown model name, a model that fails to load) with HTTP 200 and a stream without
// content. The example then asks /v1/models whether the model exists (exit 7 if not) and
// otherwise reports the empty answer (exit 9). Apps that stream should do the same.

import { STATUS_CODES } from 'node:http';

import OpenAI from 'openai';

const DEFAULT_MODEL = 'gpt-4o-mini';
const DEFAULT_TIMEOUT_S = 120;

const EXIT = {
  usage: 2,
  config: 3,
  auth: 4,
  unreachable: 5,
  timeout: 6,
  model: 7,
  api: 8,
  empty: 9,
};

const KEY_HINT = 'Check OPENAI_API_KEY (pulumi stack output --show-secrets OPENAI_API_KEY).';
const URL_HINT =
  'Check OPENAI_BASE_URL (pulumi stack output OPENAI_BASE_URL) and that the stack is up.';
const MODEL_HINT = 'Check OPENAI_MODEL (pulumi stack output OPENAI_MODEL).';

class ChatError extends Error {
  constructor(exitCode, message) {
    super(message);
    this.exitCode = exitCode;
  }
}

async function main(argv) {
  const prompt = argv.join(' ').trim();
  if (!prompt) {
    process.stderr.write('usage: node chat.mjs PROMPT...\n');
    return EXIT.usage;
  }
  try {
    const { client, model, timeoutS } = clientFromEnv();
    await streamAnswer(client, model, prompt, timeoutS);
  } catch (err) {
    if (err instanceof ChatError) {
      process.stderr.write(`error: ${err.message}\n`);
      return err.exitCode;
    }
    process.stderr.write(`error: unexpected failure: ${oneLine(err?.message ?? String(err))}\n`);
    return 1;
  }
  return 0;
}

function clientFromEnv() {
  const timeoutS = numberEnv('OPENAI_TIMEOUT', DEFAULT_TIMEOUT_S, 'a number of seconds');
  const maxRetries = Math.trunc(numberEnv('OPENAI_MAX_RETRIES', 2, 'a whole number'));
  let client;
  try {
    // baseURL and apiKey come from OPENAI_BASE_URL / OPENAI_API_KEY (the SDK reads them;
    // an empty OPENAI_BASE_URL counts as unset).
    client = new OpenAI({ timeout: timeoutS * 1000, maxRetries });
  } catch (err) {
    if (err instanceof OpenAI.OpenAIError) {
      throw new ChatError(EXIT.config, `OPENAI_API_KEY is not set. ${KEY_HINT}`);
    }
    throw err;
  }
  return { client, model: process.env.OPENAI_MODEL?.trim() || DEFAULT_MODEL, timeoutS };
}

function numberEnv(name, fallback, what) {
  const raw = process.env[name]?.trim();
  if (!raw) return fallback;
  const value = Number(raw);
  if (!Number.isFinite(value) || value < 0) {
    throw new ChatError(EXIT.config, `${name}=${JSON.stringify(raw)} is not ${what} >= 0.`);
  }
  return value;
}

async function streamAnswer(client, model, prompt, timeoutS) {
  const endpoint = client.baseURL.replace(/\/+$/, '');
  let wrote = false;
  try {
    const stream = await client.chat.completions.create({
      model,
      messages: [{ role: 'user', content: prompt }],
      stream: true,
    });
    for await (const chunk of stream) {
      const text = chunk.choices?.[0]?.delta?.content;
      if (text) {
        await write(text); // each chunk is flushed as it arrives
        wrote = true;
      }
    }
  } catch (err) {
    if (wrote) await write('\n'); // keep the partial answer on its own line
    if (err instanceof OpenAI.APIError) throw explain(err, endpoint, model, timeoutS);
    throw err;
  }
  if (!wrote) throw await emptyAnswer(client, endpoint, model);
  await write('\n');
}

// A stream that ended without content: an unknown model, or one that did not run.
async function emptyAnswer(client, endpoint, model) {
  const at = `the endpoint at ${endpoint}`;
  let served = null;
  try {
    served = [];
    for await (const m of client.models.list()) served.push(m.id);
    served.sort();
  } catch (err) {
    if (!(err instanceof OpenAI.APIError)) throw err;
    served = null;
  }
  if (served !== null && !served.includes(model)) {
    const listed = served.join(', ') || 'none';
    return new ChatError(
      EXIT.model,
      `${at} does not serve model ${JSON.stringify(model)} (an empty answer; it serves: ` +
        `${listed}). ${MODEL_HINT}`,
    );
  }
  return new ChatError(
    EXIT.empty,
    `${at} sent an empty answer for model ${JSON.stringify(model)}: the model failed to load ` +
      "or to generate (out of memory, a damaged weights file). Check the server's log.",
  );
}

function write(text) {
  // Resolve once the chunk is handed to the OS, so a pipe reader sees it immediately
  // and nothing is lost when we exit right after.
  return new Promise((resolve, reject) => {
    process.stdout.write(text, (err) => (err ? reject(err) : resolve()));
  });
}

function explain(err, endpoint, model, timeoutS) {
  const at = `the endpoint at ${endpoint}`;
  if (err instanceof OpenAI.APIConnectionTimeoutError) {
    return new ChatError(
      EXIT.timeout,
      `${at} did not answer within ${timeoutS} s (timeout). The model may still be ` +
        'loading or the machine is overloaded; retry, or raise OPENAI_TIMEOUT.',
    );
  }
  if (err instanceof OpenAI.APIConnectionError) {
    return new ChatError(EXIT.unreachable, `cannot connect to ${at} (${cause(err)}). ${URL_HINT}`);
  }
  if (err instanceof OpenAI.AuthenticationError || err instanceof OpenAI.PermissionDeniedError) {
    return new ChatError(EXIT.auth, `${at} rejected the API key (${err.status}). ${KEY_HINT}`);
  }
  const status = err.status;
  const text = detail(err);
  if (isModelError(err, status, text)) {
    return new ChatError(
      EXIT.model,
      `${at} does not serve model ${JSON.stringify(model)} (${status}: ${text}). ${MODEL_HINT}`,
    );
  }
  if (status === 404) {
    return new ChatError(
      EXIT.api,
      `${at} has no chat completions API (404: ${text}). Check that OPENAI_BASE_URL ends in /v1.`,
    );
  }
  const where = status ? `${status}: ` : '';
  return new ChatError(EXIT.api, `${at} returned an error (${where}${text}).`);
}

function isModelError(err, status, text) {
  // OpenAI (and vLLM): 404 with code "model_not_found". LocalAI: 500 "could not load
  // model ...". llama.cpp servers ignore the name and answer with their only model.
  if (err.code === 'model_not_found') return true;
  const lowered = text.toLowerCase();
  return (
    [400, 404, 500].includes(status) &&
    lowered.includes('model') &&
    ['not found', 'does not exist', 'could not load', 'unknown'].some((s) => lowered.includes(s))
  );
}

function detail(err) {
  // err.error is the body's "error" object (OpenAI shape); FastAPI servers send "detail".
  const body = err.error;
  let text = typeof body?.message === 'string' ? body.message : null;
  if (!text && typeof body === 'string') text = body;
  if (!text && /status code \(no body\)$/.test(err.message)) {
    // The SDK keeps only an OpenAI-shaped {"error": ...}; use the HTTP reason phrase.
    text = STATUS_CODES[err.status] ?? 'no error message';
  }
  if (!text) text = err.message.replace(/^\d{3}\s+/, '');
  text = oneLine(text);
  return text.length <= 200 ? text : `${text.slice(0, 197)}...`;
}

function cause(err) {
  // fetch failures nest: APIConnectionError -> TypeError('fetch failed') -> Error{code}
  let inner = err;
  while (inner?.cause) inner = inner.cause;
  const errors = inner?.errors ?? [inner]; // AggregateError when IPv4 and IPv6 both fail
  const code = errors.map((e) => e?.code).find(Boolean);
  if (code === 'ECONNREFUSED') return 'connection refused';
  if (code === 'ENOTFOUND' || code === 'EAI_AGAIN') return 'the host name does not resolve';
  if (code) return `${code}: ${oneLine(inner?.message ?? '')}`;
  return oneLine(inner?.message ?? String(inner));
}

function oneLine(text) {
  return String(text).split(/\s+/).filter(Boolean).join(' ');
}

process.stdout.on('error', (err) => {
  if (err.code === 'EPIPE') process.exit(0); // e.g. piped into `head`
  throw err;
});
process.exitCode = await main(process.argv.slice(2));
