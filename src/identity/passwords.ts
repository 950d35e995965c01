import { randomBytes, scrypt, timingSafeEqual, type ScryptOptions } from 'node:crypto';

/**
 * Password hashes: scrypt (node:crypto), stored as
 * `scrypt$<log2 N>$<r>$<p>$<salt, base64>$<key, base64>`. Each hash carries its own
 * parameters, so the cost can be raised later and old hashes still verify.
 */
const SCHEME = 'scrypt';
const BLOCK_SIZE = 8;
const PARALLELISM = 1;
const SALT_BYTES = 16;
const KEY_BYTES = 32;
/** Bounds on parameters read back from storage: a damaged row cannot ask for gigabytes. */
const MAX_COST_LOG2 = 24;
const MAX_BLOCK_SIZE = 32;
const MAX_PARALLELISM = 16;

interface Parameters {
  costLog2: number;
  blockSize: number;
  parallelism: number;
}

function derive(password: string, salt: Buffer, keyBytes: number, { costLog2, blockSize, parallelism }: Parameters): Promise<Buffer> {
  const N = 2 ** costLog2;
  // scrypt needs 128·N·r bytes; node refuses anything over 32 MiB unless told (N = 2^15, r = 8 is exactly that).
  const options: ScryptOptions = { N, r: blockSize, p: parallelism, maxmem: 256 * N * blockSize };
  return new Promise((resolve, reject) => {
    scrypt(password.normalize('NFC'), salt, keyBytes, options, (err, key) => (err ? reject(err) : resolve(key)));
  });
}

/** A new hash of `password` at N = 2^costLog2, r = 8, p = 1, with a fresh 16-byte salt. */
export async function hashPassword(password: string, costLog2: number): Promise<string> {
  const parameters = { costLog2, blockSize: BLOCK_SIZE, parallelism: PARALLELISM };
  const salt = randomBytes(SALT_BYTES);
  const key = await derive(password, salt, KEY_BYTES, parameters);
  return [SCHEME, costLog2, BLOCK_SIZE, PARALLELISM, salt.toString('base64'), key.toString('base64')].join('$');
}

/** Whether `password` matches `stored`, with the parameters `stored` names; `false` for a malformed hash. */
export async function verifyPassword(password: string, stored: string): Promise<boolean> {
  const parsed = parseHash(stored);
  if (!parsed) return false;
  const key = await derive(password, parsed.salt, parsed.key.length, parsed.parameters);
  return timingSafeEqual(key, parsed.key);
}

function parseHash(stored: string): { parameters: Parameters; salt: Buffer; key: Buffer } | undefined {
  const parts = stored.split('$');
  if (parts.length !== 6 || parts[0] !== SCHEME) return undefined;
  const [costLog2, blockSize, parallelism] = parts.slice(1, 4).map((part) => (/^\d{1,2}$/.test(part) ? Number(part) : NaN)) as [number, number, number];
  if (!(costLog2 >= 1 && costLog2 <= MAX_COST_LOG2 && blockSize >= 1 && blockSize <= MAX_BLOCK_SIZE && parallelism >= 1 && parallelism <= MAX_PARALLELISM)) {
    return undefined;
  }
  const salt = Buffer.from(parts[4]!, 'base64');
  const key = Buffer.from(parts[5]!, 'base64');
  if (salt.length === 0 || key.length < 16) return undefined;
  return { parameters: { costLog2, blockSize, parallelism }, salt, key };
}
