// The public engine API, for the extension host and the CLI. Nothing here imports 'vscode'.
export { UserError, CancelledError, throwIfCancelled } from '../../common/errors.js';
export { writeFileAtomic, writeFilesAtomic } from './io/atomic-write.js';
export { lockOutput, withOutputLock, type OutputLock } from './io/output-lock.js';
export { MAX_GRID_SIDE, MAX_INPUT_SIDE, MAX_IMAGE_PIXELS, checkGridSize } from './core/limits.js';
export { f16ToF32, f32ToF16 } from '../../common/half.js';
export { readNpy, writeNpy, encodeNpy, readEmbeddings, type NpyArray } from './io/formats/npy.js';
export { indexPathOf, writeIndexedNpy } from './io/formats/npy-index.js';
export { readCodebook, writeCodebook, inMemory, hasPixelAtlas, type Codebook, type CodebookMeta, type LazyTable } from './codebook/codebook.js';
export { readTrainableCheckpoint, withTrainable, type TrainableImport, type ImportedTrainable } from './codebook/import-trainable.js';
export { nearestCodewords, coarseCells, trainingDrift, type CoarseCell, type TrainingDrift } from './search/inspect.js';
export { openSearch, measureRecall, foundNearest, shareFound, checkNprobe, defaultNprobe, calibrateCodebook, nprobeLadder, CALIBRATION_SAMPLE, CALIBRATION_TARGET, type NprobeCalibration, type SearchOptions, type CodebookSearch } from './search/search.js';
export { loadImage, imageSize, encodePng, writePng, listImages, thumbnailPng, cropPatch, upscale, resample, IMAGE_EXTENSIONS, THUMBNAIL_SIDE, type ImageInput, type RgbImage, type Thumbnail } from './embed/image.js';
export { gridFollowsPhoto } from './embed/encoders/dct.js';
export { openEncoder, openEncoderFromDescriptor, openCodebookEncoder, encoderKindOf, ENCODER_KINDS, ENCODER_SPEC_HELP, EXTERNAL_ENCODER, type Encoder, type EncoderDescriptor, type EncoderOptions } from './embed/encoders/index.js';
export { DEFAULT_PRECISION, PRECISIONS, type Precision } from './embed/encoders/model-files.js';
export { hubEndpoint, type DownloadControl } from './embed/encoders/hub-download.js';
export { extractCorpus } from './embed/corpus.js';
export { decodeTokens, refineAtlas } from './generate/atlas.js';
export { codeStats, type CodeStats } from './codebook/stats.js';
export { kmeans, type KMeansOptions, type KMeansProgress, type KMeansResult } from './build/kmeans.js';
export { commonGrid, embedImages, forEachEncodedBatch, requireSomeImages, type Images, type SkippedImage } from './embed/embed.js';
export { embedShards, embedIdentity, writeEmbeddingSet, type EmbedShardsRequest } from './embed/embed-shards.js';
export { tokenizeImages, checkEncoderMatches } from './search/tokenize.js';
export { tokenizeShards, tokenizeIdentity, type TokenizeShardsRequest } from './search/tokenize-shards.js';
export { imagesOfShards, shardSampleImage } from './embed/shards.js';
export { listShards, isShardOperand, expandBraces, hasBraces, type ShardFile } from './io/shard-list.js';
export { readShardManifest, shardsOfPart, SHARD_MANIFEST, type ShardPart, type ShardSummary, type ShardJob } from './io/shard-job.js';
export { shellQuote, shellSplit } from './cluster/shell.js';
export { planSlurmJob, submitSlurmJob, sbatchLine, type SlurmPlan, type SlurmRequest } from './cluster/submit.js';
export { cancelJobs, slurmSummary, taskViews, waitForJobs, type TaskView } from './cluster/follow.js';
export { jobFolderOf, logName, readJobsFile, submissionJobs, type JobsFile, type Submission } from './cluster/job-folder.js';
export { planTaskOf, taskPlaceOf, trackPlanTask, trackTask } from './cluster/task.js';
export {
  checkTokensMatchCodebook,
  readTokenGrids,
  writeTokenJson,
  writeTokenDataset,
  PADDING,
  type TokenGrid,
  type SearchInfo,
  type TokenDatasetIndex,
} from './codebook/token-files.js';
export { readPooledEmbeddings, pooledPathOf, type PooledRecord } from './codebook/token-files.js';
export { readManifestTokenSet, type ManifestTokenShard } from './codebook/token-files.js';
export { openTextEncoder, MAX_TEXTS, type TextEncoder } from './embed/encoders/text.js';
export { rankByText, sharedCodes, type TextHit, type SharedCode } from './search/text-search.js';
export { DEFAULTS, SCHEDULER_KINDS, SEARCH_CHOICES, UNCALIBRATED_NPROBE, USE_CALIBRATED_NPROBE, type BuildMethod, type SchedulerKind, type SearchChoice } from './core/defaults.js';
export { stepsOf, type ProgressEvent, type ProgressListener } from './core/progress.js';
export {
  buildCodebook, defaultMemoryMB, FLAT_MAX_WORK, MSE_SAMPLE, REFINE_NPROBE, REFINE_PASSES,
  type BuildRequest, type BuildSummary, type BuildProgress, type CodebookDtype,
} from './build/build.js';
export { POINTS_PER_CENTROID, parseStage, stageName, type TwoLevelStage } from './build/twolevel.js';
export { runBuildStage } from './build/build.js';
export {
  buildJobFolder, buildOnSlurmRequest, buildOnSlurmResult, planBuildOnSlurm, submitBuildOnSlurm, FINAL_TASK,
  type BuildOnSlurm, type BuildSlurmPlan, type PlannedStage, type SlurmRuntime,
} from './build/build-slurm.js';
export { fewVectorsWarning, MIN_VECTORS_PER_CODE } from './build/vectors-per-code.js';
export { describeProgress } from './core/eta.js';
export { runDemo, type DemoResult, type DemoProgress } from './report/demo.js';
export { renderReport, renderHeatmap, rankFrequencySvg } from './report/report.js';
export { psnr, meanPsnr } from './report/quality.js';
export { similarityOrder } from './report/code-order.js';
export { countColor, rampColor, logCountLevel, heatmapColumns, deadCodeColor } from '../../common/colormap.js';
export type { ComputeBackend, Matrix, DeviceChoice, BackendName, NearestResult } from '../../native-gpu/backend.js';
export { openBackend } from '../../native-gpu/index.js';
export {
  checkPriorMatchesCodebook,
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
} from './generate/prior/index.js';
export {
  checkArMatchesCodebook,
  inpaintArGrid,
  openArModel,
  readArFolder,
  resolveClass,
  sampleArGrid,
  scoreArGrids,
  AR_SIDECAR,
  type ArFolder,
  type ArModel,
  type ArSampleOptions,
  type ArScore,
} from './generate/ar/index.js';
export { checkTokenDecoder, openTokenDecoder, diffusionSettings, ATLAS_DECODER, type TokenDecoder, type DiffusionSettings, type Decoded } from './generate/decoders.js';
export type { DiffusionStep } from './generate/diffusion/decoder.js';
