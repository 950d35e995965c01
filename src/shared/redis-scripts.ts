import { readFileSync } from 'node:fs';
import { Cluster, type RedisCommander } from 'ioredis';
import type { RedisConnection } from '../bus/redis-client.js';

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
export function defineScripts(redis: RedisConnection, ...scripts: RedisScript[]): void {
  for (const { command, lua, numberOfKeys } of scripts) {
    redis.defineCommand(command, { lua, numberOfKeys });
    // ioredis's cluster auto-pipelining groups a command by the slot of its first argument,
    // which for a script given its key count per call is that count, not a key: the batch then
    // fails ("All keys in the pipeline should belong to the same slots allocation group").
    // Such scripts are sent on their own; the cluster routes them by their keys.
    if (numberOfKeys === undefined && redis instanceof Cluster) {
      // A new array: the options' default one is shared by every cluster client.
      const ignored = redis.options.autoPipeliningIgnoredCommands ?? [];
      if (!ignored.includes(command)) redis.options.autoPipeliningIgnoredCommands = [...ignored, command];
    }
  }
}
