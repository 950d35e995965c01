// CanaDuck web client: no build step, no framework. One EventSource on /api/stream
// carries everything this user receives (browsers allow six HTTP/1.1 connections per
// origin); every view is updated from it and from history, deduplicated by (log, seq).
// All user-supplied text is rendered with textContent, never as HTML.

const EVENT_TYPES = ['message', 'action', 'join', 'part', 'quit', 'kick', 'nick', 'topic', 'mode', 'invite', 'private', 'alert'];
const PAGE = 50;

const $ = (id) => document.getElementById(id);
const el = (tag, className, text) => {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (text !== undefined) node.textContent = text;
  return node;
};

/** RFC 1459 casemapping: `[]\~` are the upper case of `{}|^`. */
const fold = (s) => s.toLowerCase().replace(/\[/g, '{').replace(/]/g, '}').replace(/\\/g, '|').replace(/~/g, '^');
const sameNick = (a, b) => typeof a === 'string' && typeof b === 'string' && fold(a) === fold(b);
const channelPath = (name) => `/api/channels/${encodeURIComponent(name.replace(/^#/, ''))}`;
const userPath = (nick) => `/api/users/${encodeURIComponent(nick)}`;

class ApiError extends Error {
  constructor(status, problem) {
    super(problem?.detail || problem?.title || `HTTP ${status}`);
    this.status = status;
    this.code = problem?.code;
  }
}

/** Same-origin JSON requests; the session travels in the HttpOnly cookie. */
async function api(method, path, body) {
  const init = { method, credentials: 'same-origin', headers: { accept: 'application/json' } };
  if (body !== undefined) {
    init.headers['content-type'] = 'application/json';
    init.body = JSON.stringify(body);
  }
  const res = await fetch(path, init);
  const text = await res.text();
  let data;
  try {
    data = text ? JSON.parse(text) : undefined;
  } catch {
    data = undefined;
  }
  if (!res.ok) {
    const err = new ApiError(res.status, data);
    if (res.status === 401 && state.me) signedOut('Your session has ended. Pick a nick again.');
    throw err;
  }
  return data;
}

// ---------------------------------------------------------------- state

const state = {
  me: null, // { nick }
  views: new Map(), // key -> View
  current: null, // key
  source: null, // the one EventSource
  reopenTimer: 0,
  reopenDelay: 1000,
};

/**
 * A view: one channel, one private conversation, or the server notices. Its events are
 * kept by seq and rendered into its own <ol>, attached to the page while it is shown.
 */
class View {
  constructor(key, kind, name) {
    this.key = key; // the log name (`#general`, `dm:3-7`), or `query:<nick>` until the log is known
    this.kind = kind; // 'channel' | 'private' | 'notices'
    this.name = name; // '#general', the peer's nick, or 'notices'
    this.events = new Map(); // seq -> event
    this.list = el('ol', 'log');
    this.list.setAttribute('role', 'log');
    this.list.setAttribute('aria-live', 'polite');
    this.list.dataset.view = key;
    this.loaded = false;
    this.loading = null;
    this.hasOlder = false;
    this.topic = '';
    this.members = null; // Map(fold(nick) -> {nick, operator, online}) once loaded
    this.unread = 0;
    this.item = null; // sidebar entry
  }

  get log() {
    return this.key.startsWith('query:') ? null : this.key;
  }

  get minSeq() {
    let min = Infinity;
    for (const seq of this.events.keys()) if (seq < min) min = seq;
    return min;
  }

  get maxSeq() {
    let max = 0;
    for (const seq of this.events.keys()) if (seq > max) max = seq;
    return max;
  }
}

function viewFor(key, kind, name) {
  let view = state.views.get(key);
  if (!view) {
    view = new View(key, kind, name);
    state.views.set(key, view);
    renderSidebar();
    if (kind === 'private') rememberConversations();
  }
  return view;
}

function removeView(key) {
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
  renderSidebar();
}

