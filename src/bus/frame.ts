import { createHmac, timingSafeEqual } from 'node:crypto';
import type { Publication } from './bus.js';

/** Who may put frames on this deployment's channels: its id (public) and signing secret (kept in its database). */
export interface DeploymentIdentity {
  id: string;
  secret: string;
}

/**
 * Why a frame from Redis was not delivered (the label of `canaduck_bus_frames_dropped_total`):
 * the frame's own checks, then the consumer's check of the event inside.
 */
export type DropReason = 'malformed' | 'foreign_deployment' | 'bad_signature' | 'invalid_event' | 'log_mismatch';

export type Decoded = { publication: Publication } | { own: true } | { dropped: DropReason; detail: string };

const VERSION = 'cd1';
const MAC_BYTES = 16;
const LINE_BREAK = /[\r\n]/;

/**
 * The wire form of a publication on Redis pub/sub: one header line, then the event's JSON
 * as the writer serialised it (never containing CR or LF, so it is one SSE `data:` line).
 *
 *     cd1 <deployment id> <replica id> <subject or -> <mac>\n<event JSON>
 *
 * The mac is an HMAC-SHA256 (first 16 bytes, base64url) over the log, the subject and the
 * JSON, keyed by the deployment's secret: only a replica of this deployment can make a
 * frame that is delivered, and a frame moved to another log's channel fails it.
 */
export class FrameCodec {
  private readonly key: Buffer;

  constructor(
    readonly identity: DeploymentIdentity,
    private readonly replicaId: string,
  ) {
    for (const [name, value] of [['deployment id', identity.id], ['replica id', replicaId]]) {
      if (!/^[\w.:-]{1,100}$/.test(value!)) throw new Error(`${name} must be 1–100 of [A-Za-z0-9_.:-]`);
    }
    this.key = Buffer.from(identity.secret, 'utf8');
  }

  encode(publication: Publication): string {
    const subject = publication.subject === undefined ? '-' : String(publication.subject);
    const mac = this.mac(publication.log, subject, publication.json).toString('base64url');
    return `${VERSION} ${this.identity.id} ${this.replicaId} ${subject} ${mac}\n${publication.json}`;
  }

  /**
   * A frame received on the channel of `log`: the log comes from the channel, never from the
   * frame. What the JSON holds is for the consumer to check.
   */
  decode(log: string, message: string): Decoded {
    const newline = message.indexOf('\n');
    if (newline < 0) return drop('malformed', 'no header line');
    const header = message.slice(0, newline).split(' ');
    const json = message.slice(newline + 1);
    if (header.length !== 5 || header[0] !== VERSION) return drop('malformed', 'not a frame of this version');
    const [, deployment, replica, subjectText, macText] = header as [string, string, string, string, string];
    if (deployment !== this.identity.id) return drop('foreign_deployment', `from deployment ${deployment.slice(0, 100)}`);
    if (replica === this.replicaId) return { own: true };
    const mac = Buffer.from(macText, 'base64url');
    const expected = this.mac(log, subjectText, json);
    if (mac.length !== MAC_BYTES || !timingSafeEqual(mac, expected)) return drop('bad_signature', 'the signature does not match');
    if (LINE_BREAK.test(json)) return drop('malformed', 'line break in the event JSON');
    const subject = subjectText === '-' ? undefined : Number(subjectText);
    if (subject !== undefined && (!/^\d{1,16}$/.test(subjectText) || !Number.isSafeInteger(subject))) return drop('malformed', 'bad subject');
    return { publication: subject === undefined ? { log, json } : { log, json, subject } };
  }

  private mac(log: string, subject: string, json: string): Buffer {
    return createHmac('sha256', this.key).update(`${log}\n${subject}\n`).update(json).digest().subarray(0, MAC_BYTES);
  }
}

const drop = (dropped: DropReason, detail: string): Decoded => ({ dropped, detail });
