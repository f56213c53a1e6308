/**
 * Order statistics for benchmark samples.
 *
 * @module
 */

/** Median, p99, mean and count of a set of samples, in the samples' unit. */
export interface Summary {
  median: number;
  p99: number;
  /** The mean: what CPU time per operation goes with (tails included). */
  mean: number;
  count: number;
}

/** Summarizes samples by nearest-rank percentiles. */
export function summarize(samples: readonly number[]): Summary {
  if (samples.length === 0) {
    throw new RangeError("Cannot summarize: no samples");
  }
  const sorted = Float64Array.from(samples).sort();
  const rank = (p: number) =>
    sorted[Math.min(sorted.length - 1, Math.ceil(p * sorted.length) - 1)];
  let sum = 0;
  for (const sample of sorted) sum += sample;
  return {
    median: rank(0.5),
    p99: rank(0.99),
    mean: sum / sorted.length,
    count: sorted.length,
  };
}
