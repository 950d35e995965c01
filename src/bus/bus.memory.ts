import type { Bus, Publication } from './bus.js';

/**
 * In-process fan-out: the embedded mode's bus. Serves a single replica only: nothing
 * leaves the process. Delivery is synchronous and never lost, so `onResubscribed`
 * never fires.
 */
export class MemoryBus<P extends Publication = Publication> implements Bus<P> {
  private readonly handlers: Array<(event: P) => void> = [];

  async publish(events: readonly P[]): Promise<void> {
    for (const event of events) for (const handler of this.handlers) handler(event);
  }

  async subscribe(): Promise<void> {}
  async unsubscribe(): Promise<void> {}

  onEvent(handler: (event: P) => void): void {
    this.handlers.push(handler);
  }

  onResubscribed(): void {}

  healthy(): boolean {
    return true;
  }

  async close(): Promise<void> {
    this.handlers.length = 0;
  }
}
