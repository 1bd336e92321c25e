// The autoregressive prior's public face: the folder and its sidecar, the session, sampling.
export {
  AR_MODEL_CANDIDATES, AR_SIDECAR, checkArMatchesCodebook, parseSidecar, promptRows, readArFolder, resolveClass,
  type ArCondition, type ArFolder, type ArSidecar,
} from './folder.js';
export { ArRunner, MAX_AR_SEQUENCE, openArModel, readLayout, type ArLayout, type ArModel, type StepLogits } from './session.js';
export { inpaintArGrid, pickCode, sampleArGrid, scoreArGrids, type ArSampleOptions, type ArScore } from './sampling.js';
