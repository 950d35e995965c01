import { currentView, orderedViews } from './state.js';
import { show } from './views.js';

/** alt+↑/↓: the previous/next view in the sidebar; alt+a: the next view with something unread (mentions first). */
export function wireKeys(): void {
  document.addEventListener('keydown', (e) => {
    if (!e.altKey || e.ctrlKey || e.metaKey) return;
    const views = orderedViews();
    if (views.length === 0) return;
    const at = views.findIndex((v) => v === currentView());
    let target;
    if (e.key === 'ArrowUp' || e.key === 'ArrowDown') {
      const step = e.key === 'ArrowUp' ? -1 : 1;
      target = views[(at + step + views.length) % views.length];
    } else if (e.code === 'KeyA') {
      const after = [...views.slice(at + 1), ...views.slice(0, Math.max(at, 0))];
      target = after.find((v) => v.mentions > 0) ?? after.find((v) => v.unread > 0);
    } else {
      return;
    }
    e.preventDefault();
    if (target) show(target.key);
  });
}
