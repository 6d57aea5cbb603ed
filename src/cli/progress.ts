/** A one-line progress bar on stderr (redrawn in place when stderr is a terminal). */
export function progressBar(label: string, done: number, total: number): void {
  const width = 30;
  const filled = total === 0 ? width : Math.round((done / total) * width);
  const line = `${label} [${"#".repeat(filled)}${"-".repeat(width - filled)}] ${done}/${total}`;
  // In a terminal the line is redrawn in place, and ended once complete so that what follows starts a line of its own.
  if (process.stderr.isTTY) process.stderr.write(`\r${line}${done === total ? "\n" : ""}`);
  else if (done === total) process.stderr.write(`${line}\n`);
}