/** A private conversation opened by nick before its log is known gets its real key. */
function rekey(view, log) {
  if (view.key === log) return view;
  const existing = state.views.get(log);
  state.views.delete(view.key);
  if (existing) {
    if (state.current === view.key) show(log);
    renderSidebar();
    return existing;
  }
  const wasCurrent = state.current === view.key;
  view.key = log;
  view.list.dataset.view = log;
  state.views.set(log, view);
  if (wasCurrent) state.current = log;
  renderSidebar();
  return view;
}

// ---------------------------------------------------------------- rendering

const timeOf = (ts) => {
  const d = new Date(ts);
  return Number.isNaN(d.getTime()) ? '' : d.toLocaleTimeString([], { hour: '2-digit', minute: '2-digit' });
};

const modeText = (data) => {
  const names = { inviteOnly: 'i', topicLocked: 't', moderated: 'm' };
  const parts = [];
  for (const [key, letter] of Object.entries(names)) if (typeof data?.[key] === 'boolean') parts.push(`${data[key] ? '+' : '-'}${letter}`);
  return parts.length ? parts.join(' ') : JSON.stringify(data ?? {});
};

const kickTarget = (ev) => ev.data?.target ?? ev.data?.nick ?? ev.data?.kicked ?? '';

/** The line for one event, as DOM nodes whose text is set with textContent only. */
function renderEvent(ev) {
  const li = el('li', `ev ev-${ev.type}`);
  li.dataset.seq = String(ev.seq);
  li.dataset.log = ev.log;
  li.dataset.type = ev.type;
  const time = el('time', '', timeOf(ev.ts));
  time.dateTime = ev.ts;
  li.append(time);
  const nick = el('span', 'nick', ev.nick);
  const text = (t) => el('span', 'text', t);
  if (state.me && sameNick(ev.nick, state.me.nick)) li.classList.add('mine');
  const reason = ev.text ? ` (${ev.text})` : '';
  switch (ev.type) {
    case 'message':
    case 'private':
    case 'action':
      li.append(nick, text(ev.text));
      break;
    case 'join':
      li.classList.add('system');
      li.append(nick, text(`joined ${ev.log}`));
      break;
    case 'part':
      li.classList.add('system');
      li.append(nick, text(`left ${ev.log}${reason}`));
      break;
    case 'quit':
      li.classList.add('system');
      li.append(nick, text(`quit${reason}`));
      break;
    case 'kick':
      li.classList.add('system');
      li.append(nick, text(`kicked ${kickTarget(ev)}${reason}`));
      break;
    case 'nick':
      li.classList.add('system');
      li.append(nick, text(`is now known as ${ev.data?.newNick ?? '?'}`));
      break;
    case 'topic':
      li.classList.add('system');
      li.append(nick, text(ev.text ? `set the topic: ${ev.text}` : 'cleared the topic'));
      break;
    case 'mode':
      li.classList.add('system');
      li.append(nick, text(`set mode ${modeText(ev.data)}`));
      break;
    case 'invite':
      li.classList.add('system');
      li.append(nick, text(`invited ${ev.data?.nick ?? ev.data?.to ?? 'you'} to ${ev.data?.channel ?? ev.log}`));
      break;
    case 'alert':
      li.append(nick, text(`ALERT: ${ev.text}`));
      break;
    default:
      li.classList.add('system');
      li.append(nick, text(`${ev.type} ${ev.text}`));
  }
  return li;
}

/** Inserts an event's line in seq order (nearly always at the end). */
function insertLine(view, li, seq) {
  let after = view.list.lastElementChild;
  while (after && (after.dataset.seq === undefined || Number(after.dataset.seq) > seq)) after = after.previousElementSibling;
  if (after) after.after(li);
  else view.list.prepend(li);
}

function atBottom() {
  const s = $('scroller');
  return s.scrollHeight - s.scrollTop - s.clientHeight < 40;
}

