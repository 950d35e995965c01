import type { Bus, BusEvent } from './bus.js';

/**
 * In-process fan-out: the embedded mode's bus. Serves a single replica only: nothing
 * leaves the process. Delivery is synchronous and never lost, so `onResubscribed`
 * never fires.
 */
export class MemoryBus implements Bus {
  private readonly handlers: Array<(event: BusEvent) => void> = [];

  async publish(events: readonly BusEvent[]): Promise<void> {
    for (const event of events) for (const handler of this.handlers) handler(event);
  }

  async subscribe(): Promise<void> {}
  async unsubscribe(): Promise<void> {}

  onEvent(handler: (event: BusEvent) => void): void {
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
