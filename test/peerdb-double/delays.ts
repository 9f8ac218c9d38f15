/** Timers that close() can cancel: a cancelled delay resolves false, so whatever awaited it stops. */
export class Delays {
  private readonly pending = new Map<NodeJS.Timeout, (elapsed: boolean) => void>();
  private closed = false;

  /** True after `ms`; false, at once, when the double is closing. */
  wait(ms: number): Promise<boolean> {
    if (this.closed) return Promise.resolve(false);
    return new Promise((resolve) => {
      const timer = setTimeout(() => {
        this.pending.delete(timer);
        resolve(true);
      }, ms);
      this.pending.set(timer, resolve);
    });
  }

  close(): void {
    this.closed = true;
    for (const [timer, resolve] of this.pending) {
      clearTimeout(timer);
      resolve(false);
    }
    this.pending.clear();
  }
}
