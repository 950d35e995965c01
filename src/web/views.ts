import { casefold } from '../shared/names.js';
import { api, ApiError, channelPath, errorText, userPath } from './api.js';
import { byId, el, store } from './dom.js';
import { notifyAbout } from './notify.js';
import { atBottom, insertLine, note, renderEvent, renderHeader, renderMembers, renderSidebar, scrollToBottom, showAlert } from './render.js';
import {
  channelKey,
  currentView,
  eventKey,
  isChatter,
  isMe,
  loadReadMarks,
  privateViewOf,
  saveReadMark,
  SERVER_VIEW,
  sameNick,
  state,
  userKey,
  View,
  type ViewKind,
} from './state.js';
import { mentions } from './text.js';
import type { Channel, ChatEvent, History, JoinResult, Member, UserSummary } from './types.js';

/** The views: opening, showing, filling them from history and from the stream. */

const PAGE = 50;
let pickMember: (member: Member, item: HTMLLIElement) => void = () => {};

/** Set by the moderation menu (members.ts), which needs the views in turn. */
export function onMemberPicked(handler: (member: Member, item: HTMLLIElement) => void): void {
  pickMember = handler;
}

export const drawSidebar = (): void => renderSidebar(show);
export const drawMembers = (): void => renderMembers(pickMember);

export function viewFor(key: string, kind: ViewKind, name: string): View {
  let view = state.views.get(key);
  if (!view) {
    view = new View(key, kind, name);
    const mark = view.log ? loadReadMarks()[view.log] : undefined;
    if (typeof mark === 'number') view.readUpTo = mark;
    state.views.set(key, view);
    drawSidebar();
    if (kind === 'private') rememberConversations();
  }
  return view;
}

export function removeView(key: string): void {
  const view = state.views.get(key);
  if (!view) return;
  state.views.delete(key);
  if (view.kind === 'private') rememberConversations();
  if (state.current === key) {
    const next = [...state.views.values()].find((v) => v.kind === 'channel') ?? [...state.views.values()][0];
    state.current = null;
    if (next) show(next.key);
    else renderEmpty();
  }
  drawSidebar();
}

/** A conversation opened by nick before its log was known takes its log as key. */
function rekey(view: View, log: string): View {
  if (view.key === log) return view;
  const existing = state.views.get(log);
  state.views.delete(view.key);
  if (existing) {
    if (state.current === view.key) show(log);
    drawSidebar();
    return existing;
  }
  const wasCurrent = state.current === view.key;
  view.key = log;
  view.list.dataset.view = log;
  state.views.set(log, view);
  if (wasCurrent) state.current = log;
  drawSidebar();
  return view;
}

export function rememberConversations(): void {
  if (!state.me) return;
  const peers = [...state.views.values()].filter((v) => v.kind === 'private').map((v) => v.name);
  store(userKey('private'), JSON.stringify(peers));
}

export function renderEmpty(): void {
  byId('log-slot').replaceChildren(el('p', 'hint empty', 'Join a channel on the left, or type /join #general.'));
  renderHeader();
  drawMembers();
}

export function show(key: string): void {
  const view = state.views.get(key);
  if (!view) return;
  const previous = currentView();
  if (previous && previous !== view) markRead(previous);
  state.current = key;
  byId('log-slot').replaceChildren(view.list);
  document.body.classList.remove('sidebar-open', 'members-open');
  placeUnreadMarker(view);
  view.unread = 0;
  view.mentions = 0;
  drawSidebar();
  renderHeader();
  drawMembers();
  store(userKey('current'), key);
  if (!view.loaded) void load(view);
  if (view.kind === 'channel' && !view.members) void loadMembers(view);
  if (!matchMedia('(max-width: 760px)').matches) byId('input').focus();
}

/** A divider before the first line not yet read, with the view scrolled to it; else the bottom. */
function placeUnreadMarker(view: View): void {
  view.list.querySelector('.unread-marker')?.remove();
  const first = [...view.list.querySelectorAll<HTMLLIElement>('li[data-seq]')].find(
    (li) => li.dataset.log === view.key && Number(li.dataset.seq) > view.readUpTo && isChatterLine(li),
  );
  if (first && view.readUpTo > 0) {
    const marker = el('li', 'unread-marker', 'New since you last looked');
    marker.setAttribute('role', 'separator');
    first.before(marker);
    requestAnimationFrame(() => {
      marker.scrollIntoView({ block: 'start' });
      updateJumpButton();
    });
  } else {
    scrollToBottom();
  }
  updateJumpButton();
}

