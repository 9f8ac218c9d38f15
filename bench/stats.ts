/** Percentile by nearest rank over a sample, in the sample's unit. */
export function percentile(sample: readonly number[], p: number): number {
  if (sample.length === 0) throw new Error('empty sample');
  const sorted = [...sample].sort((a, b) => a - b);
  const rank = Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1));
  return sorted[rank]!;
}

export const round = (value: number, digits = 3): number => Number(value.toFixed(digits));
