/**
 * The sleeps of polling loops between empty fetches, which a stop cuts short: wakeAll() resolves
 * every sleep in progress, so stop() does not wait out a poll interval.
 */
export class PollSleep {
  readonly #sleepers = new Set<() => void>();

  sleep(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const wake = () => {
        clearTimeout(timer);
        this.#sleepers.delete(wake);
        resolve();
      };
      const timer = setTimeout(wake, ms);
      this.#sleepers.add(wake);
    });
  }

  wakeAll(): void {
    for (const wake of this.#sleepers) wake();
  }
}