const isChatterLine = (li: HTMLLIElement) => ['message', 'action', 'private', 'alert'].includes(li.dataset.type ?? '') && !li.classList.contains('mine');

/** The "jump to first unread" button shows while the divider is above the visible part. */
export function updateJumpButton(): void {
  const view = currentView();
  const marker = view?.list.querySelector<HTMLElement>('.unread-marker');
  const scroller = byId('scroller');
  byId('jump-unread').hidden = !marker || marker.offsetTop >= scroller.scrollTop;
}

export function jumpToUnread(): void {
  currentView()?.list.querySelector('.unread-marker')?.scrollIntoView({ block: 'start', behavior: 'smooth' });
}

/** The reader has seen the view down to its last line. */
export function markRead(view: View): void {
  const max = view.maxSeq;
  if (max > view.readUpTo) {
    view.readUpTo = max;
    saveReadMark(view);
  }
}

/** Adds an event to its view once, whatever way it came; `live`: it is news (counts, notifications). */
export function addEvent(view: View, ev: ChatEvent, live: boolean): boolean {
  const key = eventKey(ev);
  if (view.events.has(key)) return false;
  view.events.set(key, ev);
  const shown = view.key === state.current;
  const stick = shown && atBottom();
  insertLine(view, renderEvent(ev, view, (channel) => void joinChannel(channel).catch((err) => note(errorText(err)))), ev);
  if (shown && stick) {
    scrollToBottom();
    if (!document.hidden) markRead(view);
  }
  const fresh = ev.log !== view.key || ev.seq > view.readUpTo;
  if (isChatter(ev) && !isMe(ev.nick) && fresh && (live || view.loaded === false)) {
    const named = ev.type === 'private' || ev.type === 'alert' || mentions(ev.text, state.me?.nick ?? '');
    if (!shown || document.hidden) {
      view.unread++;
      if (named) view.mentions++;
      drawSidebar();
    }
    if (live && named) notifyAbout(view, ev, () => show(view.key));
  }
  return true;
}

/** Keeps a channel's topic, modes and member list in step with its events. */
function applyChannelEvent(view: View, ev: ChatEvent): void {
  const members = view.members;
  const target = (value: unknown) => (typeof value === 'string' ? members?.get(casefold(value)) : undefined);
  switch (ev.type) {
    case 'topic':
      view.topic = ev.text;
      break;
    case 'join':
      members?.set(casefold(ev.nick), { nick: ev.nick, operator: members.get(casefold(ev.nick))?.operator ?? false, online: true, away: null });
      break;
    case 'part':
    case 'quit':
      members?.delete(casefold(ev.nick));
      break;
    case 'kick':
      if (typeof ev.data.target === 'string') members?.delete(casefold(ev.data.target));
      break;
    case 'nick': {
      const newNick = ev.data.newNick;
      if (typeof newNick !== 'string') break;
      const member = members?.get(casefold(ev.nick));
      if (member && members) {
        members.delete(casefold(ev.nick));
        members.set(casefold(newNick), { ...member, nick: newNick });
      }
      break;
    }
    case 'mode': {
      const d = ev.data;
      const op = target(d.op);
      if (op) op.operator = true;
      const deop = target(d.deop);
      if (deop) deop.operator = false;
      if ('away' in d) {
        const who = target(ev.nick);
        if (who) who.away = typeof d.away === 'string' ? { message: d.away, since: ev.ts } : null;
      }
      if (view.modes) {
        for (const flag of ['inviteOnly', 'topicLocked', 'moderated'] as const) if (typeof d[flag] === 'boolean') view.modes[flag] = d[flag];
        // The event is in the channel's log, which only members read: they may see the key.
        if ('key' in d) Object.assign(view.modes, typeof d.key === 'string' ? { hasKey: true, key: d.key } : { hasKey: false, key: null });
        if ('limit' in d) view.modes.limit = typeof d.limit === 'number' ? d.limit : null;
      }
      break;
    }
    default:
      return;
  }
  if (view.key === state.current) {
    renderHeader();
    drawMembers();
  }
}

