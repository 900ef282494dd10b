/**
 * Engine step time as base + perSequence · batch + perToken · prefilled tokens, fitted by ridge
 * regression over decayed samples. Each slope is pulled toward a prior where its regressor
 * barely varies (a server always full, prompts always cached), so it is never taken to cost
 * nothing for lack of evidence; no part comes out negative.
 */
export interface StepSamples {
  w: number;
  batch: number;
  tokens: number;
  batch2: number;
  tokens2: number;
  batchTokens: number;
  y: number;
  y2: number;
  batchY: number;
  tokensY: number;
}

export interface StepFit {
  baseS: number;
  perSequenceS: number;
  perTokenS: number;
  /** Share of the samples' variance the fit explains (1 if they do not vary). */
  explained: number;
}

/** Ridge on the per-sequence slope, in squared sequences. */
const BATCH_RIDGE = 0.25;
/** Ridge on the per-token slope, in squared tokens per step. */
const TOKEN_RIDGE = 8 * 8;

export function emptyStepSamples(): StepSamples {
  return { w: 0, batch: 0, tokens: 0, batch2: 0, tokens2: 0, batchTokens: 0, y: 0, y2: 0, batchY: 0, tokensY: 0 };
}

export function decayStepSamples(s: StepSamples, factor: number): void {
  for (const key of Object.keys(s) as (keyof StepSamples)[]) s[key] *= factor;
}

/** One observation: steps with `batch` sequences and `tokens` prefilled tokens took `stepS` each. */
export function addStepSample(s: StepSamples, batch: number, tokens: number, stepS: number): void {
  s.w += 1;
  s.batch += batch;
  s.tokens += tokens;
  s.batch2 += batch * batch;
  s.tokens2 += tokens * tokens;
  s.batchTokens += batch * tokens;
  s.y += stepS;
  s.y2 += stepS * stepS;
  s.batchY += batch * stepS;
  s.tokensY += tokens * stepS;
}

/**
 * The fit, slopes pulled toward `priorPerToken` and `priorSequenceShare` of the mean step
 * without prefill. Undefined without samples.
 */
export function fitStepTime(s: StepSamples, priorPerToken: number, priorSequenceShare: number): StepFit | undefined {
  if (s.w <= 0) return undefined;
  const meanN = s.batch / s.w;
  const meanP = s.tokens / s.w;
  const meanY = s.y / s.w;
  const varN = Math.max(0, s.batch2 / s.w - meanN * meanN);
  const varP = Math.max(0, s.tokens2 / s.w - meanP * meanP);
  const covNP = s.batchTokens / s.w - meanN * meanP;
  const covNY = s.batchY / s.w - meanN * meanY;
  const covPY = s.tokensY / s.w - meanP * meanY;
  const priorPerSequence = priorSequenceShare * Math.max(0, meanY - priorPerToken * meanP);
  // (covariance + ridge) · slopes = cross-covariance + ridge · prior, both slopes together.
  const a11 = varN + BATCH_RIDGE;
  const a22 = varP + TOKEN_RIDGE;
  const r1 = covNY + BATCH_RIDGE * priorPerSequence;
  const r2 = covPY + TOKEN_RIDGE * priorPerToken;
  const det = a11 * a22 - covNP * covNP;
  let perSequenceS = (r1 * a22 - covNP * r2) / det;
  let perTokenS = (a11 * r2 - covNP * r1) / det;
  if (perSequenceS < 0) [perSequenceS, perTokenS] = [0, Math.max(0, r2 / a22)];
  if (perTokenS < 0) [perSequenceS, perTokenS] = [Math.max(0, r1 / a11), 0];
  // The slopes cannot explain more than the mean step: the base is never negative.
  const slopesPart = perSequenceS * meanN + perTokenS * meanP;
  if (slopesPart > meanY) {
    perSequenceS *= meanY / slopesPart;
    perTokenS *= meanY / slopesPart;
  }
  const varY = Math.max(0, s.y2 / s.w - meanY * meanY);
  const residual = varY - 2 * perSequenceS * covNY - 2 * perTokenS * covPY + perSequenceS ** 2 * varN + perTokenS ** 2 * varP + 2 * perSequenceS * perTokenS * covNP;
  const explained = varY > 0 ? 1 - Math.max(0, residual) / varY : 1;
  return { baseS: meanY - perSequenceS * meanN - perTokenS * meanP, perSequenceS, perTokenS, explained };
}