function scrollToBottom() {
  const s = $('scroller');
  s.scrollTop = s.scrollHeight;
}

/** A line that is not part of any log: an error or a hint, shown in the current view. */
function note(message, kind = 'error') {
  const view = state.views.get(state.current);
  const li = el('li', `local ${kind === 'info' ? 'info' : ''}`, message);
  if (!view) {
    $('view-topic').textContent = message;
    return;
  }
  const stick = atBottom();
  view.list.append(li);
  if (stick) scrollToBottom();
}

function renderSidebar() {
  const channels = $('channel-list');
  const privates = $('private-list');
  const channelItems = [];
  const privateItems = [];
  const sorted = [...state.views.values()].sort((a, b) => a.name.localeCompare(b.name));
  for (const view of sorted) {
    const li = el('li');
    const button = el('button');
    button.type = 'button';
    button.dataset.view = view.key;
    button.append(el('span', 'label', view.name));
    if (view.unread > 0 && view.key !== state.current) button.append(el('span', 'unread', String(view.unread)));
    button.setAttribute('aria-current', String(view.key === state.current));
    button.addEventListener('click', () => show(view.key));
    li.append(button);
    view.item = button;
    (view.kind === 'channel' ? channelItems : privateItems).push(li);
  }
  channels.replaceChildren(...channelItems);
  privates.replaceChildren(...privateItems);
  const unread = [...state.views.values()].reduce((n, v) => n + (v.key === state.current ? 0 : v.unread), 0);
  document.title = unread > 0 ? `(${unread}) CanaDuck` : 'CanaDuck';
}

function renderHeader() {
  const view = state.views.get(state.current);
  $('view-title').textContent = view ? view.name : 'Welcome';
  $('view-topic').textContent = view ? (view.kind === 'channel' ? view.topic || 'No topic' : view.kind === 'private' ? `Private conversation with ${view.name}` : 'Server notices') : '';
  $('older').hidden = !view || !view.hasOlder;
}

function renderMembers() {
  const view = state.views.get(state.current);
  const list = $('member-list');
  if (!view || view.kind !== 'channel' || !view.members) {
    list.replaceChildren();
    $('member-count').textContent = '';
    return;
  }
  const members = [...view.members.values()].sort((a, b) => Number(b.operator) - Number(a.operator) || a.nick.localeCompare(b.nick));
  list.replaceChildren(
    ...members.map((m) => {
      const li = el('li', `${m.operator ? 'op' : ''} ${m.online === false ? 'away' : ''}`, m.nick);
      li.dataset.nick = m.nick;
      li.title = m.online === false ? `${m.nick} (offline)` : m.nick;
      li.addEventListener('dblclick', () => openQuery(m.nick));
      return li;
    }),
  );
  $('member-count').textContent = `(${members.length})`;
}

function renderEmpty() {
  $('log-slot').replaceChildren(el('p', 'hint', 'Join a channel on the left, or type /join #general.'));
  renderHeader();
  renderMembers();
}

function show(key) {
  const view = state.views.get(key);
  if (!view) return;
  state.current = key;
  view.unread = 0;
  $('log-slot').replaceChildren(view.list);
  renderSidebar();
  renderHeader();
  renderMembers();
  scrollToBottom();
  localStorage.setItem(storageKey('current'), key);
  if (!view.loaded) void load(view);
  if (view.kind === 'channel' && !view.members) void loadMembers(view);
  $('input').focus();
}

// ---------------------------------------------------------------- events

/** Adds an event to its view once, whatever way it came (stream, history, POST answer). */
function addEvent(view, ev, live) {
  if (view.events.has(ev.seq)) return false;
  view.events.set(ev.seq, ev);
  const shown = view.key === state.current;
  const stick = shown && atBottom();
  insertLine(view, renderEvent(ev), ev.seq);
  if (shown && stick) scrollToBottom();
  if (live && !shown && (ev.type === 'message' || ev.type === 'action' || ev.type === 'private' || ev.type === 'alert')) {
    view.unread++;
    renderSidebar();
  }
  return true;
}

