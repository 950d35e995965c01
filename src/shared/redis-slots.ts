import { Cluster } from 'ioredis';
import type { RedisConnection } from '../bus/redis-client.js';

/** Redis Cluster's number of hash slots. */
export const SLOTS = 16384;

const CRC16_TABLE = (() => {
  const table = new Uint16Array(256);
  for (let byte = 0; byte < 256; byte++) {
    let crc = byte << 8;
    for (let bit = 0; bit < 8; bit++) crc = crc & 0x8000 ? ((crc << 1) ^ 0x1021) & 0xffff : (crc << 1) & 0xffff;
    table[byte] = crc;
  }
  return table;
})();

/**
 * The hash slot of a key or shard channel, as Redis Cluster computes it (CRC16-XMODEM of the
 * UTF-8 bytes, modulo 16384), hashing only the `{tag}` when the key has a non-empty one.
 * Not `cluster-key-slot` (ioredis's own): it disagrees with `CLUSTER KEYSLOT` on a key such as
 * `{}{tag}` (an empty first tag means the whole key is hashed), which the tests check.
 */
export function keySlot(key: string): number {
  let bytes = Buffer.from(key, 'utf8');
  const open = bytes.indexOf(0x7b); // {
  if (open >= 0) {
    const close = bytes.indexOf(0x7d, open + 1); // }
    if (close > open + 1) bytes = bytes.subarray(open + 1, close);
  }
  let crc = 0;
  for (const byte of bytes) crc = ((crc << 8) & 0xffff) ^ CRC16_TABLE[((crc >> 8) ^ byte) & 0xff]!;
  return crc % SLOTS;
}

/**
 * Splits `items` into the groups one script call may take: a script's keys must share a slot
 * on a Redis Cluster, so there each group holds the items of one slot (in their order); on a
 * single server everything is one group.
 */
export function groupBySlot<T>(redis: RedisConnection, items: readonly T[], keyOf: (item: T) => string): T[][] {
  if (!(redis instanceof Cluster)) return items.length > 0 ? [[...items]] : [];
  const groups = new Map<number, T[]>();
  for (const item of items) {
    const slot = keySlot(keyOf(item));
    const group = groups.get(slot);
    if (group) group.push(item);
    else groups.set(slot, [item]);
  }
  return [...groups.values()];
}
