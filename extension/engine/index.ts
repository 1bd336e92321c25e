// The public engine API, for the extension host and the CLI. Nothing here imports 'vscode'.
export { UserError, CancelledError, throwIfCancelled } from '../../common/errors';
export { writeFileAtomic, writeFilesAtomic } from './atomic-write';
export { lockOutput, withOutputLock, type OutputLock } from './output-lock';
export { MAX_GRID_SIDE, MAX_INPUT_SIDE, MAX_IMAGE_PIXELS, checkGridSize } from './limits';
export { f16ToF32, f32ToF16 } from '../../common/half';
export { readNpy, writeNpy, encodeNpy, readEmbeddings, type NpyArray } from './formats/npy';
export { indexPathOf, writeIndexedNpy } from './formats/npy-index';
export { readCodebook, writeCodebook, inMemory, type Codebook, type CodebookMeta, type LazyTable } from './codebook';
export { nearestCodewords, coarseCells, type CoarseCell } from './inspect';
export { openSearch, measureRecall, foundNearest, shareFound, checkNprobe, defaultNprobe, calibrateCodebook, nprobeLadder, CALIBRATION_SAMPLE, CALIBRATION_TARGET, type NprobeCalibration, type SearchOptions, type SearchInfo, type SearchChoice, type CodebookSearch } from './search';
export { loadImage, imageSize, encodePng, writePng, listImages, thumbnailPng, IMAGE_EXTENSIONS, THUMBNAIL_SIDE, type RgbImage, type Thumbnail } from './image';
export { gridFollowsPhoto } from './encoders/dct';
export { openEncoder, openEncoderFromDescriptor, openCodebookEncoder, EXTERNAL_ENCODER, type Encoder, type EncoderDescriptor } from './encoders/index';
export { extractCorpus } from './corpus';
export { decodeTokens, refineAtlas } from './atlas';
export { codeStats, type CodeStats } from './stats';
export { kmeans, type KMeansOptions, type KMeansProgress, type KMeansResult } from './kmeans';
export { embedImages, forEachEncodedBatch, requireSomeImages, type SkippedImage } from './embed';
export { tokenizeImages, checkEncoderMatches } from './tokenize';
export {
  checkTokensMatchCodebook,
  readTokenGrids,
  writeTokenJson,
  writeTokenDataset,
  PADDING,
  commonGrid,
  type TokenGrid,
  type TokenDatasetIndex,
} from './token-files';
export { DEFAULTS, FALLBACK_NPROBE, type BuildMethod } from './defaults';
export { stepsOf, type ProgressEvent, type ProgressListener } from './progress';
export {
  buildCodebook, defaultMemoryMB, FLAT_MAX_WORK, MSE_SAMPLE, NPROBE, REFINE_PASSES,
  type BuildRequest, type BuildSummary, type BuildProgress, type CodebookDtype,
} from './build';
export { POINTS_PER_CENTROID } from './twolevel';
export { describeProgress } from './eta';
export { runDemo, type DemoResult, type DemoProgress } from './demo';
export { renderReport, renderHeatmap, rankFrequencySvg } from './report';
export { psnr, meanPsnr } from './quality';
export { countColor, rampColor, logCountLevel, heatmapColumns, deadCodeColor } from '../../common/colormap';
export type { ComputeBackend, Matrix, DeviceChoice, BackendName, NearestResult } from '../../native-gpu/backend';
export { openBackend } from '../../native-gpu/index';
export {
  fitPrior,
  cellDistribution,
  readPrior,
  writePrior,
  scorePrior,
  samplePriorGrid,
  inpaintGrid,
  variationMask,
  MAX_PRIOR_ORDER,
  PRIOR_NEIGHBOURS,
  type TokenPrior,
  type PriorScore,
  type SampleOptions,
} from './prior';
export { openTokenDecoder, diffusionSettings, ATLAS_DECODER, type TokenDecoder, type DiffusionSettings, type Decoded } from './generate';
export { SCHEDULER_KINDS, type SchedulerKind } from './diffusion/schedulers';
export type { DiffusionStep } from './diffusion/decoder';