/** Keeps a channel's topic and member list in step with its events. */
function applyChannelEvent(view, ev) {
  const members = view.members;
  switch (ev.type) {
    case 'topic':
      view.topic = ev.text;
      break;
    case 'join':
      members?.set(fold(ev.nick), { nick: ev.nick, operator: members.get(fold(ev.nick))?.operator ?? false, online: true });
      break;
    case 'part':
    case 'quit':
      members?.delete(fold(ev.nick));
      break;
    case 'kick':
      members?.delete(fold(String(kickTarget(ev))));
      break;
    case 'nick': {
      const newNick = ev.data?.newNick;
      if (typeof newNick !== 'string') break;
      const m = members?.get(fold(ev.nick));
      if (m) {
        members.delete(fold(ev.nick));
        members.set(fold(newNick), { ...m, nick: newNick });
      }
      if (state.me && sameNick(ev.nick, state.me.nick)) setMe(newNick);
      break;
    }
    default:
      return;
  }
  if (view.key === state.current) {
    renderHeader();
    renderMembers();
  }
}

/** One event from the multiplexed stream. */
function receive(ev) {
  if (!ev || typeof ev.log !== 'string' || typeof ev.seq !== 'number') return;
  if (ev.log.startsWith('#')) {
    const mine = state.me && sameNick(ev.nick, state.me.nick);
    const existing = state.views.get(ev.log);
    if (!existing && (ev.type === 'part' || ev.type === 'quit') && mine) return;
    const view = existing ?? viewFor(ev.log, 'channel', ev.log);
    if (!addEvent(view, ev, true)) return;
    applyChannelEvent(view, ev);
    const kickedMe = ev.type === 'kick' && state.me && sameNick(String(kickTarget(ev)), state.me.nick);
    if ((ev.type === 'part' && mine) || kickedMe) {
      removeView(ev.log);
      if (kickedMe) note(`You were kicked from ${ev.log} by ${ev.nick}${ev.text ? ` (${ev.text})` : ''}`);
    } else if (!existing && mine && ev.type === 'join' && !state.current) {
      show(ev.log);
    }
    return;
  }
  if (ev.log.startsWith('dm:')) {
    const peer = state.me && sameNick(ev.nick, state.me.nick) ? String(ev.data?.to ?? '?') : ev.nick;
    let view = state.views.get(ev.log);
    if (!view) {
      const pending = [...state.views.values()].find((v) => v.key.startsWith('query:') && sameNick(v.name, peer));
      view = pending ? rekey(pending, ev.log) : viewFor(ev.log, 'private', peer);
    }
    if (view.name !== peer && peer !== '?') {
      view.name = peer; // the peer changed nick: show the one they use now
      rememberConversations();
      renderSidebar();
      if (view.key === state.current) renderHeader();
    }
    addEvent(view, ev, true);
    return;
  }
  addEvent(viewFor(ev.log, 'notices', 'notices'), ev, true);
}

// ---------------------------------------------------------------- history

function historyPath(view) {
  if (view.kind === 'channel') return `${channelPath(view.name)}/events`;
  if (view.kind === 'private') return `${userPath(view.name)}/events`;
  return null;
}

/** The newest page of a view's log, merged with whatever the stream already delivered. */
function load(view) {
  view.loading ??= (async () => {
    const path = historyPath(view);
    try {
      if (path) {
        const page = await api('GET', `${path}?limit=${PAGE}`);
        const first = page.events[0];
        if (first && view.key.startsWith('query:')) view = rekey(view, first.log);
        for (const ev of page.events) addEvent(view, ev, false);
        view.hasOlder = page.events.length >= PAGE;
      }
      if (view.kind === 'channel') {
        const info = await api('GET', channelPath(view.name));
        view.topic = info.topic;
      }
      view.loaded = true;
      if (view.key === state.current) {
        renderHeader();
        scrollToBottom();
      }
    } catch (err) {
      if (err.status === 404 && view.kind === 'private') {
        removeView(view.key);
        if (!view.restored) note(`No such nick: ${view.name}`);
      } else if (err.status === 403 || err.status === 404) {
        removeView(view.key);
      } else {
        note(`Could not load ${view.name}: ${err.message}`);
      }
    } finally {
      view.loading = null;
    }
  })();
  return view.loading;
}