let onRenamed: (nick: string) => void = () => {};
let onRoleChanged: () => void = () => {};
export function onIdentityEvents(renamed: (nick: string) => void, roleChanged: () => void): void {
  onRenamed = renamed;
  onRoleChanged = roleChanged;
}

/** One event from the stream or a long-poll. */
export function receive(ev: ChatEvent): void {
  if (typeof ev?.log !== 'string' || typeof ev.seq !== 'number') return;
  if (ev.log.startsWith('#')) {
    const mine = isMe(ev.nick);
    const existing = state.views.get(ev.log);
    const kickedMe = ev.type === 'kick' && isMe(ev.data.target);
    if (!existing && ((mine && (ev.type === 'part' || ev.type === 'quit')) || kickedMe)) return;
    const view = existing ?? viewFor(ev.log, 'channel', ev.log);
    if (!existing) void load(view); // joined elsewhere (another tab, IRC): its name and history
    if (!addEvent(view, ev, true)) return;
    applyChannelEvent(view, ev);
    if (ev.type === 'nick' && mine && typeof ev.data.newNick === 'string') onRenamed(ev.data.newNick);
    if ((ev.type === 'part' && mine) || kickedMe) {
      removeView(ev.log);
      if (kickedMe) {
        const how = ev.data.ban === true ? 'kicked and banned' : 'kicked';
        note(`You were ${how} from ${view.name} by ${ev.nick}${ev.text ? ` (${ev.text})` : ''}`);
      }
    } else if (!existing && mine && ev.type === 'join' && !state.current) {
      show(ev.log);
    }
    return;
  }
  if (ev.log.startsWith('dm:')) {
    const peer = isMe(ev.nick) ? String(ev.data.to ?? '?') : ev.nick;
    let view = state.views.get(ev.log);
    if (!view) {
      const pending = [...state.views.values()].find((v) => v.key.startsWith('query:') && sameNick(v.name, peer));
      view = pending ? rekey(pending, ev.log) : viewFor(ev.log, 'private', peer);
      if (!pending) void load(view);
    }
    if (view.name !== peer && peer !== '?') {
      view.name = peer; // the peer changed nick: show the one they use now
      rememberConversations();
      drawSidebar();
      if (view.key === state.current) renderHeader();
    }
    addEvent(view, ev, true);
    return;
  }
  // `server` (alerts) and `user:<id>` (invitations, role changes): the server view.
  const view = viewFor(SERVER_VIEW, 'server', 'Server notices');
  view.loaded = true;
  if (!addEvent(view, ev, true)) return;
  if (ev.type === 'alert') showAlert(ev);
  if (ev.type === 'mode' && typeof ev.data.role === 'string') onRoleChanged();
  if (ev.type === 'invite' && typeof ev.data.channel === 'string' && view.key !== state.current) {
    note(`${ev.nick} invited you to ${ev.data.channel}: /join ${ev.data.channel}`, 'info');
  }
}

/** The server could not continue `log` from our cursor (a restored database): it starts over. */
export function resetLog(log: string): void {
  for (const view of state.views.values()) {
    if (log !== '*' && view.key !== log) continue;
    view.events.clear();
    view.list.replaceChildren();
    view.loaded = false;
    if (view.kind !== 'server') void load(view);
  }
}

function historyPath(view: View): string | null {
  if (view.kind === 'channel') return `${channelPath(view.name)}/events`;
  if (view.kind === 'private') return `${userPath(view.name)}/events`;
  return null;
}

/** The newest page of a view's log, merged with whatever the stream already delivered. */
export function load(view: View): Promise<void> {
  view.loading ??= (async () => {
    const path = historyPath(view);
    try {
      if (view.kind === 'channel') {
        const info = await api<Channel>('GET', channelPath(view.name));
        view.name = info.name; // the display name (a view made from a stream event had the log's)
        view.topic = info.topic;
        view.modes = { ...info.modes };
      }
      if (path) {
        const page = await api<History>('GET', `${path}?limit=${PAGE}`);
        const first = page.events[0];
        if (first && view.key.startsWith('query:')) view = rekey(view, first.log);
        if (view.readUpTo === 0 && !loadReadMarks()[view.key]) view.readUpTo = page.events.at(-1)?.seq ?? 0; // first visit: nothing is news
        for (const ev of page.events) addEvent(view, ev, false);
        view.hasOlder = page.events.length >= PAGE;
      }
      view.loaded = true;
      drawSidebar();
      if (view.key === state.current) {
        renderHeader();
        placeUnreadMarker(view);
      }
    } catch (err) {
      if (err instanceof ApiError && (err.status === 403 || err.status === 404)) {
        removeView(view.key);
        if (!view.restored) note(view.kind === 'private' ? `No such nick: ${view.name}` : err.message);
      } else {
        note(`Could not load ${view.name}: ${errorText(err)}`);
      }
    } finally {
      view.loading = null;
    }
  })();
  return view.loading;
}

