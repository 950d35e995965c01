import { casefold } from '../shared/names.js';
import { el, store, stored } from './dom.js';
import type { ChatEvent, Me, Member, Modes } from './types.js';

/**
 * What the client knows. Views are keyed by their log: a channel by its casefolded name
 * (the `log` every event of it carries, so `#General` and `#general` are one view), a
 * private conversation by `dm:<id>-<id>` (or `query:<nick>` until its log is known), and
 * the server's notices (alerts, invitations, role changes) by `server`.
 */

export type ViewKind = 'channel' | 'private' | 'server';
export const SERVER_VIEW = 'server';

export const eventKey = (event: { log: string; seq: number }): string => `${event.log}/${event.seq}`;
export const sameNick = (a: unknown, b: unknown): boolean => typeof a === 'string' && typeof b === 'string' && casefold(a) === casefold(b);
export const channelKey = (name: string): string => casefold(name.startsWith('#') ? name : `#${name}`);

export class View {
  /** Events by (log, seq): whatever way an event comes (stream, poll, history, an answer), it is shown once. */
  readonly events = new Map<string, ChatEvent>();
  readonly list = el('ol', 'log');
  loaded = false;
  loading: Promise<void> | null = null;
  loadingOlder = false;
  hasOlder = false;
  topic = '';
  modes: Modes | null = null;
  members: Map<string, Member> | null = null;
  /** Messages since the reader last saw the bottom of this view, and how many name them. */
  unread = 0;
  mentions = 0;
  /** The highest seq read; persisted per user and log, so unread counts survive a reload. */
  readUpTo = 0;
  /** Opened from storage rather than by the user: a vanished peer is dropped silently. */
  restored = false;

  constructor(
    public key: string,
    readonly kind: ViewKind,
    public name: string,
  ) {
    this.list.setAttribute('role', 'log');
    this.list.dataset.view = key;
  }

  get log(): string | null {
    return this.key.startsWith('query:') ? null : this.key;
  }

  /** The smallest and largest seq of this view's own log (a server view mixes logs: by time instead). */
  get minSeq(): number {
    let min = Infinity;
    for (const event of this.events.values()) if (event.log === this.key && event.seq < min) min = event.seq;
    return min;
  }

  get maxSeq(): number {
    let max = 0;
    for (const event of this.events.values()) if (event.log === this.key && event.seq > max) max = event.seq;
    return max;
  }
}

export const state = {
  me: null as Me | null,
  views: new Map<string, View>(),
  current: null as string | null,
  /** Idle seconds of online users by casefolded nick, refreshed with the member list. */
  idle: new Map<string, number>(),
};

export const currentView = (): View | undefined => (state.current === null ? undefined : state.views.get(state.current));
export const isMe = (nick: unknown): boolean => state.me !== null && sameNick(nick, state.me.nick);

/** The sidebar's order, which alt+up/down follow: server notices, channels, conversations. */
export function orderedViews(): View[] {
  const rank = { server: 0, channel: 1, private: 2 } as const;
  return [...state.views.values()].sort((a, b) => rank[a.kind] - rank[b.kind] || casefold(a.name).localeCompare(casefold(b.name)));
}

export function privateViewOf(nick: string): View | undefined {
  return [...state.views.values()].find((v) => v.kind === 'private' && sameNick(v.name, nick));
}

/** Per-user browser storage: `canaduck:<what>:<casefolded nick>`. */
export const userKey = (what: string): string => `canaduck:${what}:${state.me ? casefold(state.me.nick) : ''}`;

export function loadReadMarks(): Record<string, number> {
  try {
    const marks: unknown = JSON.parse(stored(userKey('read')) ?? '{}');
    return marks && typeof marks === 'object' ? (marks as Record<string, number>) : {};
  } catch {
    return {};
  }
}

export function saveReadMark(view: View): void {
  if (!view.log) return;
  const marks = loadReadMarks();
  marks[view.log] = view.readUpTo;
  store(userKey('read'), JSON.stringify(marks));
}

/** Counts as unread: what people say, and alerts. */
export const isChatter = (event: ChatEvent): boolean =>
  event.type === 'message' || event.type === 'action' || event.type === 'private' || event.type === 'alert';