/** Scrollback: the page just before the oldest event shown. */
async function loadOlder() {
  const view = state.views.get(state.current);
  const path = view && historyPath(view);
  if (!view || !path || !view.hasOlder || view.loadingOlder) return;
  view.loadingOlder = true;
  const scroller = $('scroller');
  const fromBottom = scroller.scrollHeight - scroller.scrollTop;
  try {
    const page = await api('GET', `${path}?before=${view.minSeq}&limit=${PAGE}`);
    for (const ev of page.events) addEvent(view, ev, false);
    view.hasOlder = page.events.length >= PAGE;
    if (view.key === state.current) {
      scroller.scrollTop = scroller.scrollHeight - fromBottom; // keep the reader's place
      renderHeader();
    }
  } catch (err) {
    note(`Could not load older messages: ${err.message}`);
  } finally {
    view.loadingOlder = false;
  }
}

/** After the stream had to start afresh (no cursor), fetches what each loaded view missed. */
async function catchUp(view) {
  const path = historyPath(view);
  if (!path || !view.loaded) return;
  for (let after = view.maxSeq, guard = 0; guard < 20; guard++) {
    const page = await api('GET', `${path}?after=${after}&limit=500`);
    for (const ev of page.events) {
      if (addEvent(view, ev, true) && view.kind === 'channel') applyChannelEvent(view, ev);
    }
    if (page.events.length === 0) return;
    after = page.next;
  }
}

async function loadMembers(view) {
  try {
    const { members } = await api('GET', `${channelPath(view.name)}/members`);
    view.members = new Map(members.map((m) => [fold(m.nick), m]));
    if (view.key === state.current) renderMembers();
  } catch {
    // the member list is a convenience; the log is what matters
  }
}

async function loadBrowse() {
  try {
    const { channels } = await api('GET', '/api/channels');
    $('browse-list').replaceChildren(
      ...channels.map((ch) => {
        const li = el('li');
        const join = el('button', 'link', ch.name);
        join.type = 'button';
        join.title = `Join ${ch.name}`;
        join.addEventListener('click', () => void joinChannel(ch.name));
        li.append(join, el('span', 'count', String(ch.memberCount)), el('span', 'btopic', ch.topic));
        return li;
      }),
    );
  } catch {
    // shown again on the next refresh
  }
}

// ---------------------------------------------------------------- the stream

function setConnection(stateName, label) {
  const node = $('connection');
  node.dataset.state = stateName;
  node.textContent = label;
}

