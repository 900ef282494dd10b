import { describe, expect, it } from 'vitest';
import { notePrediction, takeDuePredictions, takeReportedPredictions, type PendingPrediction } from './backend.js';

describe('predictions paired with what the server measured', () => {
  const pending = () => {
    const b = { predictedTtft: [] as PendingPrediction[] };
    // Sent at 0, 10 and 20 ms: a long prompt predicted 0.3 s, then two cached ones 0.02 s.
    notePrediction(b, 0.3, 0, 2000);
    notePrediction(b, 0.02, 10, 0);
    notePrediction(b, 0.02, 20, 0);
    return b;
  };

  it('takes as many of the oldest as the server reported first tokens, sent before the scrape', () => {
    const b = pending();
    // Two first tokens reported by a scrape at 100 ms: the first two sent, though the first was not yet due.
    expect(takeReportedPredictions(b, 2, 100)).toEqual({ sumS: 0.32, count: 2 });
    // Sent after the scrape began: not in its figures.
    expect(takeReportedPredictions(b, 5, 15)).toEqual({ sumS: 0, count: 0 });
    expect(takeReportedPredictions(b, 5, 100)).toEqual({ sumS: 0.02, count: 1 });
    expect(b.predictedTtft).toEqual([]);
  });

  it('takes those due, where the server does not report its first tokens', () => {
    const b = pending();
    const due = takeDuePredictions(b, 100);
    expect(due.count).toBe(2);
    expect(due.sumS).toBeCloseTo(0.04, 9);
    expect(b.predictedTtft).toHaveLength(1);
  });
});
