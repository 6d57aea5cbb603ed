/**
 * The search for the highest request rate that holds a latency objective, as an SRE would run it by
 * hand: step the rate up geometrically while it holds; on a miss, measure the same rate once more
 * (one slow second must not decide), and if it misses again, bisect between the highest rate that
 * held and the lowest that missed twice until they are within `precision` of each other.
 */
export interface Probe {
  readonly rate: number;
  readonly held: boolean;
}

export interface RateSearchOptions {
  readonly start: number;
  /** Geometric step while no rate has missed yet. */
  readonly factor: number;
  /** Stop once (lowest miss − highest hold) / lowest miss is at most this. */
  readonly precision: number;
  readonly maxProbes: number;
  /** Rates below this are not tried. */
  readonly minRate: number;
}

export interface RateSearchResult<P extends Probe> {
  /** The highest rate that held (0 when none did). */
  readonly sustained: number;
  /** The lowest rate that missed twice in a row (Infinity when none did within the probes). */
  readonly missed: number;
  readonly probes: P[];
}

export async function searchSustainedRate<P extends Probe>(
  probe: (rate: number) => Promise<P>,
  options: RateSearchOptions,
): Promise<RateSearchResult<P>> {
  const probes: P[] = [];
  let held = 0;
  let missed = Number.POSITIVE_INFINITY;
  let rate = Math.max(options.minRate, Math.round(options.start));
  while (probes.length < options.maxProbes) {
    let result = await probe(rate);
    probes.push(result);
    if (!result.held && probes.length < options.maxProbes) {
      result = await probe(rate); // the retry
      probes.push(result);
    }
    if (result.held) held = Math.max(held, rate);
    else missed = Math.min(missed, rate);
    if (Number.isFinite(missed) && (missed - held) / missed <= options.precision) break;
    const next = Number.isFinite(missed)
      ? held > 0
        ? Math.round((held + missed) / 2)
        : Math.floor(missed / options.factor)
      : Math.round(rate * options.factor);
    if (next < options.minRate || next === rate || next <= held || next >= missed) break;
    rate = next;
  }
  return { sustained: held, missed, probes };
}
