// The token prior's public face: the model (model.ts), fitting, scoring, sampling and its file.
export {
  checkPriorMatchesCodebook, MAX_PRIOR_ORDER, PRIOR_NEIGHBOURS, type GridTokens, type PriorInfo, type TokenPrior,
} from './model.js';
export { fitPrior } from './fit.js';
export { scorePrior, type PriorScore } from './score.js';
export { cellDistribution, inpaintGrid, samplePriorGrid, variationMask, type SampleOptions } from './sample.js';
export { readPrior, writePrior } from './file.js';
