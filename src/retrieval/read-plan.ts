/**
 * How a search reads its collections, from how many chunks its filters (metadata, documents, the
 * requester's access list) leave. Both legs return the same results either way; the choice is cost.
 */
export interface ReadPlanOptions {
  /** Vector leg: this many allowed chunks or fewer are scanned exactly instead of walking the graph. */
  readonly exactScanThreshold: number;
  /**
   * BM25 leg: this many or fewer are scored directly. Early termination reads postings that know
   * nothing of the filters, so the fewer chunks pass, the more of what it reads is thrown away.
   */
  readonly bm25FilteredThreshold: number;
}

export interface ReadPlan {
  readonly vector: "exact" | "index";
  readonly bm25: "filtered" | "postings";
}

/** How far the filtered chunks need counting: past this no choice changes. */
export function countCap(options: ReadPlanOptions): number {
  return Math.max(options.exactScanThreshold, options.bm25FilteredThreshold);
}

/**
 * `passing`: the chunks that pass — the collections' when nothing filters, else the filtered
 * count up to countCap.
 */
export function readPlan(passing: number, filtered: boolean, options: ReadPlanOptions): ReadPlan {
  return {
    vector: passing <= options.exactScanThreshold ? "exact" : "index",
    bm25: filtered && passing <= options.bm25FilteredThreshold ? "filtered" : "postings",
  };
}