/** The one EventSource. It reconnects by itself, sending Last-Event-ID, and resumes exactly. */
function openStream() {
  clearTimeout(state.reopenTimer);
  const afresh = state.source !== null; // a new EventSource starts from now: fill the gap from history
  state.source?.close();
  const source = new EventSource('/api/stream');
  state.source = source;
  setConnection('connecting', 'connecting…');
  const onEvent = (e) => {
    if (state.source !== source) return;
    let ev;
    try {
      ev = JSON.parse(e.data);
    } catch {
      return;
    }
    receive(ev);
  };
  for (const type of EVENT_TYPES) source.addEventListener(type, onEvent);
  source.addEventListener('reset', (e) => {
    // The server could not continue a log from our cursor (e.g. restored database): seqs
    // may repeat, so that log's view starts over from its history.
    let info = {};
    try {
      info = JSON.parse(e.data);
    } catch {
      // a reset without details: start every view over
    }
    for (const view of state.views.values()) {
      if (info.log && view.key !== info.log) continue;
      view.events.clear();
      view.list.replaceChildren();
      view.loaded = false;
      if (view.key === state.current || view.kind !== 'notices') void load(view);
    }
  });
  source.addEventListener('reconnect', () => setConnection('connecting', 'server restarting…'));
  source.addEventListener('open', () => {
    if (state.source !== source) return;
    state.reopenDelay = 1000;
    setConnection('live', 'live');
    if (afresh) for (const view of state.views.values()) void catchUp(view).catch(() => {});
  });
  source.addEventListener('error', () => {
    if (state.source !== source) return;
    if (source.readyState === EventSource.CONNECTING) {
      setConnection('connecting', 'reconnecting…');
      return;
    }
    // CLOSED: the server refused the stream (session gone, too many streams, overload).
    setConnection('offline', 'offline');
    void (async () => {
      try {
        await api('GET', '/api/me');
      } catch (err) {
        if (err.status === 401) return; // api() already went back to the nick form
      }
      if (state.source !== source) return;
      state.reopenTimer = setTimeout(openStream, state.reopenDelay);
      state.reopenDelay = Math.min(state.reopenDelay * 2, 30_000);
    })();
  });
}

function closeStream() {
  clearTimeout(state.reopenTimer);
  state.source?.close();
  state.source = null;
  setConnection('offline', 'offline');
}

// ---------------------------------------------------------------- session

const storageKey = (what) => `canaduck:${what}:${state.me ? fold(state.me.nick) : ''}`;

function rememberConversations() {
  if (!state.me) return;
  const peers = [...state.views.values()].filter((v) => v.kind === 'private').map((v) => v.name);
  try {
    localStorage.setItem(storageKey('private'), JSON.stringify(peers));
  } catch {
    // storage full or disabled: conversations come back when someone writes
  }
}

function setMe(nick) {
  if (state.me && !sameNick(state.me.nick, nick)) {
    // carry this user's remembered views over to the new nick
    const peers = localStorage.getItem(storageKey('private'));
    const current = localStorage.getItem(storageKey('current'));
    state.me.nick = nick;
    if (peers) localStorage.setItem(storageKey('private'), peers);
    if (current) localStorage.setItem(storageKey('current'), current);
  } else if (state.me) {
    state.me.nick = nick;
  }
  $('me').textContent = nick;
}

async function enter(me) {
  state.me = { nick: me.nick };
  setMe(me.nick);
  $('login').hidden = true;
  $('chat').hidden = false;
  $('me').hidden = false;
  $('quit').hidden = false;
  openStream();
  for (const name of me.channels) viewFor(name, 'channel', name);
  let peers = [];
  try {
    peers = JSON.parse(localStorage.getItem(storageKey('private')) ?? '[]');
  } catch {
    peers = [];
  }
  for (const peer of Array.isArray(peers) ? peers : []) if (typeof peer === 'string') openQuery(peer, false).restored = true;
  const saved = localStorage.getItem(storageKey('current'));
  const first = state.views.get(saved) ?? [...state.views.values()].find((v) => v.kind === 'channel');
  if (first) show(first.key);
  else renderEmpty();
  for (const view of state.views.values()) if (!view.loaded) void load(view);
  void loadBrowse();
}

function signedOut(message) {
  closeStream();
  state.me = null;
  state.views.clear();
  state.current = null;
  $('chat').hidden = true;
  $('me').hidden = true;
  $('quit').hidden = true;
  $('login').hidden = false;
  $('login-error').textContent = message ?? '';
  $('channel-list').replaceChildren();
  $('private-list').replaceChildren();
  $('log-slot').replaceChildren();
  $('login-nick').focus();
}

async function claim(nick) {
  $('login-error').textContent = '';
  try {
    await api('POST', '/api/sessions', { nick });
    await enter(await api('GET', '/api/me'));
  } catch (err) {
    $('login-error').textContent = err.message;
  }
}

