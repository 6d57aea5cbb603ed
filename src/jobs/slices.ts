/**
 * `items` in order, cut where the next one would take a slice past `budget` (of whatever `sizeOf`
 * measures: bytes of a worker's documents, inputs of a batch's embedding lines); an item larger than
 * the budget is a slice of its own.
 */
export function slicesWithinBudget<T>(items: readonly T[], sizeOf: (item: T) => number, budget: number): T[][] {
  const slices: T[][] = [];
  let current: T[] = [];
  let used = 0;
  for (const item of items) {
    const size = sizeOf(item);
    if (current.length > 0 && used + size > budget) {
      slices.push(current);
      current = [];
      used = 0;
    }
    current.push(item);
    used += size;
  }
  if (current.length > 0) slices.push(current);
  return slices;
}
