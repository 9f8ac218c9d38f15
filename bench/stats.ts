/** Percentile by nearest rank over a sample, in the sample's unit. */
export function percentile(sample: readonly number[], p: number): number {
  if (sample.length === 0) throw new Error('empty sample');
  const sorted = [...sample].sort((a, b) => a - b);
  const rank = Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1));
  return sorted[rank]!;
}

/** The milliseconds each of `count` calls of `once` took, one after another. */
export async function timeSequential(count: number, once: () => Promise<void>): Promise<number[]> {
  const sample: number[] = [];
  for (let i = 0; i < count; i++) {
    const startedAt = performance.now();
    await once();
    sample.push(performance.now() - startedAt);
  }
  return sample;
}

/** Fetches `url` and reads its whole body; an answer other than 2xx throws. */
export async function fetchOk(url: string): Promise<void> {
  const response = await fetch(url);
  await response.arrayBuffer();
  if (!response.ok) throw new Error(`${url} answered ${response.status}`);
}

export const round = (value: number, digits = 3): number => Number(value.toFixed(digits));