/** Scrollback: the page just before the oldest event shown. */
export async function loadOlder(): Promise<void> {
  const view = currentView();
  const path = view && historyPath(view);
  if (!view || !path || !view.hasOlder || view.loadingOlder) return;
  view.loadingOlder = true;
  const scroller = byId('scroller');
  const fromBottom = scroller.scrollHeight - scroller.scrollTop;
  try {
    const page = await api<History>('GET', `${path}?before=${view.minSeq}&limit=${PAGE}`);
    for (const ev of page.events) addEvent(view, ev, false);
    view.hasOlder = page.events.length >= PAGE;
    if (view.key === state.current) {
      scroller.scrollTop = scroller.scrollHeight - fromBottom; // keep the reader's place
      renderHeader();
    }
  } catch (err) {
    note(`Could not load older messages: ${errorText(err)}`);
  } finally {
    view.loadingOlder = false;
  }
}

export async function loadMembers(view: View): Promise<void> {
  try {
    const [{ members }, { users }] = await Promise.all([
      api<{ members: Member[] }>('GET', `${channelPath(view.name)}/members`),
      api<{ users: UserSummary[] }>('GET', '/api/users'),
    ]);
    view.members = new Map(members.map((m) => [casefold(m.nick), m]));
    state.idle = new Map(users.map((u) => [casefold(u.nick), u.idleSeconds]));
    if (view.key === state.current) drawMembers();
  } catch {
    // the member list is a convenience; the log is what matters
  }
}

/** `key`: the channel's key (IRC +k), for a channel that has one. */
export async function joinChannel(raw: string, key?: string): Promise<void> {
  const name = raw.startsWith('#') ? raw : `#${raw}`;
  const result = await api<JoinResult>('PUT', `${channelPath(name)}/membership`, key ? { key } : undefined);
  const view = viewFor(channelKey(result.channel.name), 'channel', result.channel.name);
  view.name = result.channel.name;
  view.topic = result.channel.topic;
  view.modes = { ...result.channel.modes };
  if (result.event && addEvent(view, result.event, false)) applyChannelEvent(view, result.event);
  show(view.key);
}

/** Opens (or switches to) the private conversation with `nick`. */
export function openQuery(nick: string, focus = true): View {
  const view = privateViewOf(nick) ?? viewFor(`query:${casefold(nick)}`, 'private', nick);
  if (focus) show(view.key);
  else if (!view.loaded) void load(view);
  return view;
}

export async function sendPrivate(nick: string, text: string, action = false): Promise<View> {
  const ev = await api<ChatEvent>('POST', `${userPath(nick)}/messages`, action ? { text, action } : { text });
  let view = state.views.get(ev.log);
  if (!view) {
    const pending = [...state.views.values()].find((v) => v.key.startsWith('query:') && sameNick(v.name, nick));
    view = pending ? rekey(pending, ev.log) : viewFor(ev.log, 'private', String(ev.data.to ?? nick));
  }
  addEvent(view, ev, false);
  return view;
}

/** Events a command's answer carries (itself, `event`, `events`) go into the view at once, ahead of the stream. */
export function absorb(view: View, answer: unknown): void {
  if (!answer || typeof answer !== 'object') return;
  const bare = 'log' in answer && 'seq' in answer ? (answer as ChatEvent) : null;
  const { event, events } = answer as { event?: ChatEvent | null; events?: ChatEvent[] };
  for (const ev of [...(bare ? [bare] : []), ...(event ? [event] : []), ...(events ?? [])]) {
    if (ev.log === view.key && addEvent(view, ev, false)) applyChannelEvent(view, ev);
  }
}

export function findChannel(name: string): View | undefined {
  const view = state.views.get(channelKey(name));
  return view?.kind === 'channel' ? view : undefined;
}