// ---------------------------------------------------------------- commands

async function joinChannel(raw) {
  const name = raw.startsWith('#') ? raw : `#${raw}`;
  const result = await api('PUT', `${channelPath(name)}/membership`);
  const canonical = result.channel.name;
  const view = viewFor(canonical, 'channel', canonical);
  view.topic = result.channel.topic;
  if (result.event) {
    addEvent(view, result.event, false);
    applyChannelEvent(view, result.event);
  }
  show(canonical);
}

/** Opens (or switches to) the private conversation with `nick`. */
function openQuery(nick, focus = true) {
  const existing = [...state.views.values()].find((v) => v.kind === 'private' && sameNick(v.name, nick));
  const view = existing ?? viewFor(`query:${fold(nick)}`, 'private', nick);
  if (focus) show(view.key);
  else if (!view.loaded) void load(view);
  return view;
}

async function sendPrivate(nick, text) {
  const ev = await api('POST', `${userPath(nick)}/messages`, { text });
  let view = state.views.get(ev.log);
  if (!view) {
    const pending = [...state.views.values()].find((v) => v.key.startsWith('query:') && sameNick(v.name, nick));
    view = pending ? rekey(pending, ev.log) : viewFor(ev.log, 'private', String(ev.data?.to ?? nick));
  }
  addEvent(view, ev, false);
  return view;
}

function currentChannel() {
  const view = state.views.get(state.current);
  if (!view || view.kind !== 'channel') throw new Error('That works in a channel: switch to one first.');
  return view;
}

const HELP = [
  '/join #channel — join (or create) a channel',
  '/part [reason] — leave this channel',
  '/topic [text] — show or set the topic',
  '/me text — an action',
  '/msg nick text — a private message',
  '/query nick — open a private conversation',
  '/nick newnick — change your nick',
  '/names — who is here',
  '/quit [reason] — leave CanaDuck',
  '//text — send text starting with a slash',
];

async function command(line) {
  const view = state.views.get(state.current);
  if (!line.startsWith('/') || line.startsWith('//')) {
    const text = line.startsWith('//') ? line.slice(1) : line;
    if (!view) throw new Error('Join a channel first: /join #general');
    if (view.kind === 'channel') {
      addEvent(view, await api('POST', `${channelPath(view.name)}/messages`, { text }), false);
    } else if (view.kind === 'private') {
      await sendPrivate(view.name, text);
    } else {
      throw new Error('Nobody reads this view: switch to a channel or a conversation.');
    }
    return;
  }
  const match = /^\/(\S+)(?:\s+([\s\S]*))?$/.exec(line);
  const name = match?.[1]?.toLowerCase() ?? '';
  const rest = (match?.[2] ?? '').trim();
  const [first = ''] = rest.split(/\s+/);
  const tail = rest.slice(first.length).trim();
  switch (name) {
    case 'me': {
      if (!rest) throw new Error('Usage: /me waves');
      const channel = currentChannel();
      addEvent(channel, await api('POST', `${channelPath(channel.name)}/messages`, { text: rest, action: true }), false);
      return;
    }
    case 'join':
    case 'j':
      if (!first) throw new Error('Usage: /join #channel');
      await joinChannel(first);
      return;
    case 'part':
    case 'leave': {
      let target = view;
      let reason = rest;
      if (first.startsWith('#')) {
        target = state.views.get(first) ?? [...state.views.values()].find((v) => v.kind === 'channel' && sameNick(v.name, first));
        reason = tail;
        if (!target) throw new Error(`You are not in ${first}`);
      }
      if (!target || target.kind !== 'channel') {
        if (target?.kind === 'private') {
          removeView(target.key);
          return;
        }
        throw new Error('Usage: /part [#channel] [reason]');
      }
      await api('DELETE', `${channelPath(target.name)}/membership`, reason ? { reason } : undefined);
      removeView(target.key);
      return;
    }
    case 'topic': {
      const channel = currentChannel();
      if (!rest) {
        note(channel.topic ? `Topic of ${channel.name}: ${channel.topic}` : `${channel.name} has no topic`, 'info');
        return;
      }
      const ev = await api('PUT', `${channelPath(channel.name)}/topic`, { topic: rest });
      if (addEvent(channel, ev, false)) applyChannelEvent(channel, ev);
      return;
    }
    case 'msg':
    case 'query': {
      if (!first) throw new Error(`Usage: /${name} nick${name === 'msg' ? ' text' : ''}`);
      if (name === 'msg' && tail) {
        const target = await sendPrivate(first, tail);
        if (target.key !== state.current) note(`→ ${target.name}: ${tail}`, 'info');
        return;
      }
      openQuery(first);
      return;
    }
    case 'nick': {
      if (!first) throw new Error('Usage: /nick newnick');
      const me = await api('PATCH', '/api/me', { nick: first });
      setMe(me.nick);
      note(`You are now known as ${me.nick}`, 'info');
      return;
    }
    case 'names': {
      const channel = currentChannel();
      await loadMembers(channel);
      note(`In ${channel.name}: ${[...(channel.members?.values() ?? [])].map((m) => (m.operator ? `@${m.nick}` : m.nick)).join(' ')}`, 'info');
      return;
    }
    case 'whois': {
      if (!first) throw new Error('Usage: /whois nick');
      const who = await api('GET', userPath(first));
      note(`${who.nick}: ${who.role}, ${who.online ? 'online' : 'offline'}, idle ${who.idleSeconds}s${who.channels.length ? `, in ${who.channels.join(' ')}` : ''}`, 'info');
      return;
    }
    case 'quit':
      await quit(rest);
      return;
    case 'help':
      for (const line of HELP) note(line, 'info');
      return;
    default:
      throw new Error(`Unknown command /${name}; try /help`);
  }
}

