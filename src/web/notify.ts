import { store, stored } from './dom.js';
import { state, type View } from './state.js';
import type { ChatEvent } from './types.js';

/**
 * Desktop notifications, opt-in: a mention of your nick, a private message or an alert, while
 * the page is hidden or another view is open. Asked for only when the reader turns them on.
 */

const KEY = 'canaduck:notifications';

export const notificationsSupported = (): boolean => typeof window.Notification === 'function';
export const notificationsOn = (): boolean => notificationsSupported() && stored(KEY) === 'on' && Notification.permission === 'granted';

/** Turns notifications on (asking the browser's permission) or off; answers whether they are on. */
export async function setNotifications(on: boolean): Promise<boolean> {
  if (!on || !notificationsSupported()) {
    store(KEY, null);
    return false;
  }
  const permission = Notification.permission === 'granted' ? 'granted' : await Notification.requestPermission();
  store(KEY, permission === 'granted' ? 'on' : null);
  return permission === 'granted';
}

export function notifyAbout(view: View, ev: ChatEvent, open: () => void): void {
  if (!notificationsOn()) return;
  if (!document.hidden && document.hasFocus() && state.current === view.key) return;
  const title =
    ev.type === 'alert' ? `Alert from ${ev.nick}` : view.kind === 'private' ? `${ev.nick} (private)` : `${ev.nick} in ${view.name}`;
  const notification = new Notification(title, { body: ev.text, tag: `${ev.log}/${ev.seq}` });
  notification.addEventListener('click', () => {
    window.focus();
    open();
    notification.close();
  });
}
