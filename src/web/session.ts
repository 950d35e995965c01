import { api, ApiError, errorText } from './api.js';
import { byId, store, stored } from './dom.js';
import { note } from './render.js';
import { SERVER_VIEW, channelKey, isMe, state, userKey } from './state.js';
import { Connection, currentCursor, type Health, type Transport } from './stream.js';
import type { Me, Motd } from './types.js';
import { load, openQuery, receive, renderEmpty, resetLog, show, viewFor } from './views.js';

/** Signing in and out, the connection, and who you are (nick, role, away). */

const TRANSPORT_KEY = 'canaduck:transport';
let connection: Connection | null = null;

/** `?transport=poll` in the address, or the setting: long-poll only. `?transport=auto` overrides the setting. */
export function forcedPoll(): boolean {
  const asked = new URLSearchParams(location.search).get('transport');
  if (asked) return asked === 'poll';
  return stored(TRANSPORT_KEY) === 'poll';
}

export function setTransportSetting(poll: boolean): void {
  store(TRANSPORT_KEY, poll ? 'poll' : null);
  if (!connection) return;
  const from = connection.position; // the new transport resumes exactly where this one stopped
  connection.stop();
  startConnection(from);
}

function setConnectionStatus(health: Health, transport: Transport): void {
  const node = byId('connection');
  node.dataset.state = health;
  node.dataset.transport = transport;
  const via = transport === 'poll' ? ' · long-poll' : '';
  node.textContent = health === 'live' ? `live${via}` : health === 'connecting' ? `connecting${via}…` : 'offline';
}

function startConnection(cursor: string): void {
  connection = new Connection(
    cursor,
    {
      event: receive,
      reset: resetLog,
      ended: () => signedOut('Your session has ended. Pick a nick again.'),
      status: setConnectionStatus,
    },
    forcedPoll(),
  );
  connection.start();
}

/** Your nick, role and away state in the top bar. */
export function renderMe(): void {
  const me = state.me;
  if (!me) return;
  byId('me').textContent = me.nick;
  const role = byId('role');
  role.textContent = me.role === 'user' ? (me.registered ? 'registered' : 'guest') : me.role;
  role.dataset.role = me.role;
  byId('me-away').hidden = !me.away;
  byId('me-away').title = me.away ? `away: ${me.away.message}` : '';
}

export function updateMe(me: Me): void {
  if (!state.me) return;
  const renamed = !isMe(me.nick);
  if (renamed) {
    // carry this user's remembered views over to the new nick
    const kept = ['private', 'current', 'read'].map((what) => [what, stored(userKey(what))] as const);
    state.me = { ...state.me, ...me };
    for (const [what, value] of kept) if (value !== null) store(userKey(what), value);
  } else {
    state.me = { ...state.me, ...me };
  }
  renderMe();
}

export async function refreshMe(): Promise<void> {
  updateMe(await api<Me>('GET', '/api/me'));
}

export function showMotd(motd: Motd, always: boolean): void {
  if (!motd.motd) {
    if (always) note('There is no message of the day', 'info');
    return;
  }
  byId('motd-text').textContent = motd.motd;
  byId('motd').hidden = false;
}

export async function enter(me: Me): Promise<void> {
  state.me = me;
  renderMe();
  byId('login').hidden = true;
  byId('chat').hidden = false;
  byId('me-box').hidden = false;
  byId('quit').hidden = false;
  // The cursor is taken before any history is read: what happens in between comes twice at
  // worst (and is shown once), never not at all.
  startConnection(await currentCursor());
  for (const name of me.channels) viewFor(channelKey(name), 'channel', name);
  let peers: unknown = [];
  try {
    peers = JSON.parse(stored(userKey('private')) ?? '[]');
  } catch {
    peers = [];
  }
  for (const peer of Array.isArray(peers) ? peers : []) if (typeof peer === 'string') openQuery(peer, false).restored = true;
  const saved = stored(userKey('current'));
  const first = (saved && saved !== SERVER_VIEW ? state.views.get(saved) : undefined) ?? [...state.views.values()].find((v) => v.kind === 'channel');
  if (first) show(first.key);
  else renderEmpty();
  for (const view of state.views.values()) if (!view.loaded) void load(view);
  void api<Motd>('GET', '/api/motd').then((motd) => showMotd(motd, false), () => {});
}

export function signedOut(message?: string): void {
  connection?.stop();
  connection = null;
  state.me = null;
  state.views.clear();
  state.current = null;
  byId('chat').hidden = true;
  byId('me-box').hidden = true;
  byId('quit').hidden = true;
  byId('motd').hidden = true;
  byId('login').hidden = false;
  byId('login-error').textContent = message ?? '';
  byId('channel-list').replaceChildren();
  byId('private-list').replaceChildren();
  byId('log-slot').replaceChildren();
  byId('alerts').replaceChildren();
  byId('connection').dataset.state = 'offline';
  byId('connection').textContent = 'offline';
  byId<HTMLInputElement>('login-nick').focus();
}

export async function claim(nick: string, password: string): Promise<void> {
  byId('login-error').textContent = '';
  try {
    await api('POST', '/api/sessions', password ? { nick, password } : { nick }, { checksPassword: true });
    await enter(await api<Me>('GET', '/api/me'));
  } catch (err) {
    const registered = err instanceof ApiError && err.status === 401 && !password;
    byId('login-error').textContent = errorText(err);
    if (registered) byId<HTMLInputElement>('login-password').focus();
  }
}

export async function quit(reason: string): Promise<void> {
  try {
    await api('DELETE', '/api/sessions/current', reason ? { reason } : undefined);
  } finally {
    signedOut('You quit. Pick a nick to come back.');
  }
}
