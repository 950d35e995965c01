import { readFileSync } from 'node:fs';
import type { Redis, RedisCommander } from 'ioredis';

/**
 * A command name a script user has declared on ioredis's `RedisCommander` (its typed
 * signature sits beside the user, in a `declare module 'ioredis'` block): a script can only
 * be defined under a name whose call is typed.
 */
export type ScriptCommand = Extract<keyof RedisCommander, `canaduck${string}`>;

/** A Lua script, read once, and the command it is defined as. */
export interface RedisScript {
  readonly command: ScriptCommand;
  readonly lua: string;
  /** How many of the arguments are keys; absent when every call gives the count first. */
  readonly numberOfKeys?: number;
}

/**
 * Reads a `.lua` file once, at import of the module that uses it:
 * `redisScript('canaduckRaiseSeq', new URL('./raise-seq.lua', import.meta.url), 1)`.
 */
export function redisScript(command: ScriptCommand, file: URL, numberOfKeys?: number): RedisScript {
  return { command, lua: readFileSync(file, 'utf8'), numberOfKeys };
}

/**
 * Defines the scripts as commands on the client (EVALSHA, with EVAL after a `NOSCRIPT`, so a
 * `SCRIPT FLUSH` or a restarted Redis costs one resend; pipelines included). Defining the same
 * script again, by another user of a shared client, replaces it with itself.
 */
export function defineScripts(redis: Redis, ...scripts: RedisScript[]): void {
  for (const { command, lua, numberOfKeys } of scripts) redis.defineCommand(command, { lua, numberOfKeys });
}
