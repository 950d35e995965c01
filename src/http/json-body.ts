import type { Context, MiddlewareHandler } from 'hono';
import { CanaDuckError } from '../errors.js';
import type { AppEnv } from './env.js';
import { SAFE_METHODS } from './session.js';

export const MAX_BODY_BYTES = 16 * 1024;
const MAX_DEPTH = 16;
const FORBIDDEN_KEYS = new Set(['__proto__', 'constructor', 'prototype']);
const JSON_MEDIA_TYPE = /^application\/([\w.-]+\+)?json$/i;

const invalid = (detail: string) => new CanaDuckError('validation_failed', detail);

/**
 * Reads request bodies ourselves, before any validator: at most 16 KiB however the body
 * is framed (a chunked body that never ends is cut off), JSON only, valid UTF-8, and
 * none of the JSON traps: prototype keys, integers beyond 2^53, deep nesting, lone
 * surrogates. The accepted text is handed to Hono's body cache for the validators.
 */
export const jsonBody: MiddlewareHandler<AppEnv> = async (c, next) => {
  if (SAFE_METHODS.has(c.req.method)) return next();
  const declared = Number(c.req.header('content-length') ?? NaN);
  if (declared > MAX_BODY_BYTES) throw tooLarge();
  const bytes = await readBounded(c);
  if (bytes.length === 0) {
    cacheBodyText(c.req.bodyCache, ''); // no body: optional-body routes see none, others fail validation
    return next();
  }
  const mediaType = (c.req.header('content-type') ?? '').split(';')[0]!.trim();
  if (!JSON_MEDIA_TYPE.test(mediaType)) {
    throw new CanaDuckError('unsupported_media_type', 'send the body as application/json');
  }
  let text: string;
  try {
    text = utf8.decode(bytes);
  } catch {
    throw invalid('the body is not valid UTF-8');
  }
  checkJson(text);
  cacheBodyText(c.req.bodyCache, text);
  return next();
};

const utf8 = new TextDecoder('utf-8', { fatal: true });

/** Hono's body cache holds promises although its type says values (hono/src/request.ts #cachedBody). */
const cacheBodyText = (cache: object, text: string) => {
  (cache as { text?: Promise<string> }).text = Promise.resolve(text);
};

const tooLarge = () => new CanaDuckError('payload_too_large', `the request body is larger than ${MAX_BODY_BYTES / 1024} KiB`);

/**
 * Reads from the Node request itself: going through `c.req.raw.body` would build a web
 * `Request`, an `AbortSignal` and a web stream for every POST, a large share of the CPU
 * a message costs. Past the bound the rest is not read and the connection closes after
 * the answer (the client may still be sending). Without Node bindings (`app.request`
 * in-process), the web body is read with the same bound.
 */
function readBounded(c: Context<AppEnv>): Promise<Uint8Array> {
  const incoming = c.env?.incoming;
  if (!incoming) return readWebBody(c.req.raw.body);
  if (incoming.readableEnded) return Promise.resolve(new Uint8Array());
  return new Promise((resolve, reject) => new BoundedRead(incoming, c.env.outgoing, resolve, reject).start());
}

/**
 * One body being read. Its listeners are bound methods, not closures: tsx (esbuild's
 * `keepNames`) names every closure stored in a variable with a `defineProperty` call, five
 * of them per POST.
 */
class BoundedRead {
  private readonly chunks: Buffer[] = [];
  private size = 0;
  private readonly onData = this.data.bind(this);
  private readonly onEnd = this.end.bind(this);
  private readonly onError = this.error.bind(this);
  private readonly onAborted = this.aborted.bind(this);

  constructor(
    private readonly incoming: AppEnv['Bindings']['incoming'],
    private readonly outgoing: AppEnv['Bindings']['outgoing'],
    private readonly resolve: (body: Uint8Array) => void,
    private readonly reject: (err: unknown) => void,
  ) {}

  start(): void {
    this.incoming.on('data', this.onData);
    this.incoming.on('end', this.onEnd);
    this.incoming.on('error', this.onError);
    this.incoming.on('aborted', this.onAborted);
  }

  private data(chunk: Buffer): void {
    this.size += chunk.length;
    if (this.size <= MAX_BODY_BYTES) return void this.chunks.push(chunk);
    // Past the bound the rest is not read, and the connection closes after the answer.
    this.cleanup();
    this.incoming.pause();
    this.outgoing.shouldKeepAlive = false;
    this.reject(tooLarge());
  }

  private end(): void {
    this.cleanup();
    this.resolve(this.chunks.length === 1 ? this.chunks[0]! : Buffer.concat(this.chunks));
  }

  private error(err: Error): void {
    this.cleanup();
    this.reject(invalid(`the body could not be read: ${err.message}`));
  }

  private aborted(): void {
    this.error(new Error('the client went away'));
  }

  private cleanup(): void {
    this.incoming.off('data', this.onData);
    this.incoming.off('end', this.onEnd);
    this.incoming.off('error', this.onError);
    this.incoming.off('aborted', this.onAborted);
  }
}

async function readWebBody(body: ReadableStream<Uint8Array> | null): Promise<Uint8Array> {
  if (!body) return new Uint8Array();
  const reader = body.getReader();
  const chunks: Uint8Array[] = [];
  let size = 0;
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    size += value.byteLength;
    if (size > MAX_BODY_BYTES) {
      await reader.cancel().catch(() => {});
      throw tooLarge();
    }
    chunks.push(value);
  }
  return Buffer.concat(chunks);
}

/**
 * Parses to check; throws `validation_failed` naming the first trap found. One walk over
 * the parsed value checks every key and value: a reviver would cost a call per value and
 * make `JSON.parse` itself several times slower. `JSON.parse` defines `__proto__` as an
 * own key (it never sets the prototype), so the walk sees it as any other key.
 */
export function checkJson(text: string): void {
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch {
    throw invalid('the body is not valid JSON');
  }
  // Iteratively: JSON.parse itself copes with deep input, but nothing here needs it.
  const stack: Array<[unknown, number]> = [[parsed, 1]];
  while (stack.length > 0) {
    const [value, depth] = stack.pop()!;
    checkValue(value);
    if (value === null || typeof value !== 'object') continue;
    if (depth > MAX_DEPTH) throw invalid(`the body is nested deeper than ${MAX_DEPTH} levels`);
    if (Array.isArray(value)) {
      for (const child of value) stack.push([child, depth + 1]);
      continue;
    }
    for (const key of Object.keys(value)) {
      if (FORBIDDEN_KEYS.has(key)) throw invalid(`the key ${JSON.stringify(key)} is not allowed`);
      if (!key.isWellFormed()) throw invalid('the body contains a lone surrogate');
      stack.push([(value as Record<string, unknown>)[key], depth + 1]);
    }
  }
}

function checkValue(value: unknown): void {
  if (typeof value === 'number' && Number.isInteger(value) && !Number.isSafeInteger(value)) {
    throw invalid('integers beyond 2^53 - 1 are not accepted');
  }
  if (typeof value === 'string' && !value.isWellFormed()) throw invalid('the body contains a lone surrogate');
}
