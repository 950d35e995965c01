/** A set that forgets its oldest entries past `capacity`: for caches of facts that are cheap to re-learn. */
export class BoundedSet<T> {
  private readonly entries = new Set<T>();

  constructor(private readonly capacity: number) {}

  has(value: T): boolean {
    return this.entries.has(value);
  }

  add(value: T): void {
    this.entries.delete(value);
    this.entries.add(value);
    if (this.entries.size > this.capacity) this.entries.delete(this.entries.values().next().value as T);
  }
}