async function quit(reason) {
  try {
    await api('DELETE', '/api/sessions/current', reason ? { reason } : undefined);
  } finally {
    signedOut('You quit. Pick a nick to come back.');
  }
}

// ---------------------------------------------------------------- wiring

function wire() {
  $('login-form').addEventListener('submit', (e) => {
    e.preventDefault();
    const nick = $('login-nick').value.trim();
    if (nick) void claim(nick);
  });
  $('composer').addEventListener('submit', async (e) => {
    e.preventDefault();
    const input = $('input');
    const line = input.value;
    if (!line.trim()) return;
    input.value = '';
    try {
      await command(line);
    } catch (err) {
      note(err.message);
      if (!input.value) input.value = line; // give the line back to fix it
    }
  });
  $('join-form').addEventListener('submit', (e) => {
    e.preventDefault();
    const name = $('join-name').value.trim();
    if (!name) return;
    $('join-name').value = '';
    joinChannel(name).catch((err) => note(err.message));
  });
  $('query-form').addEventListener('submit', (e) => {
    e.preventDefault();
    const nick = $('query-nick').value.trim();
    if (!nick) return;
    $('query-nick').value = '';
    openQuery(nick);
  });
  $('older').addEventListener('click', () => void loadOlder());
  $('scroller').addEventListener('scroll', () => {
    if ($('scroller').scrollTop < 20) void loadOlder();
  });
  $('browse-refresh').addEventListener('click', () => void loadBrowse());
  $('browse').addEventListener('toggle', () => {
    if ($('browse').open) void loadBrowse();
  });
  $('quit').addEventListener('click', () => void quit(''));
}

async function start() {
  wire();
  // Reuse the session the HttpOnly cookie holds, if it is still valid.
  try {
    const res = await fetch('/api/me', { credentials: 'same-origin', headers: { accept: 'application/json' } });
    if (res.ok) {
      await enter(await res.json());
      return;
    }
  } catch {
    // offline: show the form
  }
  signedOut();
}

void start();
